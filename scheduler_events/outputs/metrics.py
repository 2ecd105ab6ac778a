"""Prometheus output of the collector (families from ``scheduler_events.schema``).

Counters and histograms are updated from :class:`~scheduler_events.decisions.Change`
values (``on_change``); gauges (pending pods, per-device allocation, node
handshakes) are computed from the engine's state when scraped.  A custom
collector yields fresh families each time, so a deleted node or pod
disappears at once.  Histogram buckets carry exemplars with the placement's
``trace_id`` (visible in the OpenMetrics format).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from scheduler_events import schema as S
from scheduler_events.decisions import Change, DecisionEngine
from scheduler_events.model import PlacementDecision


class _Histogram:
    __slots__ = ("counts", "sum", "exemplars")

    def __init__(self) -> None:
        self.counts = [0] * (len(S.PHASE_BUCKETS) + 1)
        self.sum = 0.0
        self.exemplars: list[tuple[str, float, float] | None] = [None] * (len(S.PHASE_BUCKETS) + 1)

    def observe(self, v: float, trace_id: str, ts: float) -> None:
        for i, b in enumerate(S.PHASE_BUCKETS):
            if v <= b:
                break
        else:
            i = len(S.PHASE_BUCKETS)
        self.counts[i] += 1
        self.sum += v
        self.exemplars[i] = (trace_id, v, ts)


class CollectorMetrics(Collector):
    """Metrics of one :class:`DecisionEngine`.

    ``extra_stats``: returns the Kubernetes source's counters
    (``{kind: {counter: n}}``) for ``accel_collector_watch_events_total``.
    ``synced``: returns whether the input finished its initial list.
    ``now``: clock for ``accel_pending_oldest_seconds``.
    ``lock``: held while reading the engine (the pipeline's lock).
    """

    def __init__(self, engine: DecisionEngine, *, now: Callable[[], float],
                 extra_stats: Callable[[], dict[str, dict[str, int]]] | None = None,
                 synced: Callable[[], bool] | None = None, lock: threading.Lock | None = None,
                 fragmentation: Any | None = None, leader: Callable[[], bool] | None = None) -> None:
        self.engine = engine
        self.leader = leader
        self.fragmentation = fragmentation
        self.now = now
        self.extra_stats = extra_stats
        self.synced = synced
        self.lock = lock or threading.Lock()
        self.attempts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.decisions: collections.Counter[tuple[str, str]] = collections.Counter()
        self.rejections: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.node_rejections: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.phases: dict[tuple[str, str], _Histogram] = {}
        self.clock_skew = 0
        self._attempts_seen: dict[str, int] = {}
        self._phases_seen: set[tuple[str, str]] = set()

    # ------------------------------------------------------------ updates
    def on_change(self, change: Change) -> None:
        d = change.decision
        sched = d.scheduler
        if change.kind == "attempt_failed":
            delta = d.attempt - self._attempts_seen.get(d.uid, 0)
            if delta > 0:
                self._attempts_seen[d.uid] = d.attempt
                self.attempts[(sched, "unschedulable")] += delta
                for r in d.rejections:
                    if r.nodes:
                        self.rejections[(sched, r.code, r.source)] += r.nodes * delta
                    for node in r.node_names:
                        self.node_rejections[(sched, node, r.code)] += delta
        elif change.kind == "placed":
            self.attempts[(sched, "scheduled")] += 1
            self.decisions[(sched, "placed")] += 1
        elif change.kind == "failed" or (change.kind == "deleted" and d.outcome == "deleted"):
            self.decisions[(sched, change.kind)] += 1
        self._observe_phases(d)
        if change.kind in ("deleted",) or d.finished is not None:
            self._attempts_seen.pop(d.uid, None)

    def _observe_phases(self, d: PlacementDecision) -> None:
        pairs = {
            "created_to_filtered": (d.created, d.filtered),
            "filtered_to_bound": (d.filtered, d.bound),
            "bound_to_allocated": (d.bound, d.allocated),
            "created_to_bound": (d.created, d.bound),
            "created_to_running": (d.created, d.running),
        }
        for phase, (a, b) in pairs.items():
            if a is None or b is None or (d.uid, phase) in self._phases_seen:
                continue
            self._phases_seen.add((d.uid, phase))
            v = b - a
            if v < 0:
                self.clock_skew += 1
                if v < -1.0:  # beyond timestamp rounding: skip, counted
                    continue
                v = 0.0
            h = self.phases.get((d.scheduler, phase))
            if h is None:
                h = self.phases[(d.scheduler, phase)] = _Histogram()
            h.observe(v, d.trace_id, b)
        if len(self._phases_seen) > 500_000:  # bounded memory: forget the oldest half
            self._phases_seen = set(list(self._phases_seen)[250_000:])

    # ------------------------------------------------------------ scrape
    def collect(self) -> Iterable[Metric]:
        with self.lock:
            return list(self._families())

    def _families(self) -> Iterable[Metric]:
        f = CounterMetricFamily(S.ATTEMPTS.family_name, S.ATTEMPTS.help, labels=S.ATTEMPTS.labels)
        for (sched, result), n in sorted(self.attempts.items()):
            f.add_metric([sched, result], n)
        yield f
        f = CounterMetricFamily(S.DECISIONS.family_name, S.DECISIONS.help, labels=S.DECISIONS.labels)
        for (sched, outcome), n in sorted(self.decisions.items()):
            f.add_metric([sched, outcome], n)
        yield f
        f = CounterMetricFamily(S.REJECTIONS.family_name, S.REJECTIONS.help, labels=S.REJECTIONS.labels)
        for (sched, reason, source), n in sorted(self.rejections.items()):
            f.add_metric([sched, reason, source], n)
        yield f
        f = CounterMetricFamily(S.NODE_REJECTIONS.family_name, S.NODE_REJECTIONS.help,
                                labels=S.NODE_REJECTIONS.labels)
        for (sched, node, reason), n in sorted(self.node_rejections.items()):
            f.add_metric([sched, node, reason], n)
        yield f
        h = HistogramMetricFamily(S.PHASE_DURATION.name, S.PHASE_DURATION.help, labels=S.PHASE_DURATION.labels)
        for (sched, phase), hist in sorted(self.phases.items()):
            buckets: list[Any] = []
            acc = 0
            for i, bound in enumerate(list(S.PHASE_BUCKETS) + [float("inf")]):
                acc += hist.counts[i]
                key = "+Inf" if bound == float("inf") else repr(bound)
                ex = hist.exemplars[i]
                if ex is not None:
                    buckets.append((key, acc, Exemplar({"trace_id": ex[0]}, ex[1], ex[2])))
                else:
                    buckets.append((key, acc))
            h.add_metric([sched, phase], buckets, hist.sum)
        yield h
        yield from self._pending()
        yield from self._allocation()
        if self.fragmentation is not None:
            yield from self._fragmentation()
        yield from self._self()

    def _fragmentation(self) -> Iterable[Metric]:
        view = self.fragmentation
        view.refresh()
        summ = view.summary()
        g = GaugeMetricFamily(S.FRAG_RATE.name, S.FRAG_RATE.help)
        g.add_metric([], summ.rate)
        yield g
        fg = GaugeMetricFamily(S.FRAG_GPUS.name, S.FRAG_GPUS.help, labels=S.FRAG_GPUS.labels)
        fr = GaugeMetricFamily(S.FREE_GPUS.name, S.FREE_GPUS.help, labels=S.FREE_GPUS.labels)
        for model, (frag, free) in sorted(summ.by_model.items()):
            fg.add_metric([model], frag)
            fr.add_metric([model], free)
        yield fg
        yield fr
        g = GaugeMetricFamily(S.NODE_FRAG.name, S.NODE_FRAG.help, labels=S.NODE_FRAG.labels)
        for n in summ.nodes:
            g.add_metric([n["node"], n["gpu_model"]], n["fragmented_gpus"])
        yield g
        stranded: collections.Counter[str] = collections.Counter()
        for s in summ.stranded:
            stranded[s["reason"]] += s["free_gpus"]
        g = GaugeMetricFamily(S.STRANDED.name, S.STRANDED.help, labels=S.STRANDED.labels)
        for reason in ("cpu", "memory", "pods"):
            g.add_metric([reason], stranded.get(reason, 0.0))
        yield g
        p = GaugeMetricFamily(S.PLACEABLE.name, S.PLACEABLE.help, labels=S.PLACEABLE.labels)
        u = GaugeMetricFamily(S.UNPLACEABLE.name, S.UNPLACEABLE.help, labels=S.UNPLACEABLE.labels)
        for row in summ.placeable:
            p.add_metric([row["shape"]], row["placeable"])
            u.add_metric([row["shape"]], row["unplaceable_free_gpus"])
        yield p
        yield u
        g = GaugeMetricFamily(S.BLOCKED.name, S.BLOCKED.help)
        g.add_metric([], len(summ.blocked_pods))
        yield g
        g = GaugeMetricFamily(S.WORKLOAD.name, S.WORKLOAD.help, labels=S.WORKLOAD.labels)
        for row in summ.workload:
            g.add_metric([row["shape"], summ.workload_source], row["popularity"])
        yield g

    def _pending(self) -> Iterable[Metric]:
        now = self.now()
        counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        oldest: dict[tuple[str, str], float] = {}
        info = GaugeMetricFamily(S.PENDING_POD.name, S.PENDING_POD.help, labels=S.PENDING_POD.labels)
        for t in self.engine.pods.values():
            d = t.decision
            if d.outcome != "pending":
                continue
            counts[(d.scheduler, d.namespace, d.primary_reason or "none")] += 1
            info.add_metric([d.scheduler, d.namespace, d.name, d.uid, d.primary_reason or "none", d.trace_id], 1)
            if d.created is not None:
                k = (d.scheduler, d.namespace)
                oldest[k] = max(oldest.get(k, 0.0), now - d.created)
        g = GaugeMetricFamily(S.PENDING.name, S.PENDING.help, labels=S.PENDING.labels)
        for k, n in sorted(counts.items()):
            g.add_metric(list(k), n)
        yield g
        yield info
        g = GaugeMetricFamily(S.OLDEST_PENDING.name, S.OLDEST_PENDING.help, labels=S.OLDEST_PENDING.labels)
        for k, v in sorted(oldest.items()):
            g.add_metric(list(k), max(0.0, v))
        yield g

    def _allocation(self) -> Iterable[Metric]:
        fams = {spec.name: GaugeMetricFamily(spec.name, spec.help, labels=spec.labels) for spec in
                (S.DEVICE_MEMORY_REGISTERED, S.DEVICE_MEMORY_ALLOCATED, S.DEVICE_CORES_REGISTERED,
                 S.DEVICE_CORES_ALLOCATED, S.DEVICE_SHARED, S.DEVICE_SHARE_LIMIT, S.DEVICE_HEALTHY)}
        for uuid, u in sorted(self.engine.device_usage().items()):
            dev = u["device"]
            labels = [u["node"], uuid, dev.vendor, _model(dev.type), "" if dev.index is None else str(dev.index)]
            if dev.memory_bytes is not None:
                fams[S.DEVICE_MEMORY_REGISTERED.name].add_metric(labels, dev.memory_bytes)
            fams[S.DEVICE_MEMORY_ALLOCATED.name].add_metric(labels, u["memory_allocated"])
            if dev.core_ratio is not None:
                fams[S.DEVICE_CORES_REGISTERED.name].add_metric(labels, dev.core_ratio)
            fams[S.DEVICE_CORES_ALLOCATED.name].add_metric(labels, u["cores_allocated"])
            fams[S.DEVICE_SHARED.name].add_metric(labels, u["shared"])
            if dev.split_count is not None:
                fams[S.DEVICE_SHARE_LIMIT.name].add_metric(labels, dev.split_count)
            if dev.healthy is not None:
                fams[S.DEVICE_HEALTHY.name].add_metric(labels, 1 if dev.healthy else 0)
        yield from fams.values()
        g = GaugeMetricFamily(S.HANDSHAKE.name, S.HANDSHAKE.help, labels=S.HANDSHAKE.labels)
        for name, node in sorted(self.engine.nodes.items()):
            for vendor, (state, ts) in sorted(node.handshake.items()):
                if ts is not None:
                    g.add_metric([name, vendor, state], ts)
        yield g

    def _self(self) -> Iterable[Metric]:
        c = CounterMetricFamily(S.DECODE_ERRORS.family_name, S.DECODE_ERRORS.help, labels=S.DECODE_ERRORS.labels)
        errors = collections.Counter(self.engine.errors)
        if self.clock_skew:
            errors["clock_skew"] += self.clock_skew
        for k, n in sorted(errors.items()):
            c.add_metric([k], n)
        yield c
        c = CounterMetricFamily(S.OBJECT_EVENTS.family_name, S.OBJECT_EVENTS.help, labels=S.OBJECT_EVENTS.labels)
        for (kind, typ), n in sorted(self.engine.events_seen.items()):
            c.add_metric([kind, typ], n)
        yield c
        g = GaugeMetricFamily(S.TRACKED.name, S.TRACKED.help)
        g.add_metric([], len(self.engine.pods))
        yield g
        if self.extra_stats is not None:
            c = CounterMetricFamily(S.WATCH.family_name, S.WATCH.help, labels=S.WATCH.labels)
            for kind, stats in sorted(self.extra_stats().items()):
                for k, n in sorted(stats.items()):
                    c.add_metric([kind, k], n)
            yield c
        g = GaugeMetricFamily(S.SYNCED.name, S.SYNCED.help)
        g.add_metric([], 1 if (self.synced is None or self.synced()) else 0)
        yield g
        g = GaugeMetricFamily(S.LEADER.name, S.LEADER.help)
        g.add_metric([], 1 if (self.leader is None or self.leader()) else 0)
        yield g


def _model(type_: str) -> str:
    """``NVIDIA-Tesla T4`` -> ``Tesla T4``; ``NVIDIA-NVIDIA H100 80GB HBM3`` -> ``NVIDIA H100 80GB HBM3``."""
    if type_.startswith("NVIDIA-"):
        return type_[len("NVIDIA-"):]
    return type_
