"""The mock source through the whole render path: golden file, promtool,
and the schema rules (units, no double counting, absent-not-zero)."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.render import RenderOptions
from exporter.sources.mock import DEFAULT_INVENTORY, MockSource
from tests.helpers import FixedClock, promtool_check_metrics, scrape

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "mock.prom"
GIB = 1024**3


def _mock_text() -> str:
    """One scrape an hour after the mock started (so its counters moved)."""
    clock = FixedClock()
    src = MockSource(clock=clock)
    src.start()
    clock.t += 3600
    return scrape([src], RenderOptions(node_name="node-a"))


def test_mock_golden_file():
    text = _mock_text()
    if os.environ.get("ACCELSCOPE_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "golden differs; rerun with ACCELSCOPE_UPDATE_GOLDEN=1 and review the diff"


def test_mock_passes_promtool():
    promtool_check_metrics(_mock_text())


def _samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_mock_values_units_and_slices():
    samples = _samples(_mock_text())
    limits = {s.labels["hw_name"]: s.value for s in samples["hw_gpu_memory_limit_bytes"]}
    assert limits == {"gpu0": 80 * GIB, "gpu1": 80 * GIB, "gpu2": 40 * GIB, "gpu3": 48 * GIB}
    # MIG device: no device utilization sample (N/A under MIG), not zero
    util_names = {s.labels["hw_name"] for s in samples["hw_gpu_utilization_ratio"]}
    assert "gpu2" not in util_names
    # every ratio is within 0..1
    for name, ss in samples.items():
        if name.endswith("_ratio"):
            assert all(0.0 <= s.value <= 1.0 for s in ss), name
    # slices are linked to their parent and not in hw_* families
    slice_limits = {s.labels["accel_slice_id"]: (s.labels["hw_parent"], s.value)
                    for s in samples["accel_slice_memory_limit_bytes"]}
    gpu2 = next(s.labels["hw_id"] for s in samples["hw_gpu_memory_limit_bytes"] if s.labels["hw_name"] == "gpu2")
    assert slice_limits["gi1/ci0"] == (gpu2, 20 * GIB)
    assert slice_limits["gi2/ci0"] == (gpu2, 20 * GIB)
    vgpu = [s for s in samples["accel_slice_core_limit_ratio"]]
    assert sorted(s.value for s in vgpu) == [0.2, 0.3, 0.5]
    assert {s.labels["k8s_pod_name"] for s in vgpu} == {"chat-7b-6f9c4-x2vqp", "embed-5d8b7-kq2lm", "notebook-ana-0"}
    # the idle notebook: two hours since its last kernel
    ages = {s.labels["k8s_pod_name"]: s.value for s in samples["accel_slice_last_kernel_age_seconds"]}
    assert ages["notebook-ana-0"] == 7200.0
    # status: exactly one state is 1 per device
    per_dev = {}
    for s in samples["hw_status"]:
        per_dev.setdefault(s.labels["hw_id"], 0)
        per_dev[s.labels["hw_id"]] += s.value
    assert set(per_dev.values()) == {1.0} and len(per_dev) == 4
    # descriptive attributes only on _info
    assert "hw_driver_version" not in samples["hw_power_watts"][0].labels
    assert samples["accel_device_info"][0].labels["hw_driver_version"] == "570.133.20"


def test_mock_inventory_validation():
    import pytest
    with pytest.raises(ValueError, match="unknown MIG profile"):
        MockSource({"devices": [{"model": "x", "memory_gib": 1, "mig": ["9g.99gb"]}]})
    with pytest.raises(ValueError, match="non-empty 'devices'"):
        MockSource({"devices": []})
    assert MockSource(DEFAULT_INVENTORY).collect().devices


def test_openmetrics_output_is_valid():
    text = scrape([MockSource(clock=FixedClock())], openmetrics=True)
    assert text.endswith("# EOF\n")
    assert "# TYPE accel_device info" in text and "accel_device_info{" in text
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
    names = {f.name for f in om_parse(text)}
    assert {"hw_energy_joules", "accel_device", "hw_gpu_memory_usage_bytes"} <= names
