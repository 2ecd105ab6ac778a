"""Tests for the ``nvidia-smi -q`` text parser."""

from __future__ import annotations

import pytest

from exporter.model import MIB
from exporter.parsers import nvidia_smi_text as nt

H100 = "nvidia-smi-q_h100_590_load.txt"
GPU_UUID = "GPU-00000000-0000-0000-0000-000000000000"


def test_h100_query_text(vendor_smi):
    parsed = nt.parse((vendor_smi / H100).read_text())
    assert parsed.problems == []
    assert parsed.slices == []  # MIG disabled, no MIG Devices section
    (dev,) = parsed.devices
    assert dev.hw_id == GPU_UUID
    assert (dev.vendor, dev.kind, dev.index, dev.name) == ("nvidia", "gpu", 0, "gpu0")
    assert dev.model == "NVIDIA H100 80GB HBM3"
    assert dev.serial == "0000000000000"
    assert dev.driver_version == "590.48.01"
    assert dev.firmware_version == "96.00.A5.00.01"
    assert dev.pci_bus_id == "0000:00:09.0"
    assert dev.state == "ok"
    assert dev.memory_total_bytes == 81559 * MIB
    assert dev.memory_used_bytes == 19818 * MIB
    assert dev.utilization == {"general": 1.0, "encoder": 0.0, "decoder": 0.0}
    assert dev.memory_bandwidth_utilization == 0.11
    assert dev.power_watts == 588.39  # Instantaneous wins over Average (629.45)
    assert dev.power_limit_watts == 700.0  # Current Power Limit
    assert dev.temperatures == {"gpu": 59.0, "memory": 55.0}
    assert dev.temperature_limits == {}  # only relative T.Limit thresholds in this capture
    assert dev.clocks_hz == {"graphics": 1980e6, "sm": 1980e6, "memory": 2619e6, "video": 1545e6}
    assert dev.throttle_seconds == {
        "power": 0.0,
        "sync_boost": 0.0,
        "thermal": 0.0,
        "hw_thermal": 0.0,
        "hw_power_brake": 0.0,
    }
    assert dev.errors == {
        ("corrected", "sram"): 0,
        ("uncorrected", "sram"): 0,
        ("corrected", "dram"): 0,
        ("uncorrected", "dram"): 0,
    }
    assert dev.fan_speed is None
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (11327, GPU_UUID, 2566 * MIB, "/root/tools/memhog"),
        (11328, GPU_UUID, 1542 * MIB, "/root/tools/memhog"),
        (11345, GPU_UUID, 15690 * MIB, "./gpu_burn"),
    ]


def test_text_and_xml_vocabulary_tree(vendor_smi):
    root = nt.to_element((vendor_smi / H100).read_text())
    gpu = root.find("gpu")
    assert gpu is not None and gpu.get("id") == "00000000:00:09.0"
    assert root.findtext("driver_version") == "590.48.01"
    assert gpu.findtext("temperature/gpu_temp") == "59 C"
    assert gpu.findtext("gpu_power_readings/instant_power_draw") == "588.39 W"
    assert gpu.findtext("ecc_errors/volatile/sram_uncorrectable_secded") == "0"


OLD_MIG = """
==============NVSMI LOG==============

Timestamp                                 : Fri Jan 27 11:32:31 2023
Driver Version                            : 470.82.01
CUDA Version                              : 11.4

Attached GPUs                             : 2
GPU 00000000:07:00.0
    Product Name                          : NVIDIA A100-SXM4-40GB
    MIG Mode
        Current                           : Enabled
        Pending                           : Enabled
    MIG Devices
        MIG Device
            Index                         : 0
            GPU Instance ID               : 1
            Compute Instance ID           : 0
            Device Attributes
                Shared
                    Multiprocessor count  : 42
            FB Memory Usage
                Total                     : 19968 MiB
                Used                      : 10 MiB
                Free                      : 19958 MiB
        MIG Device
            Index                         : 1
            GPU Instance ID               : 2
            Compute Instance ID           : 0
            FB Memory Usage
                Total                     : 9856 MiB
                Used                      : N/A
    Serial Number                         : 1324
    GPU UUID                              : N/A
    Minor Number                          : 3
    PCI
        Bus Id                            : 00000000:07:00.0
    Fan Speed                             : 35 %
    FB Memory Usage
        Total                             : 40536 MiB
        Used                              : 27 MiB
    Utilization
        Gpu                               : N/A
        Memory                            : N/A
    ECC Errors
        Volatile
            Single Bit
                Device Memory             : 2
                Register File             : 0
                Total                     : 2
            Double Bit
                Device Memory             : N/A
                Total                     : 1
    Temperature
        GPU Current Temp                  : 31 C
        GPU Shutdown Temp                 : 92 C
        GPU Slowdown Temp                 : 89 C
    Power Readings
        Power Draw                        : 52.50 W
        Enforced Power Limit              : 400.00 W
    Clocks
        Graphics                          : 210 MHz
        SM                                : bogus MHz
    Processes
        GPU instance ID                   : 1
        Compute instance ID               : 0
        Process ID                        : 4242
            Type                          : C
            Name                          : python
            Used GPU Memory               : 9 MiB
        GPU instance ID                   : 2
        Compute instance ID               : 0
        Process ID                        : 4343
            Type                          : C
            Name                          : python3
            Used GPU Memory               : 3 MiB

GPU 00000000:0A:00.0
    Product Name                          : Tesla T4
    GPU UUID                              : GPU-t4
    Processes                             : None
    Retired Pages
        Pending                           : No
    Remapped Rows
        Pending                           : Yes
"""


def test_synthetic_mig_multi_gpu_old_layout():
    parsed = nt.parse(OLD_MIG)
    a100, t4 = parsed.devices
    assert (a100.hw_id, a100.index, a100.name, a100.model) == ("1324", 0, "gpu0", "NVIDIA A100-SXM4-40GB")
    assert (t4.hw_id, t4.index, t4.name, t4.pci_bus_id) == ("GPU-t4", 1, "gpu1", "0000:0a:00.0")
    assert (a100.state, t4.state) == ("ok", "predicted_failure")  # T4: a row remap is pending
    assert a100.driver_version == "470.82.01"
    assert a100.pci_bus_id == "0000:07:00.0"
    assert a100.fan_speed == 0.35
    assert a100.memory_total_bytes == 40536 * MIB
    assert a100.memory_used_bytes == 27 * MIB
    assert a100.utilization == {} and a100.memory_bandwidth_utilization is None
    assert a100.errors == {("corrected", "dram"): 2, ("corrected", "sram"): 0, ("uncorrected", "total"): 1}
    assert a100.temperatures == {"gpu": 31.0}
    assert a100.temperature_limits == {"high.degraded": 89.0, "high.critical": 92.0}
    assert a100.power_watts == 52.5 and a100.power_limit_watts == 400.0
    assert a100.clocks_hz == {"graphics": 210e6}  # SM is unparsable -> absent + Problem
    assert [p.kind for p in parsed.problems] == ["parse"]
    assert "sm_clock" in parsed.problems[0].detail

    assert [(s.hw_id, s.slice_id, s.memory_used_bytes, s.memory_limit_bytes, s.info) for s in parsed.slices] == [
        ("1324/gi1/ci0", "gi1/ci0", 10 * MIB, 19968 * MIB, {"mig_device_index": "0"}),
        ("1324/gi2/ci0", "gi2/ci0", None, 9856 * MIB, {"mig_device_index": "1"}),
    ]
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (4242, "1324/gi1/ci0", 9 * MIB, "python"),
        (4343, "1324/gi2/ci0", 3 * MIB, "python3"),
    ]


def test_flat_old_process_list():
    text = (
        "==============NVSMI LOG==============\n"
        "GPU 00000000:01:00.0\n"
        "    GPU UUID : GPU-a\n"
        "    Processes\n"
        "        Process ID : 1\n"
        "        Type : C\n"
        "        Name : a\n"
        "        Used GPU Memory : 1 MiB\n"
        "        Process ID : 2\n"
        "        Type : C\n"
        "        Name : b\n"
        "        Used GPU Memory : Not available in WDDM driver model\n"
    )
    parsed = nt.parse(text)
    assert [(p.pid, p.name, p.memory_bytes) for p in parsed.processes] == [(1, "a", MIB), (2, "b", None)]
    assert parsed.problems == []  # the Windows "not available" text is an absent form


def test_banner_only_is_zero_devices():
    parsed = nt.parse("\n==============NVSMI LOG==============\n\nAttached GPUs : 0\n")
    assert parsed.devices == [] and parsed.problems == []


@pytest.mark.parametrize("text", ["", "garbage", "a:b\nc : d", "\x00\x01\x02", "<nvidia_smi_log/>"])
def test_garbage_never_raises(text):
    parsed = nt.parse(text)
    assert parsed.devices == []
    assert parsed.problems
    assert {p.kind for p in parsed.problems} <= {"parse"}


def test_unrecognised_lines_inside_a_log_are_counted():
    text = "==============NVSMI LOG==============\nGPU 00000000:01:00.0\n    GPU UUID : GPU-a\n    weird:line\n"
    parsed = nt.parse(text)
    assert [d.hw_id for d in parsed.devices] == ["GPU-a"]
    assert [p.kind for p in parsed.problems] == ["parse"]
