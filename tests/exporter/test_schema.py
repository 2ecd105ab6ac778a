"""The schema follows the naming rules it promises (docs/metrics.md)."""

import re

from accelscope.schema import COUNTER, GAUGE, HISTOGRAM, INFO
from exporter import schema as S

UNIT_SUFFIX = {"By": "_bytes", "s": "_seconds", "W": "_watts", "J": "_joules", "Cel": "_celsius", "Hz": "_hertz"}


def test_names_units_and_suffixes():
    names = [s.name for s in S.ALL]
    assert len(names) == len(set(names)), "duplicate metric name"
    for s in S.ALL:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", s.name), s.name
        base = s.name[: -len("_total")] if s.type == COUNTER else s.name
        if s.type == COUNTER:
            assert s.name.endswith("_total"), s.name
        else:
            assert not s.name.endswith("_total"), s.name
        if s.type == INFO:
            assert s.name.endswith("_info")
        if s.unit in UNIT_SUFFIX:
            assert base.endswith(UNIT_SUFFIX[s.unit]), (s.name, s.unit)
        if s.type == GAUGE and s.unit == "1" and s.otel_instrument == "gauge":
            assert s.name.endswith("_ratio"), s.name
        if s.name.endswith("_ratio"):
            assert s.unit == "1" and s.type == GAUGE
        assert s.type in (GAUGE, COUNTER, HISTOGRAM, INFO)
        assert s.help.endswith(".") and len(s.help) > 20


def test_otel_names_and_attribute_map():
    expected = {
        "hw_gpu_utilization_ratio": "hw.gpu.utilization", "hw_gpu_memory_usage_bytes": "hw.gpu.memory.usage",
        "hw_gpu_memory_limit_bytes": "hw.gpu.memory.limit", "hw_power_watts": "hw.power",
        "hw_energy_joules_total": "hw.energy", "hw_temperature_celsius": "hw.temperature",
        "hw_errors_total": "hw.errors", "hw_status": "hw.status",
        "hw_gpu_memory_utilization_ratio": "hw.gpu.memory.utilization", "hw_gpu_io_bytes_total": "hw.gpu.io",
    }
    by_name = {s.name: s for s in S.ALL}
    for prom, otel in expected.items():
        assert by_name[prom].otel_name == otel
    for s in S.ALL:
        if s.otel_name:
            for label in s.labels:
                assert label in S.OTEL_ATTRIBUTES, (s.name, label)


def test_slices_and_devices_never_share_a_family():
    dev = {s.name for s in S.DEVICE_FAMILIES}
    sl = {s.name for s in S.SLICE_FAMILIES}
    assert not dev & sl
    assert all(n.startswith("accel_slice_") for n in sl)
    for s in S.SLICE_FAMILIES:
        assert "hw_parent" in s.labels
    for s in S.DEVICE_FAMILIES:
        assert "hw_parent" not in s.labels
        if s.type != INFO:
            assert not {"hw_driver_version", "hw_serial_number", "accel_pci_bus_id"} & set(s.labels)
