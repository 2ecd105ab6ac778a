"""Turn snapshots into Prometheus metric families (``exporter.schema`` only).

``render_families`` is pure: given the latest snapshot of each source and
the collection statistics, it returns prometheus_client metric families.
Nothing here reads a file or calls a vendor library.  A device or slice that
is no longer in a snapshot simply produces no series.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from accelscope import __version__
from accelscope.schema import COUNTER, GAUGE, HISTOGRAM, INFO, MetricSpec
from exporter import schema as S
from exporter.model import HW_STATES, Attribution, Device, Slice, Snapshot


@dataclass(slots=True)
class RenderOptions:
    """``node_name``: value of ``k8s_node_name``.  ``pod_uid_label``: always
    fill ``k8s_pod_uid`` (else only when the UID is the only identity known).
    ``per_process``: emit ``accel_process_memory_usage_bytes``."""

    node_name: str = ""
    pod_uid_label: bool = False
    per_process: bool = False


@dataclass(slots=True)
class SourceStats:
    """Collection statistics of one source, kept by the runtime.

    ``durations``: histogram bucket counts aligned with
    ``schema.COLLECT_DURATION_BUCKETS`` (+Inf last), ``duration_sum`` seconds,
    ``errors``: error_type -> count, ``clamped``: clamped ratio samples.
    """

    source: str
    durations: list[int] = field(default_factory=lambda: [0] * (len(S.COLLECT_DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    duration_count: int = 0
    success: bool = False
    last_success: float | None = None
    #: source-level failures start at 0 so the series exist before the first one
    errors: dict[str, int] = field(default_factory=lambda: {"start": 0, "exception": 0, "timeout": 0})
    clamped: int = 0

    def observe(self, seconds: float) -> None:
        """Record one collection cycle's wall time (seconds)."""
        for i, bound in enumerate(S.COLLECT_DURATION_BUCKETS):
            if seconds <= bound:
                self.durations[i] += 1
                break
        else:
            self.durations[-1] += 1
        self.duration_sum += seconds
        self.duration_count += 1


class _Families:
    """Lazily created families keyed by spec, in schema order."""

    def __init__(self) -> None:
        self._by_name: dict[str, Metric] = {}

    def get(self, spec: MetricSpec) -> Metric:
        fam = self._by_name.get(spec.name)
        if fam is None:
            if spec.type == GAUGE:
                fam = GaugeMetricFamily(spec.family_name, spec.help, labels=spec.labels, unit="")
            elif spec.type == COUNTER:
                fam = CounterMetricFamily(spec.family_name, spec.help, labels=spec.labels)
            elif spec.type == INFO:
                fam = InfoMetricFamily(spec.family_name, spec.help, labels=spec.labels)
            elif spec.type == HISTOGRAM:
                fam = HistogramMetricFamily(spec.family_name, spec.help, labels=spec.labels)
            else:  # pragma: no cover - schema is static
                raise ValueError(spec.type)
            self._by_name[spec.name] = fam
        return fam

    def add(self, spec: MetricSpec, labels: list[str], value: float) -> None:
        if spec.type == INFO:
            self.get(spec).add_metric(labels, {})
        else:
            self.get(spec).add_metric(labels, value)

    def in_order(self) -> list[Metric]:
        return [self._by_name[s.name] for s in S.ALL if s.name in self._by_name]


def _s(v: object) -> str:
    return "" if v is None else str(v)


def _attr(a: Attribution | None, opts: RenderOptions) -> list[str]:
    if a is None:
        return ["", "", "", ""]
    uid = a.pod_uid if (opts.pod_uid_label or not a.pod) else None
    return [_s(a.namespace), _s(a.pod), _s(a.container), _s(uid)]


def _device_id(d: Device, node: str) -> list[str]:
    return [d.hw_id, d.display_name, d.vendor, d.model, d.kind, _s(d.index), node]


def _slice_id(s: Slice, node: str) -> list[str]:
    name = s.name or f"{s.kind}{_s(s.parent_index)}/{s.slice_type}/{s.slice_id}"
    return [s.hw_id, name, s.parent_id, s.vendor, s.model, s.kind, _s(s.parent_index), s.slice_type,
            s.slice_id, node]


def _render_device(f: _Families, d: Device, node: str, opts: RenderOptions) -> None:
    ident = _device_id(d, node)
    base = ident + _attr(d.attribution, opts)
    f.add(S.DEVICE_INFO, ident + [_s(d.serial), _s(d.driver_version), _s(d.firmware_version),
                                  _s(d.pci_bus_id), _s(d.numa_node), _s(d.compute_capability)], 1)
    for state in HW_STATES:
        f.add(S.STATUS, base + ["gpu", state], 1 if d.state == state else 0)
    for task, v in sorted(d.utilization.items()):
        f.add(S.GPU_UTILIZATION, base + [task], v)
    if d.memory_used_bytes is not None:
        f.add(S.GPU_MEMORY_USAGE, base, d.memory_used_bytes)
    if d.memory_total_bytes is not None:
        f.add(S.GPU_MEMORY_LIMIT, base, d.memory_total_bytes)
    if d.memory_used_bytes is not None and d.memory_total_bytes:
        f.add(S.GPU_MEMORY_UTILIZATION, base, min(1.0, d.memory_used_bytes / d.memory_total_bytes))
    elif d.memory_utilization is not None:
        f.add(S.GPU_MEMORY_UTILIZATION, base, min(1.0, max(0.0, d.memory_utilization)))
    if d.memory_bandwidth_utilization is not None:
        f.add(S.MEMORY_BANDWIDTH, base, d.memory_bandwidth_utilization)
    for (link, direction), v in sorted(d.io_bytes.items()):
        f.add(S.GPU_IO, base + [link, direction], v)
    if d.power_watts is not None:
        f.add(S.POWER, base + ["gpu"], d.power_watts)
    if d.energy_joules is not None:
        f.add(S.ENERGY, base + ["gpu"], d.energy_joules)
    if d.power_limit_watts is not None:
        f.add(S.POWER_LIMIT, base, d.power_limit_watts)
    for loc, v in sorted(d.temperatures.items()):
        f.add(S.TEMPERATURE, base + [loc], v)
    for limit_type, v in sorted(d.temperature_limits.items()):
        f.add(S.TEMPERATURE_LIMIT, base + ["gpu", limit_type], v)
    for (etype, esrc), v in sorted(d.errors.items()):
        f.add(S.ERRORS, base + ["gpu", etype, esrc, ""], v)
    for code, v in sorted(d.xid_counts.items()):
        f.add(S.ERRORS, base + ["gpu", "xid", "", str(code)], v)
    for ctype, v in sorted(d.clocks_hz.items()):
        f.add(S.CLOCK, base + [ctype], v)
    for reason, v in sorted(d.throttle_seconds.items()):
        f.add(S.THROTTLE, base + [reason], v)
    if d.fan_speed is not None:
        f.add(S.FAN, base, d.fan_speed)


def _render_slice(f: _Families, s: Slice, node: str, opts: RenderOptions, now: float) -> None:
    ident = _slice_id(s, node)
    base = ident + _attr(s.attribution, opts)
    f.add(S.SLICE_INFO, ident + [_s(s.profile)], 1)
    if s.memory_used_bytes is not None:
        f.add(S.SLICE_MEMORY_USAGE, base, s.memory_used_bytes)
    if s.memory_limit_bytes is not None:
        f.add(S.SLICE_MEMORY_LIMIT, base, s.memory_limit_bytes)
    if s.core_limit is not None:
        f.add(S.SLICE_CORE_LIMIT, base, s.core_limit)
    if s.utilization is not None:
        f.add(S.SLICE_UTILIZATION, base, s.utilization)
    if s.last_kernel_time is not None:
        f.add(S.SLICE_LAST_KERNEL_AGE, base, max(0.0, now - s.last_kernel_time))


def render_families(snapshots: Iterable[Snapshot], stats: Iterable[SourceStats],
                    opts: RenderOptions) -> list[Metric]:
    """Build every metric family from the latest snapshots.

    ``snapshots``: the latest :class:`Snapshot` of each source.  Devices with
    the same ``hw_id`` from two sources are rendered once (first source wins).
    ``stats``: per-source :class:`SourceStats`.  Returns families in schema
    order; empty families are left out.
    """
    f = _Families()
    node = opts.node_name
    seen: set[str] = set()
    seen_slices: set[str] = set()
    dev_counts: dict[tuple[str, str, str], int] = {}
    slice_counts: dict[tuple[str, str], int] = {}
    for snap in snapshots:
        for d in snap.devices:
            if d.hw_id in seen:
                continue
            seen.add(d.hw_id)
            _render_device(f, d, node, opts)
            key = (d.vendor, d.kind, d.state)
            dev_counts[key] = dev_counts.get(key, 0) + 1
        for s in snap.slices:
            if s.hw_id in seen_slices:
                continue
            seen_slices.add(s.hw_id)
            _render_slice(f, s, node, opts, snap.timestamp)
            k2 = (s.vendor, s.slice_type)
            slice_counts[k2] = slice_counts.get(k2, 0) + 1
        if opts.per_process:
            for p in snap.processes:
                if p.memory_bytes is not None:
                    f.add(S.PROCESS_MEMORY, [p.parent_id, str(p.pid), node] + _attr(p.attribution, opts),
                          p.memory_bytes)
    for (vendor, kind, state), n in sorted(dev_counts.items()):
        f.add(S.DEVICES, [vendor, kind, state, node], n)
    for (vendor, stype), n in sorted(slice_counts.items()):
        f.add(S.SLICES, [vendor, stype, node], n)
    for st in stats:
        src = st.source
        buckets = []
        acc = 0
        for bound, n in zip(list(S.COLLECT_DURATION_BUCKETS) + [float("inf")], st.durations):
            acc += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        f.get(S.COLLECT_DURATION).add_metric([src], buckets, st.duration_sum)
        f.add(S.COLLECT_SUCCESS, [src], 1 if st.success else 0)
        if st.last_success is not None:
            f.add(S.LAST_SUCCESS, [src], st.last_success)
        for etype, n in sorted(st.errors.items()):
            f.add(S.COLLECT_ERRORS, [src, etype], n)
        f.add(S.CLAMPED, [src], st.clamped)
    f.add(S.BUILD_INFO, [__version__, platform.python_version()], 1)
    return f.in_order()

