"""Cambricon MLU: the ``cnmon`` parser."""

from __future__ import annotations

import pytest

from exporter.model import MIB
from exporter.parsers import cnmon

LEGACY = "cnmon_mlu370-x4_4.20.11_legacy-vmemory-format.txt"
MODE = "cnmon_mlu370-x8_2card_5.10.22_mode-full.txt"


def kinds(parsed):
    return [p.kind for p in parsed.problems]


def readings(dev):
    return (dev.utilization, dev.errors, dev.fan_speed, dev.temperatures, dev.power_watts, dev.power_limit_watts,
            dev.memory_used_bytes, dev.memory_total_bytes)


def test_legacy_4x_vmemory_layout(vendor_smi):
    parsed = cnmon.parse((vendor_smi / LEGACY).read_text())
    assert parsed.problems == [] and parsed.slices == [] and parsed.processes == []
    assert [d.hw_id for d in parsed.devices] == ["cambricon-mlu0", "cambricon-mlu1"]  # no bus column in 4.x
    for dev, index in zip(parsed.devices, (0, 1)):
        assert (dev.vendor, dev.kind, dev.index, dev.name, dev.model) == (
            "cambricon", "mlu", index, f"mlu{index}", "MLU370-X4")
        assert (dev.driver_version, dev.firmware_version, dev.pci_bus_id) == ("4.20.11", "1.1.6", None)
    # Ecc-Error N/A -> no error series; vMemory (virtual address space) is not device memory
    assert readings(parsed.devices[0]) == (
        {"general": 0.0}, {}, 0.0, {"gpu": 32.0}, 30.0, 150.0, 0, 23308 * MIB)
    assert readings(parsed.devices[1]) == (
        {"general": 0.0}, {}, 0.0, {"gpu": 33.0}, 25.0, 150.0, 0, 24_440_209_408)


def test_5x_mode_layout(vendor_smi):
    parsed = cnmon.parse((vendor_smi / MODE).read_text())
    assert parsed.problems == [] and parsed.slices == []
    assert [(d.hw_id, d.pci_bus_id) for d in parsed.devices] == [
        ("cambricon-0000:13:00.0", "0000:13:00.0"), ("cambricon-0000:16:00.0", "0000:16:00.0")]
    for dev in parsed.devices:
        assert (dev.model, dev.driver_version, dev.firmware_version) == ("MLU370-X8", "5.10.22", "1.1.6")
    assert readings(parsed.devices[0]) == (
        {"general": 0.0}, {("ecc", "total"): 0}, 0.0, {"gpu": 28.0}, 107.0, 250.0, 0, 20638 * MIB)
    assert parsed.devices[1].temperatures == {"gpu": 32.0}
    assert parsed.devices[1].memory_total_bytes == 21_640_511_488


def test_sriov_column_variant(vendor_smi):
    # 5.10.10-5.10.13 print SR-IOV where 5.10.22 prints Mode
    text = (vendor_smi / MODE).read_text().replace("| Mode     Compute-Mode |", "| SR-IOV   Compute-Mode |")
    text = text.replace("| FULL          Default |", "| N/A           Default |")
    parsed = cnmon.parse(text)
    assert parsed.problems == []
    assert [readings(d) for d in parsed.devices] == [readings(d) for d in
                                                     cnmon.parse((vendor_smi / MODE).read_text()).devices]


def test_extra_unknown_column(vendor_smi):
    text = (vendor_smi / MODE).read_text().replace("| Util        Ecc-Error |", "| Util  Ecc-Error  Xlink |")
    text = text.replace("| 0%                  0 |", "| 0%    0           ok    |")
    parsed = cnmon.parse(text)
    assert kinds(parsed) == ["unknown_column"] and "xlink" in parsed.problems[0].detail
    assert parsed.devices == cnmon.parse((vendor_smi / MODE).read_text()).devices


@pytest.mark.parametrize("na", ["N/A", "[N/A]", "-", "Not Supported", "NA"])
def test_na_variants(vendor_smi, na):
    text = (vendor_smi / MODE).read_text()
    text = text.replace("|  0%   28C        107 W/ 250 W |     0 MiB/ 20638 MiB |",
                        f"|  {na}   {na}        {na} W/ 250 W |     {na} / {na} |", 1)
    text = text.replace("| 0%                  0 |", f"| {na}               {na} |", 1)
    parsed = cnmon.parse(text)
    assert parsed.problems == []
    first, second = parsed.devices
    assert readings(first) == ({}, {}, None, {}, None, 250.0, None, None)
    assert readings(second)[3:] == ({"gpu": 32.0}, 107.0, 250.0, 0, 20638 * MIB)


def test_truncated(vendor_smi):
    text = (vendor_smi / MODE).read_text()
    cut = text.index("| 1     /   MLU370-X8") + 20
    parsed = cnmon.parse(text[:cut])
    assert kinds(parsed) == ["truncated"]
    assert parsed.devices == cnmon.parse(text).devices[:1]
    # cut after the last complete row (closing border missing): still counted
    parsed = cnmon.parse(text.rstrip().rsplit("\n", 1)[0])
    assert kinds(parsed) == ["truncated"] and len(parsed.devices) == 2


def test_unknown_version(vendor_smi):
    text = (vendor_smi / MODE).read_text().replace("CNMON v5.10.22", "CNMON v7.0.1 ")
    parsed = cnmon.parse(text)
    assert kinds(parsed) == ["unknown_version"]
    assert parsed.devices == cnmon.parse((vendor_smi / MODE).read_text()).devices


VF_ROWS = """\
| 0     1   MLU370-X8    v1.1.6 |         0000:13:00.1 | 37%                 0 |
|  0%   28C        N/A / N/A    |  1024 MiB/ 10240 MiB | N/A           Default |
+-------------------------------+----------------------+-----------------------+
| 0     2   MLU370-X8-half v1.1.6 |                  N/A | 5%                  0 |
|  0%   28C        N/A / N/A    |   512 MiB/ 10240 MiB | N/A           Default |
+-------------------------------+----------------------+-----------------------+
"""


def _with_vfs(vendor_smi, mode: str) -> str:
    text = (vendor_smi / MODE).read_text()
    first_end = text.index("+---", text.index("| 0     /   MLU370-X8"))
    first_end = text.index("\n", first_end) + 1
    text = text[:first_end] + VF_ROWS + text[first_end:]
    return text.replace("| FULL          Default |", f"| {mode:<13} Default |", 1)


@pytest.mark.parametrize(("mode", "slice_type"), [("MIM-EN", "mim"), ("SR-IOV", "sriov_vf"), ("sMLU", "smlu")])
def test_vf_rows_become_slices(vendor_smi, mode, slice_type):
    parsed = cnmon.parse(_with_vfs(vendor_smi, mode))
    assert parsed.problems == []
    assert [d.hw_id for d in parsed.devices] == ["cambricon-0000:13:00.0", "cambricon-0000:16:00.0"]
    first, second = parsed.slices
    assert (first.hw_id, first.parent_id, first.slice_type, first.slice_id, first.parent_index) == (
        "cambricon-0000:13:00.1", "cambricon-0000:13:00.0", slice_type, "vf1", 0)
    assert (first.memory_used_bytes, first.memory_limit_bytes, first.utilization, first.profile) == (
        1024 * MIB, 10240 * MIB, 0.37, None)
    assert (first.kind, first.vendor, first.model) == ("mlu", "cambricon", "MLU370-X8")
    assert (second.hw_id, second.slice_id, second.profile, second.memory_used_bytes, second.utilization) == (
        "cambricon-0000:13:00.0/vf2", "vf2", "MLU370-X8-half", 512 * MIB, 0.05)


def test_vf_without_its_card_is_the_device(vendor_smi):
    # inside a VM cnmon shows only the VF
    text = (vendor_smi / MODE).read_text().replace("| 0     /   MLU370-X8", "| 0     1   MLU370-X8")
    parsed = cnmon.parse(text)
    assert parsed.problems == [] and parsed.slices == []
    assert [d.hw_id for d in parsed.devices] == ["cambricon-0000:16:00.0", "cambricon-0000:13:00.0"]


def test_process_table(vendor_smi):
    text = (vendor_smi / MODE).read_text() + (
        "\n+------------------------------------------------------------------------------+\n"
        "| Processes:                                                                   |\n"
        "|  Card  MI  PID     Command Line                             MLU Memory Usage |\n"
        "|==============================================================================|\n"
        "|     1   /  31337   python3 infer.py --port 8000                     2048 MiB |\n"
        "+------------------------------------------------------------------------------+\n"
    )
    parsed = cnmon.parse(text)
    assert parsed.problems == []
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (31337, "cambricon-0000:16:00.0", 2048 * MIB, "python3 infer.py --port 8000")]


def test_detect_only_cnmon(vendor_smi):
    for path in sorted(vendor_smi.iterdir()):
        if path.is_file():
            assert cnmon.detect(path.read_text(errors="replace")) == path.name.startswith("cnmon_"), path.name
    assert kinds(cnmon.parse("")) == ["unknown_format"]
