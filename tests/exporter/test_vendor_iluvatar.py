"""Iluvatar CoreX: the ``ixsmi`` parser (on the shared box-table reader, exporter/parsers/_box_table.py)."""

from __future__ import annotations

import re

import pytest

from exporter.model import MIB
from exporter.parsers import ixsmi

BIV150 = "ixsmi_bi-v150_16gpu_4.1.0.txt"
BIV150S = "ixsmi_bi-v150s_1gpu_4.0.0_cuda-na.txt"

BUS_IDS = ["13", "16", "1c", "1f", "27", "2a", "34", "37", "3d", "40", "48", "4b", "54", "57", "64", "67"]
TEMPS = [32, 30, 31, 31, 30, 31, 31, 31, 32, 32, 31, 31, 30, 32, 30, 30]
ODD_POWER = {1: 93, 3: 94, 5: 98, 7: 95, 9: 95, 11: 94, 13: 93, 15: 94}


def kinds(parsed):
    return [p.kind for p in parsed.problems]


def widen(text: str) -> str:
    """The IX-ML 4.4 style: every box one character wider per cell."""
    out = []
    for line in text.splitlines():
        s = line.rstrip()
        if s[:1] not in ("+", "|") or len(s) < 2:
            out.append(line)
            continue
        head, body = s[0], s[1:]
        if set(s) <= set("+-=|"):
            fill = "=" if "=" in s else "-"
            body = re.sub(r"([+|])", lambda m: fill + m.group(1), body)
        else:
            body = body.replace("|", " |")
        out.append(head + body)
    return "\n".join(out) + "\n"


def test_bi_v150_sixteen_dies(vendor_smi):
    parsed = ixsmi.parse((vendor_smi / BIV150).read_text())
    assert parsed.problems == []
    assert parsed.slices == [] and parsed.processes == []
    assert [d.index for d in parsed.devices] == list(range(16))
    for dev, bus, temp in zip(parsed.devices, BUS_IDS, TEMPS):
        i = dev.index
        assert dev.hw_id == f"iluvatar-0000:{bus}:00.0"
        assert (dev.vendor, dev.kind, dev.name, dev.model) == ("iluvatar", "gpu", f"gpu{i}", "Iluvatar BI-V150")
        assert dev.pci_bus_id == f"0000:{bus}:00.0"
        assert dev.driver_version == "4.1.0"
        assert dev.temperatures == {"gpu": float(temp)}
        assert dev.memory_used_bytes == 116 * MIB == 121_634_816
        assert dev.memory_total_bytes == 32768 * MIB == 34_359_738_368
        assert dev.utilization == {"general": 0.0}
        assert dev.clocks_hz == {"sm": 1_500_000_000.0, "memory": 1_600_000_000.0}
        assert dev.fan_speed == 0.0
        assert dev.state == "ok" and dev.serial is None
        if i % 2:
            assert (dev.power_watts, dev.power_limit_watts) == (float(ODD_POWER[i]), 350.0)
        else:
            # the die without a power sensor: absent, never 0
            assert dev.power_watts is None and dev.power_limit_watts is None


def test_bi_v150s_cuda_na_and_cut_process_table(vendor_smi):
    parsed = ixsmi.parse((vendor_smi / BIV150S).read_text())
    # upstream cut the process table mid-header: counted, devices intact
    assert kinds(parsed) == ["truncated"]
    (dev,) = parsed.devices
    assert dev.hw_id == "iluvatar-0000:8a:00.0"
    assert dev.model == "Iluvatar BI-V150S"
    assert dev.driver_version == "4.1.0"  # IX-ML is 4.0.0; the driver 4.1.0
    assert dev.clocks_hz == {"sm": 500_000_000.0, "memory": 1_600_000_000.0}
    assert dev.memory_used_bytes == 114 * MIB == 119_537_664
    assert dev.memory_total_bytes == 34_359_738_368
    assert dev.temperatures == {"gpu": 33.0}
    assert dev.power_watts is None and dev.power_limit_watts is None


def test_wider_44_layout_parses_the_same(vendor_smi):
    text = (vendor_smi / BIV150).read_text().replace("IX-ML: 4.1.0", "IX-ML: 4.4.0")
    wide = widen(text)
    assert max(len(line) for line in wide.splitlines()) > max(len(line) for line in text.splitlines())
    assert ixsmi.parse(wide) == ixsmi.parse(text)


def _add_column(text: str, titles: tuple[str, str], values: tuple[str, str]) -> str:
    """Append a fourth cell to every row of the device box."""
    out, row = [], 0
    in_box = False
    for line in text.splitlines():
        s = line.rstrip()
        if "GPU  Name" in s:
            in_box = True
        if not in_box or s[:1] not in ("+", "|"):
            in_box = in_box and s[:1] in ("+", "|")
            out.append(line)
            continue
        if set(s) <= set("+-=|"):
            out.append(s + ("=" if "=" in s else "-") * 14 + s[-1])
        elif "GPU  Name" in s or "Fan  Temp" in s:
            out.append(s + f" {titles[0 if 'GPU  Name' in s else 1]:<12} |")
        else:
            out.append(s + f" {values[row % 2]:<12} |")
            row += 1
    return "\n".join(out) + "\n"


def test_extra_unknown_columns_are_counted_and_skipped(vendor_smi):
    base = ixsmi.parse((vendor_smi / BIV150).read_text())
    # a new column inside an existing cell
    text = (vendor_smi / BIV150).read_text()
    text = text.replace("| Clock-SM  Clock-Mem  |", "| Clock-SM  Clock-Mem  Volatile |")
    text = re.sub(r"\| (\d+MHz)\s+(\d+MHz)\s+\|", r"| \1   \2   7        |", text)
    parsed = ixsmi.parse(text)
    assert kinds(parsed) == ["unknown_column"]
    assert "volatile" in parsed.problems[0].detail
    assert parsed.devices == base.devices
    # a new cell section on both header rows
    parsed = ixsmi.parse(_add_column((vendor_smi / BIV150).read_text(), ("ECC-SBE", "ECC-DBE"), ("0", "1")))
    assert sorted(kinds(parsed)) == ["unknown_column", "unknown_column"]
    assert parsed.devices == base.devices


@pytest.mark.parametrize("na", ["N/A", "[N/A]", "NA", "-", "Not Supported", "[Not Supported]"])
def test_na_variants_are_absent(vendor_smi, na):
    text = (vendor_smi / BIV150S).read_text()
    row = "| 0%   33C   P0    N/A / N/A    | 114MiB / 32768MiB    | 0%        Default    |"
    assert row in text
    text = text.replace(row, f"| {na}   {na}   P0    {na} W / 350W   | {na} / {na}    | {na}        Default    |")
    text = text.replace("| 500MHz    1600MHz    |", f"| {na}    {na}    |")
    parsed = ixsmi.parse(text)
    assert kinds(parsed) == ["truncated"]  # only the upstream cut process table
    (dev,) = parsed.devices
    assert dev.fan_speed is None and dev.temperatures == {} and dev.utilization == {} and dev.clocks_hz == {}
    assert dev.memory_used_bytes is None and dev.memory_total_bytes is None
    assert dev.power_watts is None and dev.power_limit_watts == 350.0


def test_truncated_output_keeps_complete_devices(vendor_smi):
    text = (vendor_smi / BIV150).read_text()
    cut = text.index("| 5    Iluvatar BI-V150")
    cut = text.index("| 0%", cut) + 25  # inside the second row of GPU 5
    parsed = ixsmi.parse(text[:cut])
    assert kinds(parsed) == ["truncated"]
    assert [d.index for d in parsed.devices] == [0, 1, 2, 3, 4, 5]
    full = ixsmi.parse(text).devices
    assert parsed.devices[:5] == full[:5]
    # GPU 5 keeps what its complete row said (identity, clocks), nothing invented
    partial = parsed.devices[5]
    assert partial.hw_id == "iluvatar-0000:2a:00.0" and partial.clocks_hz == full[5].clocks_hz
    assert partial.power_watts is None and partial.memory_total_bytes is None and partial.temperatures == {}
    # cut in the header: no devices, one problem, no exception
    parsed = ixsmi.parse(text[: text.index("Fan  Temp") + 4])
    assert parsed.devices == [] and kinds(parsed) == ["truncated"]


def test_unknown_version_is_counted_and_parsed(vendor_smi):
    text = (vendor_smi / BIV150S).read_text().replace("IX-ML: 4.0.0", "IX-ML: 5.2.1")
    parsed = ixsmi.parse(text)
    assert kinds(parsed) == ["unknown_version", "truncated"]
    assert parsed.devices == ixsmi.parse((vendor_smi / BIV150S).read_text()).devices


def test_process_rows_are_attached_to_their_gpu(vendor_smi):
    text = (vendor_smi / BIV150).read_text().replace(
        "|  No running processes found                                                 |",
        "|    1      41234      python3 train.py                            1024MiB    |\n"
        "|    3       5678      /usr/bin/python                                 N/A    |",
    )
    parsed = ixsmi.parse(text)
    assert parsed.problems == []
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (41234, "iluvatar-0000:16:00.0", 1024 * MIB, "python3 train.py"),
        (5678, "iluvatar-0000:1f:00.0", None, "/usr/bin/python"),
    ]


def test_garbage_value_is_a_parse_problem(vendor_smi):
    text = (vendor_smi / BIV150S).read_text().replace("| 0%   33C", "| 0%   hotC")
    parsed = ixsmi.parse(text)
    assert sorted(kinds(parsed)) == ["parse", "truncated"]
    assert parsed.devices[0].temperatures == {} and parsed.devices[0].memory_total_bytes == 34_359_738_368


def test_detect_only_ixsmi(vendor_smi):
    for path in sorted(vendor_smi.iterdir()):
        if path.is_file():
            assert ixsmi.detect(path.read_text(errors="replace")) == path.name.startswith("ixsmi_"), path.name
    assert ixsmi.parse("") .problems[0].kind == "unknown_format"
    assert ixsmi.parse("hello\n").devices == []


def test_box_reader_shapes_fallback():
    # single spaces between values: the 2+-space rule fails, the title shapes pair them
    text = (
        "+----------------+\n| IX-ML: 4.1.0 |\n|----+----|\n"
        "| GPU  Name | Fan  Temp  Perf  Pwr:Usage/Cap|\n|====+====|\n"
        "| 0 Iluvatar BI-V150 | 10% 40C P0 93W / 350W |\n+----+----+\n"
    )
    parsed = ixsmi.parse(text)
    assert parsed.problems == []
    (dev,) = parsed.devices
    assert (dev.model, dev.fan_speed, dev.temperatures, dev.power_watts, dev.power_limit_watts) == (
        "Iluvatar BI-V150", 0.1, {"gpu": 40.0}, 93.0, 350.0)
    assert dev.hw_id == "iluvatar-gpu0"
