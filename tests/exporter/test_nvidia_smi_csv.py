"""Tests for the ``nvidia-smi --query-gpu`` / ``--query-compute-apps`` CSV parser."""

from __future__ import annotations

import pytest

from exporter.model import MIB
from exporter.parsers import nvidia_smi_csv as nc

H100 = "nvidia-smi-query-gpu_h100_590_load.csv"
L40S = "nvidia-smi-query-gpu_l40s_595_load.csv"
APPS = "nvidia-smi-query-compute-apps_h100-mig_590_load.csv"
MASKED_UUID = "GPU-00000000-0000-0000-0000-000000000000"


def test_h100_query_gpu(vendor_smi):
    parsed = nc.parse((vendor_smi / H100).read_text())
    assert parsed.problems == []
    assert parsed.slices == [] and parsed.processes == []
    (dev,) = parsed.devices
    assert dev.hw_id == MASKED_UUID
    assert (dev.vendor, dev.kind, dev.model) == ("nvidia", "gpu", "NVIDIA H100 80GB HBM3")
    assert (dev.index, dev.name) == (0, "gpu0")
    assert dev.serial == "0000000000000"
    assert dev.driver_version == "590.48.01"
    assert dev.firmware_version == "96.00.A5.00.01"
    assert dev.pci_bus_id == "0000:00:09.0"
    assert dev.compute_capability == "9.0"
    assert dev.state == "ok"
    assert dev.memory_total_bytes == 81559 * MIB
    assert dev.memory_used_bytes == 19818 * MIB
    assert dev.utilization == {"general": 1.0, "encoder": 0.0, "decoder": 0.0}
    assert dev.memory_bandwidth_utilization == 0.11  # utilization.memory is bandwidth
    assert dev.temperatures == {"gpu": 59.0, "memory": 54.0}
    assert dev.temperature_limits == {}
    assert dev.power_watts == 625.68  # power.draw.instant preferred over power.draw (631.95)
    assert dev.power_limit_watts == 700.0
    assert dev.energy_joules is None
    assert dev.clocks_hz == {"graphics": 1980e6, "sm": 1980e6, "memory": 2619e6, "video": 1545e6}
    assert dev.fan_speed is None  # [N/A]
    assert dev.errors == {
        ("corrected", "dram"): 0,
        ("corrected", "sram"): 0,
        ("uncorrected", "dram"): 0,
        ("uncorrected", "sram"): 0,
    }
    assert dev.throttle_seconds == {
        "power": 0.0,
        "sync_boost": 0.0,
        "thermal": 0.0,
        "hw_thermal": 0.0,
        "hw_power_brake": 0.0,
    }


def test_l40s_query_gpu(vendor_smi):
    parsed = nc.parse((vendor_smi / L40S).read_text())
    assert parsed.problems == []
    (dev,) = parsed.devices
    assert dev.hw_id == MASKED_UUID
    assert dev.model == "NVIDIA L40S"
    assert dev.driver_version == "595.80"
    assert dev.firmware_version == "95.02.66.00.02"
    assert dev.pci_bus_id == "0000:01:00.0"
    assert dev.compute_capability == "8.9"
    assert dev.memory_total_bytes == 46068 * MIB
    assert dev.memory_used_bytes == 1235 * MIB
    assert dev.utilization == {"general": 0.09, "encoder": 0.60, "decoder": 0.0}
    assert dev.memory_bandwidth_utilization == 0.02
    assert dev.temperatures == {"gpu": 54.0}  # temperature.memory is N/A
    assert dev.power_watts == 112.38
    assert dev.power_limit_watts == 350.0
    assert dev.clocks_hz == {"graphics": 2520e6, "sm": 2520e6, "memory": 9001e6, "video": 1965e6}
    assert dev.throttle_seconds["power"] == 204.642816
    assert dev.throttle_seconds["thermal"] == 0.0


def test_compute_apps(vendor_smi):
    parsed = nc.parse((vendor_smi / APPS).read_text())
    assert parsed.problems == []
    assert parsed.devices == []
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (21180, MASKED_UUID, 2296 * MIB, "/root/tools/memhog"),
        (21181, MASKED_UUID, 1272 * MIB, "/root/tools/memhog"),
        (21198, MASKED_UUID, 7484 * MIB, "./gpu_burn"),
    ]


def test_header_kind(vendor_smi):
    assert nc.header_kind((vendor_smi / H100).read_text().splitlines()[0]) == "query-gpu"
    assert nc.header_kind((vendor_smi / APPS).read_text().splitlines()[0]) == "compute-apps"
    assert nc.header_kind("0, NVIDIA H100, GPU-1") is None
    assert nc.header_kind("dev, die, hottemp, power") is None


def test_split_header():
    assert nc.split_header(["memory.used [MiB]", " index", "Power.Draw [W] "]) == [
        ("memory.used", "MiB"),
        ("index", None),
        ("power.draw", "W"),
    ]


# ---------------------------------------------------------------- synthetic edge cases


def test_noheader_is_rejected():
    parsed = nc.parse("0, NVIDIA H100 80GB HBM3, GPU-1, 100 %\n")
    assert parsed.devices == []
    assert [p.kind for p in parsed.problems] == ["unknown_format"]


def test_nounits_uses_header_units_and_aliases():
    text = (
        "index, gpu_uuid, gpu_name, memory.used [MiB], utilization.gpu [%], clocks.gr [MHz], "
        "power.draw [W], fan.speed [%]\n"
        "0, GPU-a, Tesla T4, 100, 50, 1590, 27.5, 30\n"
        "1, GPU-b, Tesla T4, [Not Supported], [N/A], , Unknown Error, N/A\n"
    )
    parsed = nc.parse(text)
    assert parsed.problems == []
    a, b = parsed.devices
    assert (a.hw_id, a.model, a.index, a.name) == ("GPU-a", "Tesla T4", 0, "gpu0")
    assert a.memory_used_bytes == 100 * MIB
    assert a.utilization == {"general": 0.5}
    assert a.clocks_hz == {"graphics": 1590e6}
    assert a.power_watts == 27.5
    assert a.fan_speed == 0.30
    assert b.memory_used_bytes is None
    assert b.utilization == {} and b.clocks_hz == {}
    assert b.power_watts is None and b.fan_speed is None


def test_short_and_long_rows_keep_what_they_have():
    text = "index, uuid, memory.used [MiB], power.draw [W]\n0, GPU-a, 10 MiB\n1, GPU-b, 5 MiB, 7 W, extra\n"
    parsed = nc.parse(text)
    assert [p.kind for p in parsed.problems] == ["parse", "parse"]
    a, b = parsed.devices
    assert (a.hw_id, a.memory_used_bytes, a.power_watts) == ("GPU-a", 10 * MIB, None)
    assert (b.hw_id, b.memory_used_bytes, b.power_watts) == ("GPU-b", 5 * MIB, 7.0)


def test_bad_value_is_none_plus_problem():
    parsed = nc.parse("uuid, memory.total [MiB], temperature.gpu\nGPU-a, lots MiB, hot\n")
    (dev,) = parsed.devices
    assert dev.memory_total_bytes is None
    assert dev.temperatures == {}
    assert [p.kind for p in parsed.problems] == ["parse", "parse"]
    assert all("GPU-a" in p.detail for p in parsed.problems)


def test_identity_fallbacks_and_index_from_order():
    text = "name, serial, pci.bus_id\nA, [N/A], 00000000:C1:00.0\nB, 1234, 00000000:C2:00.0\nC, N/A, N/A\n"
    devs = nc.parse(text).devices
    assert [(d.hw_id, d.index, d.pci_bus_id) for d in devs] == [
        ("nvidia-0000:c1:00.0", 0, "0000:c1:00.0"),
        ("1234", 1, "0000:c2:00.0"),
        ("nvidia-gpu2", 2, None),
    ]


def test_ecc_total_only_when_no_source_breakdown():
    text = (
        "uuid, ecc.errors.corrected.volatile.total, ecc.errors.uncorrected.volatile.total, "
        "ecc.errors.uncorrected.volatile.dram\nGPU-a, 7, 3, 1\n"
    )
    assert nc.parse(text).devices[0].errors == {("corrected", "total"): 7, ("uncorrected", "dram"): 1}


def test_recovery_action_and_remap_failure_state():
    text = (
        "uuid, gpu_recovery_action, remapped_rows.failure\n"
        "GPU-a, None, Yes\nGPU-b, Drain and Reset, No\nGPU-c, None, No\n"
    )
    assert [d.state for d in nc.parse(text).devices] == ["predicted_failure", "degraded", "ok"]


def test_header_only_and_empty():
    assert nc.parse("index, uuid\n").devices == []
    assert nc.parse("index, uuid\n").problems == []
    assert [p.kind for p in nc.parse("").problems] == ["unknown_format"]


def test_compute_apps_edge_cases():
    text = (
        "pid, process_name, gpu_uuid, gpu_bus_id, used_gpu_memory [MiB]\n"
        "10, a, MIG-abc, 00000000:01:00.0, 5 MiB\n"
        "11, b, [N/A], 00000000:01:00.0, [N/A]\n"
        "N/A, c, GPU-x, 00000000:01:00.0, 1 MiB\n"
        "12, d, N/A, N/A, 1 MiB\n"
        "13, e\n"
    )
    parsed = nc.parse_compute_apps(text)
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (10, "MIG-abc", 5 * MIB, "a"),
        (11, "nvidia-0000:01:00.0", None, "b"),
    ]
    # no pid, no device id, short row (which also has no device id)
    assert [p.kind for p in parsed.problems] == ["parse", "parse", "parse", "parse"]


@pytest.mark.parametrize("text", ["garbage", "\x00\x01,\x02", '"unterminated, quote\n', ",,,\n,,,"])
def test_garbage_never_raises(text):
    parsed = nc.parse(text)
    assert parsed.devices == [] and parsed.processes == []
    assert parsed.problems
