"""``make generate``: rebuild every generated file from its source.

``docs/metrics.md`` from the schema modules; ``docs/capabilities.md`` from
the backends' declarations; the alert rule file, the PrometheusRule manifest
and ``docs/runbooks.md`` from ``alerts/``; the dashboards from
``dashboards/``; the Helm chart's copies of rules and dashboards.  Each generator
is a pure function returning ``{relative path: text}`` so the staleness test
can compare without writing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from accelscope.generated import write_files
from accelscope.schema import render_markdown
from exporter import schema as exporter_schema
from scheduler_events import schema as collector_schema

ROOT = Path(__file__).resolve().parent.parent

METRICS_INTRO = """\
Generated from `exporter/schema.py` (the device exporter) and `scheduler_events/schema.py` (the
scheduler-event collector) by `make generate`; do not edit by hand.

Names follow the OpenTelemetry hardware semantic conventions translated the way Prometheus' OTLP
ingestion does by default: `hw.gpu.memory.usage` (By) becomes `hw_gpu_memory_usage_bytes`, gauges with
unit `1` get `_ratio`, counters get `_total`. What OTel lacks lives under `accel_*`.

**Units:** base units only: bytes, seconds, watts, joules, degrees Celsius, hertz; every `_ratio` is 0–1.
A value that is not reported (N/A, unsupported, a secondary die) produces **no sample**, never 0.

**Devices and slices are separate families.** Physical devices are in `hw_*` and `accel_*` device
families; virtual slices (MIG, HAMi vGPU, vNPU...) are only in `accel_slice_*`, linked to their device
by `hw_parent` (= the device's `hw_id`), so `sum()` never double-counts.

**Labels.** Identity: `hw_id` (vendor UUID, else serial, else `<vendor>-<pci bus id>`), `hw_name`
(`gpu0`), `hw_vendor`, `hw_model`, `accel_kind` (gpu, npu, dcu, xpu, mlu), `accel_index`,
`k8s_node_name`. Workload, on device and slice series (empty when not allocated):
`k8s_namespace_name`, `k8s_pod_name`, `k8s_container_name`, and `k8s_pod_uid` (filled with
`--pod-uid-label`, or when the UID is the only identity known). Descriptive attributes (serial,
driver, firmware, PCI bus id, NUMA node, compute capability, slice profile) are only on
`accel_device_info` and `accel_slice_info`; join them with `* on (hw_id) group_left(...)`.

`hw_status` has one series per `hw_state` (`ok`, `degraded`, `failed`, `predicted_failure`) with value
1 for the current state. A device the driver reports lost stays visible as `hw_state="failed"`.

Stability: every `hw.*` name is at OTel stability *development*; we mark our own families the same
until a release says otherwise.
"""

COLLECTOR_INTRO = """
**Collector families** describe placement decisions and the scheduler's bookkeeping. They use the
same label names as the exporter where they mean the same thing: `hw_id` is the device UUID from the
HAMi node register annotation, so `accel_device_memory_allocated_bytes` (what HAMi allocated) joins
1:1 with `hw_gpu_memory_usage_bytes` (what the device uses). Reason codes in `reason` are a bounded set:
HAMi's (`CardInsufficientMemory`...) and kube-scheduler's mapped to snake_case
(`insufficient_resource`...); anything else is `other`.
"""


def generate_metrics_doc() -> dict[str, str]:
    groups = [(f"Exporter — {title}", specs) for title, specs in exporter_schema.GROUPS]
    groups += [(f"Collector — {title}", specs) for title, specs in collector_schema.GROUPS]
    text = render_markdown("Metric reference", METRICS_INTRO + COLLECTOR_INTRO, groups)
    return {"docs/metrics.md": text}


def generate_alerts() -> dict[str, str]:
    from alerts.generate import generate

    return generate()


def generate_dashboards() -> dict[str, str]:
    from dashboards.generate import generate

    return generate()


def generate_capabilities() -> dict[str, str]:
    from exporter.capabilities import generate

    return generate()


def generate_chart_copies() -> dict[str, str]:
    from helm.generate import generate

    return generate()


GENERATORS = [generate_metrics_doc, generate_capabilities, generate_alerts, generate_dashboards,
              generate_chart_copies]


def generate_all() -> dict[str, str]:
    """Return every generated file as ``{path relative to the repo: text}``."""
    out: dict[str, str] = {}
    for gen in GENERATORS:
        out.update(gen())
    return out


def main() -> int:
    write_files(generate_all(), "generate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
