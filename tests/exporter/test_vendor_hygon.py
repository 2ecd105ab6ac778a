"""Tests for the Hygon DCU ``hy-smi`` / DTK ``rocm-smi`` parser (exporter.parsers.hy_smi)."""

from __future__ import annotations

import pytest

from exporter.model import MIB
from exporter.parsers import hy_smi

LOADED = "hy-smi_8dcu_manual-perf_loaded.txt"
K100 = "hy-smi_k100-ai_4dcu_800w_idle.txt"

# Newer DTK layout (HCU naming, decimal HCU%, Dec%/Enc%, Mode N/A, trailing
# spaces) followed by `hy-smi --showmeminfo vram` detail lines; synthetic values
# in the documented format.
HCU_LAYOUT = """\
================================= System Management Interface ==================================
================================================================================================
HCU     Temp     AvgPwr     Perf     PwrCap     VRAM%      HCU%      Dec%      Enc%      Mode   \n\
0       40.0C    157.0W     high     800.0W     3%         12.5%     0.0%      N/A       Normal \n\
1       41.5C    N/A        high     800.0W     N/A        97.3%     1.5%      0.5%      N/A    \n\
================================================================================================
======================================== End of SMI Log ========================================
HCU[0]          : vram Total Memory (MiB): 65520
HCU[0]          : vram Total Used Memory (MiB): 2048
HCU[1]          : vram Total Memory (MiB): 65520
HCU[1]          : vram Total Used Memory (MiB): N/A
"""


def test_loaded_8dcu_capture(vendor_smi):
    text = (vendor_smi / LOADED).read_text()
    assert hy_smi.detect(text)
    parsed = hy_smi.parse(text)
    assert parsed.problems == []
    assert parsed.slices == [] and parsed.processes == []
    temps = [67.0, 68.0, 69.0, 68.0, 71.0, 73.0, 70.0, 68.0]
    utils = [0.74, 0.29, 0.31, 0.28, 0.35, 0.17, 0.37, 0.46]
    assert [d.temperatures for d in parsed.devices] == [{"gpu": t} for t in temps]
    assert [d.utilization for d in parsed.devices] == [{"general": u} for u in utils]
    for index, dev in enumerate(parsed.devices):
        assert (dev.hw_id, dev.name, dev.index) == (f"hygon-dcu{index}", f"dcu{index}", index)
        assert (dev.vendor, dev.kind, dev.model) == ("hygon", "dcu", "")
        assert dev.power_watts == 8.0 and dev.power_limit_watts == 600.0
        # VRAM% is a capacity ratio without bytes: the ratio, and no byte counts
        assert dev.memory_used_bytes is None and dev.memory_total_bytes is None
    assert [d.memory_utilization for d in parsed.devices] == [0.87] + [0.85] * 7


def test_vram_percentage_becomes_the_memory_utilization_ratio(vendor_smi):
    """Rendered: hw_gpu_memory_utilization_ratio from VRAM% (no bytes, so no usage/limit series)."""
    from exporter.model import Snapshot
    from exporter.render import RenderOptions, render_families

    parsed = hy_smi.parse((vendor_smi / LOADED).read_text())
    fams = {f.name: f for f in render_families([Snapshot("hygon", 1.0, devices=parsed.devices)], [],
                                                RenderOptions(node_name="n"))}
    ratios = {s.labels["hw_name"]: s.value for s in fams["hw_gpu_memory_utilization_ratio"].samples}
    assert ratios["dcu0"] == 0.87 and ratios["dcu7"] == 0.85
    assert "hw_gpu_memory_usage_bytes" not in fams


def test_k100_idle_capture(vendor_smi):
    parsed = hy_smi.parse((vendor_smi / K100).read_text())
    assert parsed.problems == []
    assert [d.power_watts for d in parsed.devices] == [118.0, 120.0, 116.0, 138.0]
    assert [d.temperatures["gpu"] for d in parsed.devices] == [49.0, 48.0, 53.0, 49.0]
    assert {d.power_limit_watts for d in parsed.devices} == {800.0}
    assert [d.utilization for d in parsed.devices] == [{"general": 0.0}] * 4


def test_hcu_layout_decimals_na_and_meminfo():
    assert hy_smi.detect(HCU_LAYOUT)
    parsed = hy_smi.parse(HCU_LAYOUT)
    assert parsed.problems == []
    zero, one = parsed.devices
    assert zero.utilization == {"general": 0.125, "decoder": 0.0}  # Enc% N/A: absent
    assert (zero.memory_used_bytes, zero.memory_total_bytes) == (2048 * MIB, 65520 * MIB)
    assert zero.power_watts == 157.0 and zero.temperatures == {"gpu": 40.0}
    assert one.power_watts is None and one.power_limit_watts == 800.0
    assert one.utilization == {"general": 0.973, "decoder": 0.015, "encoder": 0.005}
    assert one.temperatures == {"gpu": 41.5}
    assert (one.memory_used_bytes, one.memory_total_bytes) == (None, 65520 * MIB)


def test_detail_lines_alone_with_ids_and_byte_units():
    text = """\
DCU[0]		: VRAM Total Memory (B): 68702699520
DCU[0]		: VRAM Total Used Memory (B): 1073741824
DCU[0]		: Serial Number: SN0000000001
DCU[0]		: Temperature (Sensor junction) (C): 51.0
DCU[1]		: PCI Bus: 0000:1A:00.0
DCU[1]		: Card Series: K100_AI
DCU[1]		: Some Future Key: 7
"""
    parsed = hy_smi.parse(text)
    assert parsed.problems == []
    zero, one = parsed.devices
    assert (zero.hw_id, zero.serial) == ("SN0000000001", "SN0000000001")
    assert (zero.memory_used_bytes, zero.memory_total_bytes) == (1073741824, 68702699520)
    assert zero.temperatures == {"hotspot": 51.0}
    assert (one.hw_id, one.pci_bus_id, one.model) == ("hygon-0000:1a:00.0", "0000:1a:00.0", "K100_AI")


def test_extra_unknown_column_is_counted_rest_intact(vendor_smi):
    text = (vendor_smi / LOADED).read_text().replace("Mode\n", "Mode      SomeNew%\n")
    text = text.replace("Normal\n", "Normal    5%\n")
    parsed = hy_smi.parse(text)
    assert [p.kind for p in parsed.problems] == ["unknown_column"]
    assert len(parsed.devices) == 8 and parsed.devices[0].utilization == {"general": 0.74}


def test_renamed_columns_unknown_layout_counted(vendor_smi):
    # an unknown future layout: every column renamed but the index column
    text = (vendor_smi / LOADED).read_text().replace("AvgPwr", "Power(W)").replace("PwrCap", "Cap(W)")
    parsed = hy_smi.parse(text)
    assert [p.kind for p in parsed.problems] == ["unknown_column", "unknown_column"]
    assert [d.power_watts for d in parsed.devices] == [None] * 8
    assert parsed.devices[0].temperatures == {"gpu": 67.0}


def test_truncated_last_row_keeps_what_it_has(vendor_smi):
    lines = (vendor_smi / LOADED).read_text().splitlines()
    cut = "\n".join(lines[:10] + [lines[10][:30]])  # DCU 7 cut after AvgPwr
    parsed = hy_smi.parse(cut)
    assert [p.kind for p in parsed.problems] == ["truncated"]
    assert len(parsed.devices) == 8
    last = parsed.devices[7]
    assert last.temperatures == {"gpu": 68.0} and last.power_watts == 8.0
    assert last.power_limit_watts is None and last.utilization == {}


@pytest.mark.parametrize("bad", ["67.0F", "hot"])
def test_bad_value_is_a_problem(vendor_smi, bad):
    text = (vendor_smi / LOADED).read_text().replace("67.0C", bad)
    parsed = hy_smi.parse(text)
    assert [p.kind for p in parsed.problems] == ["parse"]
    assert parsed.devices[0].temperatures == {} and parsed.devices[0].power_watts == 8.0


def test_garbage_is_unknown_format():
    parsed = hy_smi.parse("hy-smi: error while loading shared libraries\n")
    assert [p.kind for p in parsed.problems] == ["unknown_format"]
    assert not hy_smi.detect("GPU  Temp (DieEdge)  AvgPwr\n")  # upstream AMD rocm-smi is not Hygon's
