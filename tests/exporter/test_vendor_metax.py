"""MetaX: the ``mx-smi`` table and ``mx-smi dmon --format csv`` parsers."""

from __future__ import annotations

import pytest

from exporter.model import MIB
from exporter.parsers import mx_smi

TABLE = "mx-smi_metax-n260_2gpu_2.2.8.txt"
DMON = "mx-smi-dmon_csv_mxc500_2gpu_testfixture.csv"
GIB = 1024 * MIB


def kinds(parsed):
    return [p.kind for p in parsed.problems]


# ---------------------------------------------------------------- table


def test_table_n260(vendor_smi):
    parsed = mx_smi.parse((vendor_smi / TABLE).read_text())
    assert parsed.problems == [] and parsed.slices == [] and parsed.processes == []
    first, second = parsed.devices
    for dev, index, bus, power in ((first, 0, "01", 29.0), (second, 1, "21", 33.0)):
        assert dev.hw_id == f"metax-0000:{bus}:00.0" and dev.pci_bus_id == f"0000:{bus}:00.0"
        assert (dev.vendor, dev.kind, dev.index, dev.name, dev.model) == ("metax", "gpu", index, f"gpu{index}",
                                                                          "MetaX N260")
        assert (dev.driver_version, dev.firmware_version) == ("3.0.11", "1.26.1.0")
        assert dev.memory_used_bytes == 666 * MIB == 698_351_616
        assert dev.memory_total_bytes == 65536 * MIB == 68_719_476_736
        assert (dev.power_watts, dev.power_limit_watts) == (power, 225.0)
        assert dev.temperatures == {"gpu": 37.0} and dev.utilization == {"general": 0.0}
        assert dev.state == "ok" and dev.fan_speed is None


def test_table_process_rows(vendor_smi):
    text = (vendor_smi / TABLE).read_text().replace(
        "|  no process found                                                               |",
        "|  0                     2477         python                       128            |\n"
        "|  1                     9001         vllm serve model             N/A            |",
    )
    parsed = mx_smi.parse(text)
    assert parsed.problems == []
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (2477, "metax-0000:01:00.0", 128 * MIB, "python"), (9001, "metax-0000:21:00.0", None, "vllm serve model")]


@pytest.mark.parametrize(("state", "expected", "problems"), [
    ("Available", "ok", []), ("N/A", "ok", []), ("Error", "failed", []), ("GPU Lost", "failed", []),
    ("Sleeping", "ok", ["unknown_value"]),
])
def test_table_gpu_state(vendor_smi, state, expected, problems):
    text = (vendor_smi / TABLE).read_text().replace("| Available            |", f"| {state:<20} |", 1)
    parsed = mx_smi.parse(text)
    assert kinds(parsed) == problems
    assert [d.state for d in parsed.devices] == [expected, "ok"]


def test_table_sgpu_mode_gives_no_invented_slices(vendor_smi):
    text = (vendor_smi / TABLE).read_text().replace("| 0%            Native |", "| 0%            sGPU   |")
    parsed = mx_smi.parse(text)
    assert parsed.problems == [] and parsed.slices == []


def test_table_unknown_column(vendor_smi):
    text = (vendor_smi / TABLE).read_text().replace("| GPU-State            |", "| GPU-State  MIG-M     |")
    text = text.replace("| Available            |", "| Available  Disabled  |")
    parsed = mx_smi.parse(text)
    assert kinds(parsed) == ["unknown_column"] and "mig-m" in parsed.problems[0].detail
    assert parsed.devices == mx_smi.parse((vendor_smi / TABLE).read_text()).devices


@pytest.mark.parametrize("na", ["N/A", "[N/A]", "-", "Not Supported"])
def test_table_na_variants(vendor_smi, na):
    text = (vendor_smi / TABLE).read_text().replace(
        "| 37C     29W / 225W              P0 | 666/65536 MiB       |",
        f"| {na}     {na} / 225W              P0 | {na}/65536 MiB       |")
    text = text.replace("| 0%            Native |", f"| {na}            Native |", 1)
    parsed = mx_smi.parse(text)
    assert parsed.problems == []
    dev = parsed.devices[0]
    assert (dev.temperatures, dev.power_watts, dev.power_limit_watts, dev.utilization) == ({}, None, 225.0, {})
    assert (dev.memory_used_bytes, dev.memory_total_bytes) == (None, 65536 * MIB)


def test_table_truncated(vendor_smi):
    text = (vendor_smi / TABLE).read_text()
    parsed = mx_smi.parse(text[: text.index("| 1       MetaX N260") + 30])
    assert kinds(parsed) == ["truncated"]
    assert parsed.devices == mx_smi.parse(text).devices[:1]


def test_table_unknown_version(vendor_smi):
    text = (vendor_smi / TABLE).read_text().replace("mx-smi  version: 2.2.8", "mx-smi  version: 3.0.0")
    parsed = mx_smi.parse(text)
    assert kinds(parsed) == ["unknown_version"]
    assert parsed.devices == mx_smi.parse((vendor_smi / TABLE).read_text()).devices


# ---------------------------------------------------------------- dmon CSV


def dmon_values(dev):
    return (dev.temperatures, dev.power_watts, dev.utilization, dev.memory_total_bytes, dev.memory_used_bytes)


def test_dmon_mxc500(vendor_smi):
    parsed = mx_smi.parse((vendor_smi / DMON).read_text())
    assert parsed.problems == []
    first, second = parsed.devices
    assert (first.hw_id, first.index, first.name, first.pci_bus_id, first.model) == (
        "metax-0000:08:00.0", 0, "gpu0", "0000:08:00.0", "")
    # vram % has no honest byte value: used stays absent; 64 GB = 64 GiB
    assert dmon_values(first) == ({"hotspot": 45.0, "soc": 31.0, "gpu": 40.0}, 159.0,
                                  {"general": 0.71, "encoder": 0.0, "decoder": 0.0}, 64 * GIB, None)
    assert dmon_values(second) == ({"hotspot": 46.0, "soc": 31.0, "gpu": 36.0}, 165.0,
                                   {"general": 0.12, "encoder": 0.0, "decoder": 0.0}, 68_719_476_736, None)
    assert second.hw_id == "metax-0000:09:00.0"


def test_dmon_units_come_from_the_unit_row(vendor_smi):
    text = (vendor_smi / DMON).read_text().replace("C, W, %", "C, mW, %").replace(", 159,", ", 159000,")
    text = text.replace(", 165,", ", 165500,").replace("%, GB,", "%, MB,").replace(", 64,", ", 65536,")
    parsed = mx_smi.parse(text)
    assert parsed.problems == []
    assert [d.power_watts for d in parsed.devices] == [159.0, 165.5]
    assert [d.memory_total_bytes for d in parsed.devices] == [65536 * MIB, 64 * GIB]


def test_dmon_extra_column_and_missing_unit_row(vendor_smi):
    lines = (vendor_smi / DMON).read_text().splitlines()
    lines[0] += ", fanspeed"
    lines[1] += " %"
    lines[2] += ", 30"
    lines[3] += ", 31"
    parsed = mx_smi.parse("\n".join(lines) + "\n")
    assert kinds(parsed) == ["unknown_column"] and "fanspeed" in parsed.problems[0].detail
    base = mx_smi.parse((vendor_smi / DMON).read_text()).devices
    assert parsed.devices == base
    no_units = "\n".join(lines[:1] + lines[2:]) + "\n"
    parsed = mx_smi.parse(no_units)
    assert sorted(kinds(parsed)) == ["parse", "unknown_column"]
    assert [dmon_values(d) for d in parsed.devices] == [dmon_values(d) for d in base]


@pytest.mark.parametrize("na", ["N/A", "-", "NA", ""])
def test_dmon_na_variants(vendor_smi, na):
    text = (vendor_smi / DMON).read_text().replace("0, 0, 45, 31, 40, 159, 71", f"0, 0, {na}, 31, {na}, {na}, {na}")
    parsed = mx_smi.parse(text)
    assert parsed.problems == []
    dev = parsed.devices[0]
    assert (dev.temperatures, dev.power_watts, dev.utilization) == ({"soc": 31.0}, None,
                                                                     {"encoder": 0.0, "decoder": 0.0})


def test_dmon_truncated_last_row_is_dropped(vendor_smi):
    text = (vendor_smi / DMON).read_text()
    parsed = mx_smi.parse(text[: text.index("1, 0, 46") + 12])
    assert kinds(parsed) == ["truncated"]
    assert [d.hw_id for d in parsed.devices] == ["metax-0000:08:00.0"]


def test_dmon_multi_die(vendor_smi):
    lines = (vendor_smi / DMON).read_text().splitlines()
    lines.append("1, 1, 44, 30, 35, 0, 10, 0, 0, 80, 80, 1, 64, 0000:0a:00.0")
    parsed = mx_smi.parse("\n".join(lines) + "\n")
    assert parsed.problems == []
    assert [(d.hw_id, d.name, d.index) for d in parsed.devices] == [
        ("metax-0000:08:00.0", "gpu0", 0), ("metax-0000:09:00.0", "gpu1", 1),
        ("metax-0000:0a:00.0-die1", "gpu1-die1", 1)]


def test_detect(vendor_smi):
    for path in sorted(vendor_smi.iterdir()):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        assert mx_smi.detect_table(text) == (path.name == TABLE), path.name
        assert mx_smi.detect_dmon(text) == (path.name == DMON), path.name
        assert mx_smi.detect(text) == path.name.startswith("mx-smi"), path.name
    assert kinds(mx_smi.parse("")) == ["unknown_format"]
    assert kinds(mx_smi.parse_dmon("")) == ["parse"]


def test_table_then_dmon_as_the_cli_backend_appends_them(vendor_smi):
    table = (vendor_smi / TABLE).read_text()
    dmon = (vendor_smi / DMON).read_text().replace("0000:08:00.0", "0000:01:00.0").replace("0000:09:00.0",
                                                                                          "0000:21:00.0")
    parsed = mx_smi.parse(table + dmon)
    assert parsed.problems == []
    first, second = parsed.devices
    base = mx_smi.parse(table).devices[0]
    assert first.hw_id == base.hw_id and first.model == "MetaX N260"
    # the table's own readings win; dmon adds what the table lacks
    assert first.temperatures == {"gpu": 37.0, "hotspot": 45.0, "soc": 31.0}
    assert first.utilization == {"general": 0.0, "encoder": 0.0, "decoder": 0.0}
    assert (first.power_watts, first.memory_used_bytes, first.memory_total_bytes) == (29.0, 666 * MIB, 64 * GIB)
    assert second.temperatures == {"gpu": 37.0, "hotspot": 46.0, "soc": 31.0}
