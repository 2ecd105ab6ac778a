"""Tests for the Huawei Ascend ``npu-smi info`` parser (exporter.parsers.npu_smi)."""

from __future__ import annotations

import re

import pytest

from exporter.model import MIB
from exporter.parsers import npu_smi

CLASSIC = "npu-smi-info_910-8npu_24.1.0.txt"
A3 = "npu-smi-info_ascend910-a3_25.5.1_dual-die_procs.txt"

# (bus id, power W, temp C, HBM used MiB) per NPU, read from the classic capture
CLASSIC_ROWS = [
    ("0000:c1:00.0", 70.0, 34.0, 1365),
    ("0000:81:00.0", 66.9, 34.0, 4),
    ("0000:41:00.0", 69.8, 34.0, 4),
    ("0000:01:00.0", 67.2, 33.0, 3),
    ("0000:c2:00.0", 68.9, 33.0, 3),
    ("0000:82:00.0", 66.3, 34.0, 5),
    ("0000:42:00.0", 70.1, 34.0, 5),
    ("0000:02:00.0", 65.6, 33.0, 4),
]

# Synthetic npu-smi 25.x "NPU ID" layout, written from Huawei's documented
# format (separate NPU ID / Name / Health cells, NPU Util(%), Bus-Id NA,
# "Process id in container").  No capture of this layout is in the fixtures.
NPU_ID_LAYOUT = """\
+-------------------------------------------------------------------------------------------------+
| npu-smi 25.6.rc1                                 Version: 25.6.rc1                              |
+--------+------------------+---------------+-----------------------------------------------------+
| NPU ID | Name             | Health        | Power(W)    Temp(C)           Hugepages-Usage(page) |
|        |                  | Bus-Id        | NPU Util(%) Memory-Usage(MB)  HBM-Usage(MB)         |
+========+==================+===============+=====================================================+
| 0      | Ascend950DT      | OK            | 301.5       47                0     / 0             |
|        |                  | NA            | 12          0    / 0          5120  / 98304         |
+========+==================+===============+=====================================================+
| 1      | Ascend950DT      | Warning       | 288.0       52                0     / 0             |
|        |                  | NA            | 0           0    / 0          4096/ 98304           |
+========+==================+===============+=====================================================+
+--------+---------------+------------------+--------------------+-------------------------+
| NPU ID | Process id    | Process name     | Process memory(MB) | Process id in container |
+========+===============+==================+====================+=========================+
| 0      | 424242        | python           | 2048               | 17                      |
+========+===============+==================+====================+=========================+
| No running processes found in NPU 1                                                      |
+========+===============+==================+====================+=========================+
"""


def parse_file(vendor_smi, name):
    text = (vendor_smi / name).read_text()
    assert npu_smi.detect(text)
    return npu_smi.parse(text)


def test_classic_910_capture(vendor_smi):
    parsed = parse_file(vendor_smi, CLASSIC)
    assert parsed.problems == []
    assert parsed.slices == [] and parsed.processes == []
    assert len(parsed.devices) == 8
    for index, (dev, (bus, power, temp, hbm_used)) in enumerate(zip(parsed.devices, CLASSIC_ROWS)):
        assert dev.hw_id == f"huawei-{bus}"
        assert (dev.vendor, dev.kind, dev.model) == ("huawei", "npu", "910B")
        assert (dev.index, dev.name, dev.pci_bus_id) == (index, f"npu{index}", bus)
        assert dev.driver_version == "24.1.0"
        assert dev.state == "ok"
        assert dev.power_watts == power
        assert dev.temperatures == {"gpu": temp}
        assert dev.utilization == {"general": 0.0}
        # HBM is preferred over the DDR Memory-Usage column (1197 / 13553 on NPU 0)
        assert dev.memory_used_bytes == hbm_used * MIB
        assert dev.memory_total_bytes == 32768 * MIB


def test_a3_dual_die_capture(vendor_smi):
    parsed = parse_file(vendor_smi, A3)
    assert parsed.problems == []
    by_name = {d.name: d for d in parsed.devices}
    assert list(by_name) == ["npu0-chip0", "npu0-chip1", "npu1-chip0", "npu1-chip1", "npu2-chip0"]
    first, second = by_name["npu0-chip0"], by_name["npu0-chip1"]
    assert (first.hw_id, first.index, first.model) == ("huawei-0000:9d:00.0", 0, "Ascend910")
    assert first.power_watts == 171.3
    assert first.temperatures == {"gpu": 41.0}
    assert (first.memory_used_bytes, first.memory_total_bytes) == (46904 * MIB, 65536 * MIB)
    assert first.driver_version == "25.5.1"
    # the second die prints its power as "-": not reported, never 0
    assert (second.hw_id, second.index, second.power_watts) == ("huawei-0000:9f:00.0", 1, None)
    assert second.temperatures == {"gpu": 43.0}
    assert second.memory_used_bytes == 46582 * MIB
    assert [d.index for d in parsed.devices] == [0, 1, 2, 3, 4]  # Phy-Id
    assert by_name["npu1-chip0"].power_watts == 160.4
    assert by_name["npu2-chip0"].memory_used_bytes == 3120 * MIB
    procs = [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes]
    assert procs == [
        (3101668, "huawei-0000:9d:00.0", 43767 * MIB, "/opt/app/sglang/python"),
        (3100667, "huawei-0000:9d:00.0", 112 * MIB, "/opt/app/sglang/server.py"),
        (3102668, "huawei-0000:9b:00.0", 42100 * MIB, "/opt/app/sglang/worker.py"),
    ]


def test_npu_id_layout_from_documented_format():
    assert npu_smi.detect(NPU_ID_LAYOUT)
    parsed = npu_smi.parse(NPU_ID_LAYOUT)
    assert parsed.problems == []
    zero, one = parsed.devices
    # Bus-Id "NA": the per-node fallback id
    assert (zero.hw_id, zero.name, zero.index, zero.pci_bus_id) == ("huawei-npu0", "npu0", 0, None)
    assert zero.model == "Ascend950DT"
    assert zero.utilization == {"general": 0.12}  # NPU Util(%)
    assert (zero.memory_used_bytes, zero.memory_total_bytes) == (5120 * MIB, 98304 * MIB)
    assert zero.power_watts == 301.5 and zero.temperatures == {"gpu": 47.0}
    assert (one.hw_id, one.state, one.memory_used_bytes) == ("huawei-npu1", "degraded", 4096 * MIB)
    (proc,) = parsed.processes
    assert (proc.pid, proc.parent_id, proc.memory_bytes, proc.name) == (424242, "huawei-npu0", 2048 * MIB, "python")


def test_alignment_does_not_matter(vendor_smi):
    text = (vendor_smi / CLASSIC).read_text()
    squeezed = "\n".join(re.sub(r" {2,}", " ", line) for line in text.splitlines())
    assert npu_smi.parse(squeezed) == npu_smi.parse(text)


def test_ddr_used_when_hbm_absent(vendor_smi):
    text = (vendor_smi / CLASSIC).read_text().replace("1365 / 32768", "0    / 0    ")
    dev = npu_smi.parse(text).devices[0]
    assert (dev.memory_used_bytes, dev.memory_total_bytes) == (1197 * MIB, 13553 * MIB)
    both_absent = text.replace("1197 / 13553", "0    / 0    ")
    dev = npu_smi.parse(both_absent).devices[0]
    assert (dev.memory_used_bytes, dev.memory_total_bytes) == (None, None)


@pytest.mark.parametrize("absent", ["-", "NA", "N/A", "--"])
def test_absent_forms(vendor_smi, absent):
    text = (vendor_smi / CLASSIC).read_text()
    text = text.replace("| 70.0        34  ", f"| {absent:<11} {absent:<3}", 1)
    parsed = npu_smi.parse(text)
    assert parsed.problems == []
    dev = parsed.devices[0]
    assert dev.power_watts is None and dev.temperatures == {}
    assert parsed.devices[1].power_watts == 66.9


@pytest.mark.parametrize("health,state", [("Warning", "degraded"), ("Alarm", "degraded"),
                                          ("Critical", "failed"), ("UNKNOWN", "failed")])
def test_health(vendor_smi, health, state):
    text = (vendor_smi / CLASSIC).read_text().replace("| OK    ", f"| {health:<6}", 1)
    parsed = npu_smi.parse(text)
    assert parsed.devices[0].state == state
    assert parsed.devices[1].state == "ok"


def test_extra_unknown_column_is_counted_rest_intact(vendor_smi):
    text = (vendor_smi / CLASSIC).read_text()
    text = text.replace("Hugepages-Usage(page)|", "Hugepages-Usage(page) Volt(V)|")
    text = re.sub(r"(0    / 0 )( +)\|", r"\1 0.8\2|", text)
    parsed = npu_smi.parse(text)
    assert [p.kind for p in parsed.problems] == ["unknown_column"]
    assert "Volt(V)" in parsed.problems[0].detail
    assert len(parsed.devices) == 8
    assert parsed.devices[0].power_watts == 70.0
    assert parsed.devices[0].memory_used_bytes == 1365 * MIB


def test_truncated_output_keeps_complete_blocks(vendor_smi):
    lines = (vendor_smi / CLASSIC).read_text().splitlines()
    cut = "\n".join(lines[:13])  # ends after NPU 2's first row
    parsed = npu_smi.parse(cut)
    assert [d.name for d in parsed.devices] == ["npu0", "npu1"]
    assert [p.kind for p in parsed.problems] == ["truncated"]


def test_unknown_version_is_counted(vendor_smi):
    text = (vendor_smi / CLASSIC).read_text().replace("24.1.0", "99.0.1")
    parsed = npu_smi.parse(text)
    assert [p.kind for p in parsed.problems] == ["unknown_version"]
    assert len(parsed.devices) == 8
    assert parsed.devices[0].driver_version == "99.0.1"


def test_mismatched_cell_counts_are_problems(vendor_smi):
    text = (vendor_smi / CLASSIC).read_text().replace("| 0     910B                | OK            |",
                                                        "| 0     910B                | OK      |  x  |", 1)
    parsed = npu_smi.parse(text)
    assert [p.kind for p in parsed.problems] == ["parse", "parse"]  # bad row; block without an NPU id
    assert [d.name for d in parsed.devices] == [f"npu{i}" for i in range(1, 8)]


def test_garbage_is_unknown_format():
    for text in ("", "command not found\n", "<html>oops</html>"):
        parsed = npu_smi.parse(text)
        assert [p.kind for p in parsed.problems] == ["unknown_format"]
        assert parsed.devices == []
    assert not npu_smi.detect("hello world")


def test_capabilities_declared():
    caps = npu_smi.CAPABILITIES
    assert (caps["vendor"], caps["kind"], caps["status"]) == ("huawei", "npu", "stable")
    assert "hw_power_watts" in caps["metrics"] and "captures tested" in caps["source"]
