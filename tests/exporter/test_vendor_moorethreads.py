"""Moore Threads: the experimental ``mthreads-gmi -q`` / ``-q -j`` parser.

No real capture exists; the inputs below are written from the documented
format (nvidia-smi-like ``Key : Value`` blocks with ``GPU UUID`` and
``Product Name``; the same as JSON with ``-j``)."""

from __future__ import annotations

import json

import pytest

from exporter.model import MIB
from exporter.parsers import mthreads_gmi as mt

UUID0 = "GPU-a1b2c3d4-0000-1111-2222-333344445555"

TEXT = """\
==============MTHREADS-GMI LOG==============
Timestamp                                 : Tue Jan  6 10:00:00 2026
Driver Version                            : 2.7.0
Attached GPUs                             : 2
GPU 00000000:3A:00.0
    Product Name                          : MTT S4000
    GPU UUID                              : GPU-a1b2c3d4-0000-1111-2222-333344445555
    Serial Number                         : N/A
    Minor Number                          : 0
    VBIOS Version                         : 3.4.1
    PCI
        Bus Id                            : 00000000:3A:00.0
    FB Memory Usage
        Total                             : 49152 MiB
        Used                              : 1024 MiB
    Utilization
        Gpu                               : 37 %
        Memory                            : 5 %
    Temperature
        GPU Current Temp                  : 45 C
    Power Readings
        Power Draw                        : 120.50 W
        Power Limit                       : 450.00 W
    Clocks
        Graphics                          : 1750 MHz
        Memory                            : 1600 MHz
    Max Clocks
        Graphics                          : 2000 MHz
    Fan Speed                             : N/A
GPU 00000000:3B:00.0
    Product Name                          : MTT S4000
    GPU UUID                              : N/A
    Serial Number                         : MT0123456789
    Minor Number                          : 1
    PCI
        Bus Id                            : 00000000:3B:00.0
    FB Memory Usage
        Total                             : 49152 MiB
        Used                              : Not Supported
    Temperature
        GPU Current Temp                  : -
"""


def kinds(parsed):
    return [p.kind for p in parsed.problems]


def check_first(dev):
    assert dev.hw_id == UUID0
    assert (dev.vendor, dev.kind, dev.index, dev.name, dev.model) == ("moorethreads", "gpu", 0, "gpu0", "MTT S4000")
    assert (dev.driver_version, dev.firmware_version, dev.serial, dev.pci_bus_id) == (
        "2.7.0", "3.4.1", None, "0000:3a:00.0")
    assert (dev.memory_total_bytes, dev.memory_used_bytes) == (49152 * MIB, 1024 * MIB)
    assert dev.utilization == {"general": 0.37}
    assert dev.memory_bandwidth_utilization is None  # "Memory %" is not documented as bandwidth or capacity
    assert dev.temperatures == {"gpu": 45.0}
    assert (dev.power_watts, dev.power_limit_watts) == (120.5, 450.0)
    assert dev.clocks_hz == {"graphics": 1_750_000_000.0, "memory": 1_600_000_000.0}
    assert dev.fan_speed is None


def test_q_text():
    assert mt.detect(TEXT)
    parsed = mt.parse(TEXT)
    assert parsed.problems == []
    first, second = parsed.devices
    check_first(first)
    # no UUID: the serial is the id; absent forms stay absent
    assert (second.hw_id, second.serial, second.index, second.pci_bus_id) == (
        "MT0123456789", "MT0123456789", 1, "0000:3b:00.0")
    assert (second.memory_total_bytes, second.memory_used_bytes, second.temperatures) == (49152 * MIB, None, {})


def test_q_text_without_banner_and_gpu_n_titles():
    text = "Driver Version : 2.7.0\n\nGPU0\n    Product Name : MTT S80\n    Utilization\n        Gpu : 3 %\n"
    assert mt.detect(text)
    (dev,) = mt.parse(text).devices
    assert (dev.hw_id, dev.index, dev.model, dev.utilization, dev.driver_version) == (
        "moorethreads-gpu0", 0, "MTT S80", {"general": 0.03}, "2.7.0")


def test_q_text_unknown_keys_are_ignored_and_truncation_keeps_the_rest():
    text = TEXT.replace("    Fan Speed", "    Virtualization Mode                   : sGPU\n    Fan Speed")
    assert mt.parse(text).devices == mt.parse(TEXT).devices
    cut = mt.parse(TEXT[: TEXT.index("    Temperature\n        GPU Current Temp                  : 45")])
    (dev, ) = cut.devices
    assert dev.hw_id == UUID0 and dev.memory_total_bytes == 49152 * MIB and dev.temperatures == {}


def test_q_text_garbage_value():
    parsed = mt.parse(TEXT.replace(": 37 %", ": lots"))
    assert kinds(parsed) == ["parse"]
    assert parsed.devices[0].utilization == {} and parsed.devices[0].power_watts == 120.5


JSON_DOC = {
    "driver_version": "2.7.0",
    "gpus": [
        {
            "index": 0,
            "product_name": "MTT S4000",
            "gpu_uuid": UUID0,
            "serial_number": "N/A",
            "vbios_version": "3.4.1",
            "pci": {"bus_id": "00000000:3A:00.0"},
            "memory_usage": {"total": 49152, "used": {"value": 1, "unit": "GiB"}},
            "utilization": {"gpu": 37, "memory": 5},
            "temperature": {"gpu_current_temp": "45 C"},
            "power_readings": {"power_draw": 120.5, "power_limit": "450 W"},
            "clocks": {"graphics": 1750, "memory": "1600 MHz"},
            "fan_speed": None,
            "processes": [{"pid": 1, "used_memory": 10}],
        }
    ],
}


def test_q_json_list_shape():
    text = json.dumps(JSON_DOC, indent=2)
    assert mt.detect(text)
    parsed = mt.parse(text)
    assert parsed.problems == []
    (dev,) = parsed.devices
    check_first(dev)


def test_q_json_keyed_and_top_level_list_shapes():
    gpu = dict(JSON_DOC["gpus"][0])
    keyed = {"Driver Version": "2.7.0", "GPU0": gpu}
    (dev,) = mt.parse(json.dumps(keyed)).devices
    check_first(dev)
    (dev,) = mt.parse(json.dumps([gpu])).devices
    assert dev.hw_id == UUID0 and dev.driver_version is None  # no top-level driver in a bare list


@pytest.mark.parametrize("na", ["N/A", "[N/A]", "Not Supported", "-", "", None])
def test_q_json_na_variants(na):
    gpu = dict(JSON_DOC["gpus"][0])
    gpu["temperature"] = {"gpu_current_temp": na}
    gpu["power_readings"] = {"power_draw": na, "power_limit": 450}
    gpu["utilization"] = {"gpu": {"value": na, "unit": "%"}}
    parsed = mt.parse(json.dumps({"gpus": [gpu]}))
    assert parsed.problems == []
    (dev,) = parsed.devices
    assert (dev.temperatures, dev.power_watts, dev.power_limit_watts, dev.utilization) == ({}, None, 450.0, {})


def test_q_json_truncated_and_malformed():
    text = json.dumps(JSON_DOC)
    parsed = mt.parse(text[:-30])
    assert kinds(parsed) == ["truncated"] and parsed.devices == []
    assert kinds(mt.parse('{"gpus": [1, 2]}')) == ["parse", "parse"]
    assert kinds(mt.parse('{"gpus": [}')) == ["parse"]


def test_detect_does_not_claim_other_tools(vendor_smi):
    for path in sorted(vendor_smi.iterdir()):
        if path.is_file():
            assert not mt.detect(path.read_text(errors="replace")), path.name
    assert not mt.detect(TEXT.replace("MTHREADS-GMI", "NVSMI").replace("MTT", "NVIDIA"))
    assert kinds(mt.parse("nothing here\n")) == ["unknown_format"]


def test_marked_experimental():
    assert mt.CAPABILITIES["status"] == "experimental"
