"""Tests for the AMD ``amd-smi metric --json`` parser (exporter.parsers.amd_smi)."""

from __future__ import annotations

import copy
import json

import pytest

from exporter.model import MIB
from exporter.parsers import amd_smi

RDNA3 = "amd-smi-metric-json_radeon-rdna3-32gb_gpu0.json"


def load(vendor_smi) -> dict:
    return json.loads((vendor_smi / RDNA3).read_text())


def check_rdna3(dev) -> None:
    assert (dev.hw_id, dev.vendor, dev.kind, dev.index, dev.name) == ("amd-gpu0", "amd", "gpu", 0, "gpu0")
    assert dev.model == ""  # metric output names no product
    assert dev.utilization == {"general": 0.91, "decoder": 0.0}  # vcn: 1 of 4 engines reported; jpeg all N/A
    assert dev.memory_bandwidth_utilization == 0.66  # umc_activity
    assert dev.power_watts == 212.0 and dev.power_limit_watts is None
    assert dev.clocks_hz == {"graphics": 2774e6, "memory": 1258e6, "video": 25e6, "soc": 1280e6}
    assert dev.temperatures == {"edge": 54.0, "hotspot": 63.0, "memory": 70.0}
    assert dev.memory_total_bytes == 30576 * MIB  # "MB" is MiB
    assert dev.memory_used_bytes == 20450 * MIB
    assert dev.energy_joules == 0.0  # reported as 0.0 J by this card
    assert dev.fan_speed == pytest.approx(0.498)
    assert dev.errors == {("corrected", "umc"): 0, ("uncorrected", "umc"): 0}  # blocks win over totals


def test_rdna3_capture_gpu_data_shape(vendor_smi):
    text = (vendor_smi / RDNA3).read_text()
    assert amd_smi.detect(text)
    parsed = amd_smi.parse(text)
    assert parsed.problems == []
    assert parsed.slices == [] and parsed.processes == []
    (dev,) = parsed.devices
    check_rdna3(dev)


def test_older_top_level_list_shape(vendor_smi):
    text = json.dumps(load(vendor_smi)["gpu_data"], indent=4)
    assert amd_smi.detect(text)
    parsed = amd_smi.parse(text)
    assert parsed.problems == []
    check_rdna3(parsed.devices[0])


def test_leading_warning_text_is_skipped(vendor_smi):
    text = "WARNING: User is missing the following required groups: render, video\n" + \
        (vendor_smi / RDNA3).read_text()
    assert amd_smi.detect(text)
    parsed = amd_smi.parse(text)
    assert parsed.problems == []
    check_rdna3(parsed.devices[0])


def test_value_forms_and_absent_variants(vendor_smi):
    entry = load(vendor_smi)["gpu_data"][0]
    entry["usage"]["gfx_activity"] = 42  # bare number: the customary unit (%)
    entry["usage"]["umc_activity"] = "17 %"  # "<number> <unit>" string
    entry["power"]["socket_power"] = None
    entry["temperature"]["edge"] = "N/A"
    entry["temperature"]["hotspot"] = {"value": "N/A", "unit": "C"}
    entry["mem_usage"]["used_vram"] = {"value": 2, "unit": "GB"}
    entry["energy"]["total_energy_consumption"] = {"value": 1500000, "unit": "uJ"}
    entry["usage"]["vcn_activity"] = ["N/A", {"value": 30, "unit": "%"}, {"value": 10, "unit": "%"}, "N/A"]
    entry["ecc_blocks"] = "N/A"
    parsed = amd_smi.parse_entries([entry])
    assert parsed.problems == []
    (dev,) = parsed.devices
    assert dev.utilization["general"] == 0.42 and dev.memory_bandwidth_utilization == 0.17
    assert dev.power_watts is None
    assert dev.temperatures == {"memory": 70.0}
    assert dev.memory_used_bytes == 2 * 1024 * MIB
    assert dev.energy_joules == pytest.approx(1.5)
    assert dev.utilization["decoder"] == pytest.approx(0.2)
    assert dev.errors == {("corrected", "total"): 0, ("uncorrected", "total"): 0}  # totals when no block


def test_unknown_unit_is_a_problem_rest_intact(vendor_smi):
    doc = load(vendor_smi)
    doc["gpu_data"][0]["power"]["socket_power"] = {"value": 212, "unit": "dBm"}
    parsed = amd_smi.parse(json.dumps(doc))
    assert [p.kind for p in parsed.problems] == ["parse"]
    assert parsed.devices[0].power_watts is None
    assert parsed.devices[0].temperatures["edge"] == 54.0


def test_truncated_document_keeps_complete_gpus(vendor_smi):
    doc = load(vendor_smi)
    second = copy.deepcopy(doc["gpu_data"][0])
    second["gpu"] = 1
    doc["gpu_data"].append(second)
    text = json.dumps(doc, indent=2)
    cut = text[: text.index('"gpu": 1') + 200]
    assert amd_smi.detect(cut)
    parsed = amd_smi.parse(cut)
    assert [p.kind for p in parsed.problems] == ["truncated"]
    (dev,) = parsed.devices
    check_rdna3(dev)


def test_unknown_shape_is_unknown_version():
    parsed = amd_smi.parse(json.dumps({"schema": 9, "devices": []}))
    assert [p.kind for p in parsed.problems] == ["unknown_version"]
    assert parsed.devices == []


def test_garbage():
    for text in ("", "amd-smi: command failed\n", "{not json"):
        parsed = amd_smi.parse(text)
        assert parsed.devices == []
        assert len(parsed.problems) == 1
    assert not amd_smi.detect('{"nvidia_smi_log": 1}')


def test_entry_without_gpu_index_is_skipped(vendor_smi):
    entry = load(vendor_smi)["gpu_data"][0]
    parsed = amd_smi.parse(json.dumps([{"usage": {}}, entry]))
    assert [p.kind for p in parsed.problems] == ["parse"]
    check_rdna3(parsed.devices[0])


def test_identity_from_merged_static_sections(vendor_smi):
    entry = load(vendor_smi)["gpu_data"][0]
    entry["bus"] = {"bdf": "0000:C3:00.0"}
    entry["asic"] = {"market_name": "AMD Radeon PRO W7800", "asic_serial": "0x0000000000000000"}
    dev = amd_smi.parse_entries([entry]).devices[0]
    # all-zero serial identifies nothing: the bus id names the device
    assert (dev.hw_id, dev.pci_bus_id, dev.model, dev.serial) == (
        "amd-0000:c3:00.0", "0000:c3:00.0", "AMD Radeon PRO W7800", None)
    entry["asic"]["asic_serial"] = "0x7D21A0B8C1234567"
    assert amd_smi.parse_entries([entry]).devices[0].hw_id == "0x7D21A0B8C1234567"
    entry["uuid"] = "a4ff74a1-0000-1000-80fa-c1b6c8e00000"
    assert amd_smi.parse_entries([entry]).devices[0].hw_id == "a4ff74a1-0000-1000-80fa-c1b6c8e00000"


def _partition(vendor_smi, gpu: int, part: int, power, gfx, used_mb: int) -> dict:
    entry = load(vendor_smi)["gpu_data"][0]
    entry["gpu"] = gpu
    entry["partition"] = {"partition_id": part, "compute_partition": "CPX", "memory_partition": "NPS1"}
    entry["power"]["socket_power"] = power
    entry["usage"]["gfx_activity"] = gfx
    entry["mem_usage"]["used_vram"] = {"value": used_mb, "unit": "MB"}
    if part:
        entry["temperature"] = {"edge": {"value": 0, "unit": "C"}, "hotspot": "N/A", "mem": "N/A"}
    return entry


def test_partitions_become_slices_without_secondary_zeros(vendor_smi):
    entries = [
        _partition(vendor_smi, 0, 0, {"value": 212, "unit": "W"}, {"value": 40, "unit": "%"}, 20450),
        _partition(vendor_smi, 1, 1, {"value": 0, "unit": "W"}, {"value": 10, "unit": "%"}, 1000),
        _partition(vendor_smi, 2, 2, "N/A", "N/A", 2000),
    ]
    parsed = amd_smi.parse_entries(entries)
    assert parsed.problems == []
    (dev,) = parsed.devices
    assert dev.hw_id == "amd-gpu0" and dev.power_watts == 212.0  # partition 0 only; never the 0 W of xcp1
    assert dev.temperatures == {"edge": 54.0, "hotspot": 63.0, "memory": 70.0}
    assert dev.memory_total_bytes == 30576 * MIB  # equal totals: shared pool (NPS1)
    slices = [(s.hw_id, s.slice_id, s.slice_type, s.profile, s.info, s.utilization, s.memory_used_bytes)
              for s in parsed.slices]
    assert slices == [
        ("amd-gpu0/xcp0", "xcp0", "partition", "cpx", {"memory_partition": "nps1"}, 0.4, 20450 * MIB),
        ("amd-gpu0/xcp1", "xcp1", "partition", "cpx", {"memory_partition": "nps1"}, 0.1, 1000 * MIB),
        ("amd-gpu0/xcp2", "xcp2", "partition", "cpx", {"memory_partition": "nps1"}, None, 2000 * MIB),
    ]
    assert {s.parent_id for s in parsed.slices} == {"amd-gpu0"}


def test_split_memory_partitions_sum_into_the_device(vendor_smi):
    entries = []
    for part in range(4):  # NPS4: each partition owns a quarter of the VRAM
        entry = _partition(vendor_smi, part, part, {"value": 500, "unit": "W"}, "N/A", 100 * (part + 1))
        entry["mem_usage"]["total_vram"] = {"value": 7644, "unit": "MB"}
        entry["partition"]["memory_partition"] = "NPS4"
        entries.append(entry)
    entries[0]["mem_usage"]["total_vram"] = {"value": 7643, "unit": "MB"}
    parsed = amd_smi.parse_entries(entries)
    (dev,) = parsed.devices
    assert dev.memory_total_bytes == (7643 + 3 * 7644) * MIB
    assert dev.memory_used_bytes == (100 + 200 + 300 + 400) * MIB
    assert [s.memory_limit_bytes for s in parsed.slices] == [7643 * MIB] + [7644 * MIB] * 3
    assert {s.info["memory_partition"] for s in parsed.slices} == {"nps4"}


def test_capabilities_declared():
    caps = amd_smi.CAPABILITIES
    assert (caps["vendor"], caps["kind"], caps["slices"]) == ("amd", "gpu", ["partition"])
    assert "hw_energy_joules_total" in caps["metrics"]
