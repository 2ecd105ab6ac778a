"""Tests for the Kunlunxin ``xpu-smi`` parser (exporter.parsers.xpu_smi)."""

from __future__ import annotations

import re

import pytest

from exporter.model import MIB
from exporter.parsers import xpu_smi

P800 = "xpu-smi_kunlunxin-p800_8xpu_5.0.21.txt"

# (bus id, power W, temperature C) per XPU, read from the capture
P800_ROWS = [
    ("0000:03:00.0", 88.0, 37.0), ("0000:05:00.0", 90.0, 41.0), ("0000:63:00.0", 89.0, 36.0),
    ("0000:65:00.0", 89.0, 36.0), ("0000:83:00.0", 88.0, 40.0), ("0000:85:00.0", 90.0, 40.0),
    ("0000:a3:00.0", 90.0, 39.0), ("0000:a5:00.0", 87.0, 40.0),
]

# Process rows in the table's documented column order (XPU, XI ID, CI ID,
# PID, Type, Process name, XPU Memory Usage); synthetic values.
PROCESS_ROWS = """\
|    0    N/A  N/A      1234      C   python3                          2048MiB |
|    1      1    0      5678      C   train worker                    10240MiB |
|    1      1    0      5679      C   python3                          1024MiB |
"""


def capture(vendor_smi) -> str:
    return (vendor_smi / P800).read_text()


def test_p800_capture(vendor_smi):
    text = capture(vendor_smi)
    assert xpu_smi.detect(text)
    parsed = xpu_smi.parse(text)
    assert parsed.problems == []
    assert parsed.slices == [] and parsed.processes == []
    assert len(parsed.devices) == 8
    for index, (dev, (bus, power, temp)) in enumerate(zip(parsed.devices, P800_ROWS)):
        assert dev.hw_id == f"kunlunxin-{bus}"
        assert (dev.vendor, dev.kind, dev.model) == ("kunlunxin", "xpu", "P800 OAM")
        assert (dev.index, dev.name, dev.pci_bus_id) == (index, f"xpu{index}", bus)
        assert dev.driver_version == "5.0.21.21"
        assert dev.power_watts == power and dev.power_limit_watts == 400.0
        assert dev.temperatures == {"gpu": temp}
        assert dev.fan_speed is None  # N/A
        assert dev.memory_used_bytes == 0
        assert dev.memory_total_bytes == 98304 * MIB
        assert dev.utilization == {"general": 0.0}
        assert dev.errors == {("uncorrected", "total"): 0}


def test_intel_xpu_smi_is_not_kunlunxin():
    intel = """\
+-----------+--------------------------------------------------------------------------------------+
| Device ID | Device Information                                                                   |
+-----------+--------------------------------------------------------------------------------------+
| 0         | Device Name: Intel(R) Data Center GPU Max 1550                                       |
|           | Vendor Name: Intel(R) Corporation                                                    |
|           | PCI BDF Address: 0000:29:00.0                                                        |
+-----------+--------------------------------------------------------------------------------------+
"""
    assert not xpu_smi.detect(intel)
    assert [p.kind for p in xpu_smi.parse(intel).problems] == ["unknown_format"]


def test_process_table_with_instances_becomes_slices(vendor_smi):
    text = capture(vendor_smi).replace(
        "|  No running processes found                                                 |\n", PROCESS_ROWS)
    parsed = xpu_smi.parse(text)
    assert parsed.problems == []
    (sl,) = parsed.slices
    assert (sl.hw_id, sl.parent_id, sl.slice_type, sl.slice_id) == (
        "kunlunxin-0000:05:00.0/xi1/ci0", "kunlunxin-0000:05:00.0", "sriov_vf", "xi1/ci0")
    assert sl.info == {"sriov_mode": "Disabled"} and sl.parent_index == 1
    procs = [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes]
    assert procs == [
        (1234, "kunlunxin-0000:03:00.0", 2048 * MIB, "python3"),
        (5678, "kunlunxin-0000:05:00.0/xi1/ci0", 10240 * MIB, "train worker"),
        (5679, "kunlunxin-0000:05:00.0/xi1/ci0", 1024 * MIB, "python3"),
    ]


@pytest.mark.parametrize("old,new,check", [
    ("| N/A   37C  N/A     88W / 400W |", "|  30%  N/A  N/A    N/A / 400W |",
     lambda d: d.fan_speed == 0.3 and d.temperatures == {} and d.power_watts is None and d.power_limit_watts == 400.0),
    ("| N/A   37C  N/A     88W / 400W |", "| N/A   37C  N/A     88W / N/A  |",
     lambda d: d.power_watts == 88.0 and d.power_limit_watts is None),
    ("|      0MiB / 98304MiB |      0%      Default |", "|          N/A         |     N/A      Default |",
     lambda d: d.memory_used_bytes is None and d.memory_total_bytes is None and d.utilization == {}),
    ("|                    0 |\n| N/A   37C", "|                  N/A |\n| N/A   37C",
     lambda d: d.errors == {}),
])
def test_absent_forms(vendor_smi, old, new, check):
    text = capture(vendor_smi)
    assert old in text
    parsed = xpu_smi.parse(text.replace(old, new, 1))
    assert parsed.problems == []
    assert check(parsed.devices[0])
    assert parsed.devices[1].power_watts == 90.0


def test_alignment_does_not_matter(vendor_smi):
    text = capture(vendor_smi)
    squeezed = "\n".join(re.sub(r" {2,}", " ", line) for line in text.splitlines())
    assert xpu_smi.parse(squeezed) == xpu_smi.parse(text)


def test_extra_unknown_column_is_counted_rest_intact(vendor_smi):
    text = capture(vendor_smi).replace("| XPU-Util  Compute M. |", "| XPU-Util  Compute M.  Clk |")
    text = text.replace("Default |", "Default  900MHz |")
    parsed = xpu_smi.parse(text)
    assert [p.kind for p in parsed.problems] == ["unknown_column"]
    assert len(parsed.devices) == 8
    assert parsed.devices[3].utilization == {"general": 0.0}
    assert parsed.devices[3].power_watts == 89.0


def test_truncated_block(vendor_smi):
    lines = capture(vendor_smi).splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("|   2  P800")) + 2
    parsed = xpu_smi.parse("\n".join(lines[:cut]))
    assert [d.index for d in parsed.devices] == [0, 1]
    assert [p.kind for p in parsed.problems] == ["truncated"]


def test_unknown_driver_version_is_counted(vendor_smi):
    parsed = xpu_smi.parse(capture(vendor_smi).replace("Driver Version: 5.0.21.21", "Driver Version: 7.1.0.2"))
    assert [p.kind for p in parsed.problems] == ["unknown_version"]
    assert len(parsed.devices) == 8 and parsed.devices[0].driver_version == "7.1.0.2"


def test_bad_values_are_problems_rest_intact(vendor_smi):
    parsed = xpu_smi.parse(capture(vendor_smi).replace("37C", "hot", 1).replace("00000000:05:00.0", "zz:05", 1))
    assert sorted(p.kind for p in parsed.problems) == ["parse", "parse"]
    assert parsed.devices[0].temperatures == {} and parsed.devices[0].power_watts == 88.0
    assert parsed.devices[1].hw_id == "kunlunxin-xpu1"  # bus id unreadable: per-node fallback id


def test_garbage_is_unknown_format():
    assert [p.kind for p in xpu_smi.parse("Segmentation fault\n").problems] == ["unknown_format"]
