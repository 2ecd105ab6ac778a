"""The decision engine: object events in, placement decisions out.

:class:`DecisionEngine` consumes :class:`~scheduler_events.stream.ObjectEvent`
values (live watch, recorded stream, dump or simulator — in order, from one
thread) and keeps one :class:`~scheduler_events.model.PlacementDecision` per
tracked pod, plus what each node registered.  ``apply()`` returns the
:class:`Change` values that the outputs (metrics, log line, trace, history)
act on.

Where each field comes from (all decoders are in ``scheduler_events/decoders``):

* Pod: requests (``requests.py``), HAMi annotations (filter node and time,
  bind time and phase, allocated devices), ``spec.nodeName``, the
  PodScheduled condition (its message is the full FailedScheduling text, so it
  wins over a truncated Event note), container start times.
* Events: kube-scheduler ``FailedScheduling`` / ``Scheduled``, HAMi
  ``FilteringSucceed`` / ``FilteringFailed`` / ``BindingSucceed`` /
  ``BindingFailed``, Volcano messages.  The reporter is identified by
  ``reportingController`` / ``source.component``, never by reason.  Events are
  deduplicated by (event UID, count); events for a pod not seen yet wait in a
  bounded buffer.
* Node: HAMi node register and handshake annotations, allocatable resources.

Bad input never raises out of ``apply``: each problem is counted in
``errors`` by kind (``decode_<decoder>_<code>``, ``orphan_event``,
``clock_skew``, ``bad_object``...) and the rest is processed.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from scheduler_events.decoders.hami_events import (
    BindingFailed,
    BindingSucceed,
    FilteringFailedReason,
    FilteringFailedSummary,
    FilteringSucceed,
    decode_hami_event,
    is_known_reason_code,
)
from scheduler_events.decoders.hami_node import classify_node_annotation, decode_handshake, decode_node_register
from scheduler_events.decoders.hami_pod import decode_pod_annotations
from scheduler_events.decoders.kube_scheduler import (
    FailedScheduling,
    decode_failed_scheduling,
    decode_scheduled,
    pod_scheduled_condition,
)
from scheduler_events.decoders.reporter import event_view
from scheduler_events.decoders.volcano import decode_volcano_message
from scheduler_events.model import (
    DeviceAllocation,
    NodeDeviceInfo,
    NodeInfo,
    NodeVerdict,
    PlacementDecision,
    Rejection,
)
from scheduler_events.requests import pod_cpu_memory, pod_is_relevant, pod_requests, quantity
from scheduler_events.stream import ObjectEvent

log = logging.getLogger("accelscope")

#: per-node verdicts kept per decision (HAMi events can name hundreds of nodes)
MAX_VERDICTS = 16
#: node names kept per rejection reason (the count is always kept)
MAX_NODE_NAMES = 32

#: Change kinds, in the order a placement goes through them.
CHANGE_KINDS = ("attempt_failed", "filtered", "placed", "allocated", "running", "failed", "deleted")

#: kube-scheduler reason codes we keep as they are; anything else -> other.
KUBE_CODES = frozenset({
    "insufficient_resource", "too_many_pods", "untolerated_taint", "node_affinity", "node_name",
    "node_unschedulable", "pod_affinity", "pod_anti_affinity", "topology_spread", "volume_binding",
    "volume_node_affinity", "volume_storage", "volume_limits", "volume_zone", "dra_cannot_allocate",
    "dra_claim_unavailable", "preemption_not_helpful", "no_preemption_victims", "resource_fit_failed",
    "pod_number_exceeded", "prefilter", "binding_failed", "gang_unschedulable", "scheduler_error",
})


def _d(x: Any) -> dict[str, Any]:
    """``x`` when it is a dict, else {} (API objects from a bad source)."""
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _s(x: Any) -> str:
    return x if isinstance(x, str) else ""


def parse_time(value: Any) -> float | None:
    """RFC 3339 (``2026-01-01T00:00:00Z``, with optional fraction) or a
    datetime -> Unix seconds; None when absent or unparsable."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


@dataclass(slots=True)
class Change:
    """``kind`` (one of :data:`CHANGE_KINDS`) happened to ``decision`` at ``time``."""

    kind: str
    decision: PlacementDecision
    time: float


@dataclass(slots=True)
class _Tracked:
    decision: PlacementDecision
    #: (event uid or reason/note, count) already applied, as hashes, and the highest count per event
    seen_events: set[int] = field(default_factory=set)
    event_counts: dict[int, int] = field(default_factory=dict)
    #: the accelerator annotations last decoded (decoding is skipped when they are unchanged)
    ann_key: tuple = ()
    hami: Any = None
    spec_seen: bool = False
    last_logged_reasons: tuple = ()
    terminated: bool = False
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=8))


class DecisionEngine:
    """State of every tracked pod and node.

    ``scheduler_names``: extra reporter names -> kind (``{"gpu-sched": "kube-scheduler"}``).
    ``orphan_buffer``: events kept for pods not seen yet (oldest dropped and
    counted as ``orphan_event``).  ``max_finished``: finished decisions
    remembered (oldest forgotten).  Each tracked pod keeps a bounded history
    (8 entries) of its attempts: one entry per change of outcome or of the
    reasons, see :meth:`history`.
    """

    def __init__(self, *, scheduler_names: dict[str, str] | None = None, orphan_buffer: int = 10000,
                 max_finished: int = 50000, clock: Callable[[], float] | None = None) -> None:
        self.known = scheduler_names or {}
        self.pods: dict[str, _Tracked] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        self.nodes: dict[str, NodeInfo] = {}
        self.finished: collections.OrderedDict[str, PlacementDecision] = collections.OrderedDict()
        self.max_finished = max_finished
        self.errors: collections.Counter[str] = collections.Counter()
        self.events_seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self._orphans: collections.OrderedDict[str, list[ObjectEvent]] = collections.OrderedDict()
        self._orphan_count = 0
        self._orphan_limit = orphan_buffer
        self._clock = clock
        #: every bound, running pod's (node, cpu_milli, memory_mib), accelerator or not
        self._pod_res: dict[str, tuple[str, int, int]] = {}
        #: node -> [cpu_milli, memory_mib, pods] requested by bound, running pods
        self.node_requests: dict[str, list[int]] = {}
        #: nodes whose capacity or allocations changed since the last take_dirty()
        self.dirty_nodes: set[str] = set()
        #: device UUID -> [memory bytes, core ratio, containers] held by tracked pods (kept incrementally)
        self._alloc: dict[str, list] = {}
        #: pod UID -> ((uuid, memory bytes, core ratio), ...) that pod holds now
        self._held: dict[str, tuple[tuple[str, int, float], ...]] = {}
        #: node -> cached (best free memory, best free cores) entries; dropped when the node changes
        self._best: dict[str, tuple] = {}

    # ------------------------------------------------------------------ entry
    def apply(self, ev: ObjectEvent) -> list[Change]:
        """Apply one object event; returns the changes it caused (maybe none)."""
        self.events_seen[(ev.kind, ev.type)] += 1
        if ev.type == "BOOKMARK":
            return []
        if not isinstance(ev.obj, dict) or not isinstance(ev.obj.get("metadata"), dict):
            self.errors["bad_object"] += 1
            return []
        try:
            if ev.kind == "Pod":
                return self._pod(ev)
            if ev.kind in ("Event", "EventV1"):
                return self._event(ev)
            if ev.kind == "Node":
                self._node(ev)
            return []
        except Exception as exc:  # noqa: BLE001 - one bad object never stops the stream
            self.errors["internal"] += 1
            log.warning("decision engine error on %s %s: %s", ev.kind, ev.type, exc, exc_info=True)
            return []

    def decision(self, namespace: str, name: str) -> PlacementDecision | None:
        """The current (or last finished) decision of ``namespace/name``."""
        uid = self.by_name.get((namespace, name))
        if uid and uid in self.pods:
            return self.pods[uid].decision
        for d in reversed(self.finished.values()):
            if d.namespace == namespace and d.name == name:
                return d
        return None

    def history(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The attempt history of ``namespace/name``, oldest first: dicts with
        ``time`` (Unix s), ``change``, ``attempt``, ``outcome``,
        ``primary_reason``, ``nodes_total``, ``nodes_fit`` and ``reasons``
        ([{code, nodes}]).  Bounded to the last 8 entries."""
        uid = self.by_name.get((namespace, name))
        if uid and uid in self.pods:
            return list(self.pods[uid].history)
        return []

    @staticmethod
    def _remember(t: _Tracked, changes: list[Change]) -> None:
        for c in changes:
            d = c.decision
            reasons = [{"code": r.code, "nodes": r.nodes} for r in d.rejections]
            last = t.history[-1] if t.history else None
            if c.kind == "attempt_failed" and last is not None and last["outcome"] == "pending" \
                    and last["reasons"] == reasons:
                last["attempt"] = d.attempt
                last["time"] = c.time
                continue
            if c.kind not in ("attempt_failed", "placed", "failed", "deleted", "running"):
                continue
            t.history.append({"time": c.time, "change": c.kind, "attempt": d.attempt,
                              "outcome": c.kind if c.kind in ("placed", "failed", "deleted") else d.outcome,
                              "primary_reason": d.primary_reason, "nodes_total": d.nodes_total,
                              "nodes_fit": d.nodes_fit, "reasons": reasons})

    def decisions(self) -> list[PlacementDecision]:
        """Every tracked decision plus the finished ones still remembered."""
        return [t.decision for t in self.pods.values()] + list(self.finished.values())

    # ------------------------------------------------------------------ pods
    def _now(self, ev: ObjectEvent) -> float:
        if ev.received:
            return ev.received
        return self._clock() if self._clock else 0.0

    def _pod(self, ev: ObjectEvent) -> list[Change]:
        pod = ev.obj
        meta = pod["metadata"]
        uid, ns, name = _s(meta.get("uid")), _s(meta.get("namespace")), _s(meta.get("name"))
        if not uid or not name:
            self.errors["bad_object"] += 1
            return []
        now = self._now(ev)
        self._account(uid, pod, ev.type == "DELETED")
        tracked = self.pods.get(uid)
        if ev.type == "DELETED":
            if tracked is None:
                return []
            return self._finish(tracked, "deleted" if tracked.decision.outcome == "pending" else None, now)
        if tracked is None:
            if not pod_is_relevant(pod):
                return []
            d = PlacementDecision(uid=uid, namespace=ns, name=name)
            tracked = self.pods[uid] = _Tracked(d)
            old = self.by_name.get((ns, name))
            replaced = self._finish(self.pods[old], "deleted", now) if old and old != uid and old in self.pods else []
            self.by_name[(ns, name)] = uid
        else:
            replaced = []
        own = self._update_pod(tracked, pod, now)
        self._hold(tracked)
        self._remember(tracked, own)
        changes = replaced + own
        for oev in self._orphans.pop(uid, []) + self._orphans.pop(f"{ns}/{name}", []):
            self._orphan_count -= 1
            changes += self._event(oev)
        return changes

    def _account(self, uid: str, pod: dict[str, Any], deleted: bool) -> None:
        """Keep per-node CPU, memory and pod-slot requests of every bound,
        non-terminated pod (the fragmentation model's stranded capacity)."""
        spec, status = _d(pod.get("spec")), _d(pod.get("status"))
        node = _s(spec.get("nodeName"))
        live = bool(node) and not deleted and status.get("phase") not in ("Succeeded", "Failed")
        new = (node, *pod_cpu_memory(pod)) if live else None
        old = self._pod_res.get(uid)
        if old == new:
            return
        if old is not None:
            acc = self.node_requests.setdefault(old[0], [0, 0, 0])
            acc[0] -= old[1]
            acc[1] -= old[2]
            acc[2] -= 1
            self.dirty_nodes.add(old[0])
            del self._pod_res[uid]
        if new is not None:
            acc = self.node_requests.setdefault(new[0], [0, 0, 0])
            acc[0] += new[1]
            acc[1] += new[2]
            acc[2] += 1
            self.dirty_nodes.add(new[0])
            self._pod_res[uid] = new

    def _hold(self, t: _Tracked) -> None:
        """Bring the incremental per-device allocation in line with what the
        pod holds now (bound, not terminated, placed or failed-at-allocate)."""
        d = t.decision
        live = bool(d.node) and d.outcome in ("placed", "failed") and not t.terminated and d.uid in self.pods
        new = tuple((a.uuid, a.memory_bytes or 0, a.core_ratio or 0.0) for a in d.devices) if live else ()
        old = self._held.get(d.uid, ())
        if new == old:
            return
        for uuid, mem, cores in old:
            acc = self._alloc.get(uuid)
            if acc is not None:
                acc[0] -= mem
                acc[1] -= cores
                acc[2] -= 1
        for uuid, mem, cores in new:
            acc = self._alloc.setdefault(uuid, [0, 0.0, 0])
            acc[0] += mem
            acc[1] += cores
            acc[2] += 1
        if new:
            self._held[d.uid] = new
        else:
            self._held.pop(d.uid, None)
        if d.node:
            self._best.pop(d.node, None)
            self.dirty_nodes.add(d.node)

    def largest_free(self, nodes: set[str] | None, what: str) -> tuple[float, str, int | None, str] | None:
        """The registered device with the most free ``memory`` (bytes) or
        ``cores`` (ratio of a device) on ``nodes`` (None = all):
        ``(free, node, index, uuid)``.  Per-node results are cached until
        that node's allocations or registration change."""
        best = None
        slot = 0 if what == "memory" else 1
        for name in (nodes if nodes is not None else self.nodes):
            info = self.nodes.get(name)
            if info is None:
                continue
            cached = self._best.get(name)
            if cached is None:
                cached = self._best[name] = self._node_best(info)
            cand = cached[slot]
            if cand is not None and (best is None or cand[0] > best[0]):
                best = cand
        return best

    def _node_best(self, info: NodeInfo) -> tuple:
        mem_best = core_best = None
        for dev in info.devices.values():
            acc = self._alloc.get(dev.uuid, (0, 0.0, 0))
            if dev.memory_bytes is not None:
                free = max(0, dev.memory_bytes - acc[0])
                if mem_best is None or free > mem_best[0]:
                    mem_best = (free, info.name, dev.index, dev.uuid)
            free_c = max(0.0, (dev.core_ratio or 1.0) - acc[1])
            if core_best is None or free_c > core_best[0]:
                core_best = (free_c, info.name, dev.index, dev.uuid)
        return mem_best, core_best

    def take_dirty(self) -> set[str]:
        """Nodes changed since the last call (and clear the set)."""
        dirty, self.dirty_nodes = self.dirty_nodes, set()
        return dirty

    def _update_pod(self, t: _Tracked, pod: dict[str, Any], now: float) -> list[Change]:
        d = t.decision
        meta, spec, status = pod["metadata"], _d(pod.get("spec")), _d(pod.get("status"))
        changes: list[Change] = []
        d.updated = max(d.updated, now)
        owners = _l(meta.get("ownerReferences"))
        if owners and isinstance(owners[0], dict):
            d.owner_kind, d.owner_name = _s(owners[0].get("kind")) or None, _s(owners[0].get("name")) or None
        d.scheduler = _s(spec.get("schedulerName")) or "default-scheduler"
        if not t.spec_seen:  # a pod's requests don't change (in-place resize only touches cpu/memory)
            d.requests = pod_requests(pod)
            t.spec_seen = True
        d.cpu_milli, d.memory_mib = pod_cpu_memory(pod)
        ann = _d(meta.get("annotations"))
        d.policies = {k: str(v) for k, v in ann.items()
                      if k in ("hami.io/node-scheduler-policy", "hami.io/gpu-scheduler-policy",
                               "nvidia.com/use-gputype", "nvidia.com/nouse-gputype", "nvidia.com/vgpu-mode")}
        created = parse_time(meta.get("creationTimestamp"))
        if created is not None:
            d.created = created
        ann_key = tuple(sorted((k, v) for k, v in ann.items() if k.startswith("hami.io/") or "-devices-" in k))
        if ann_key != t.ann_key or t.hami is None:
            t.hami = decode_pod_annotations(ann)
            t.ann_key = ann_key
            self._count_errors("hami_pod", t.hami.errors)
        hami = t.hami
        started = [parse_time(_d(_d(cs.get("state")).get("running")).get("startedAt"))
                   for cs in _l(status.get("containerStatuses")) if isinstance(cs, dict)]
        first_start = min((s for s in started if s is not None), default=None)
        if hami.filter_time_s and d.filtered is None:
            d.filtered = float(hami.filter_time_s)
            changes.append(Change("filtered", d, d.filtered))
        if hami.node and not d.node:
            d.node = hami.node
        devices = []
        for alloc in hami.allocated():
            for ci, container in enumerate(alloc.devices.containers):
                devices.extend(DeviceAllocation(dev.uuid, dev.type, ci, dev.memory_bytes, dev.core_ratio,
                                                alloc.key.vendor) for dev in container)
        if devices and devices != d.devices:
            d.devices = devices
            if d.node:
                self.dirty_nodes.add(d.node)
        if hami.bind_time_s and d.bound is None:
            d.bound = float(hami.bind_time_s)
        cond = pod_scheduled_condition(pod)
        node_name = _s(spec.get("nodeName"))
        if node_name and d.outcome == "pending":
            d.node = node_name
            d.outcome = "placed"
            d.attempt += 1  # the successful attempt
            if d.bound is None:
                t_cond = cond.last_transition_time.timestamp() if cond and cond.status == "True" and \
                    cond.last_transition_time else None
                d.bound = t_cond or now
            changes.append(Change("placed", d, d.bound))
        elif cond is not None and cond.status == "False" and cond.message and d.outcome == "pending":
            if cond.message != d.message:
                d.message, d.message_source = cond.message, "condition"
                if cond.reason == "SchedulerError":
                    self._set_rejections(d, [Rejection("scheduler_error", "kube-scheduler", 0,
                                                       raw=cond.message[:200])], None)
                else:
                    self._apply_failed_scheduling(d, decode_failed_scheduling(cond.message), "kube-scheduler")
        if hami.bind_phase and hami.bind_phase != d.bind_phase:
            d.bind_phase = hami.bind_phase
            if hami.bind_phase == "success" and d.allocated is None:
                # seen now; it happened before the first container started
                d.allocated = min(now, first_start) if first_start is not None else now
                changes.append(Change("allocated", d, d.allocated))
            elif hami.bind_phase == "failed" and d.outcome != "failed":
                d.outcome = "failed"
                d.primary_reason = "AllocateFailed"
                changes.append(Change("failed", d, now))
        if first_start is not None and d.running is None and d.outcome == "placed":
            d.running = first_start
            if d.allocated is None and d.devices:
                d.allocated = first_start
            changes.append(Change("running", d, d.running))
        if status.get("phase") in ("Succeeded", "Failed"):
            if not t.terminated and d.node:
                self.dirty_nodes.add(d.node)
            t.terminated = True
            if status.get("phase") == "Failed" and d.running is None and d.outcome in ("pending", "placed"):
                d.outcome = "failed"
                d.primary_reason = _s(status.get("reason")) or "PodFailed"
                changes.append(Change("failed", d, now))
        return changes

    # ------------------------------------------------------------------ events
    def _event(self, ev: ObjectEvent) -> list[Change]:
        tracked_changes = self._event_changes(ev)
        if tracked_changes:
            t = self.pods.get(tracked_changes[0].decision.uid)
            if t is not None:
                self._hold(t)
                self._remember(t, tracked_changes)
        return tracked_changes

    def _event_changes(self, ev: ObjectEvent) -> list[Change]:
        view = event_view(ev.obj, self.known)
        self._count_errors("event", view.errors)
        ref = view.regarding
        if ref.kind not in (None, "Pod"):
            return []
        key_uid = ref.uid or ""
        tracked = self.pods.get(key_uid) if key_uid else None
        if tracked is None and ref.namespace and ref.name:
            uid = self.by_name.get((ref.namespace, ref.name))
            if uid and (not key_uid or key_uid == uid):
                tracked = self.pods.get(uid)
        if tracked is None:
            self._buffer_orphan(key_uid or f"{ref.namespace}/{ref.name}", ev)
            return []
        d = tracked.decision
        count = view.count or 1
        ekey = hash(view.uid or f"{view.reason}/{view.note}")
        dedupe = hash((ekey, count))
        if dedupe in tracked.seen_events:
            self.errors["duplicate_event"] += 1
            return []
        previous = tracked.event_counts.get(ekey, 0)
        tracked.event_counts[ekey] = max(previous, count)
        tracked.seen_events.add(dedupe)
        when = (view.last_time or view.first_time)
        t_event = when.timestamp() if when else self._now(ev)
        d.updated = max(d.updated, t_event)
        reporter = view.reporter
        reason, note = view.reason or "", view.note or ""
        changes: list[Change] = []
        if reason == "FailedScheduling":
            if d.outcome != "pending":
                return []
            d.reporter = reporter.component
            d.attempt += max(1, count - previous)
            if reporter.kind == "volcano":
                vm = decode_volcano_message(note)
                self._count_errors("volcano", vm.errors)
                detail = vm.detail
                if isinstance(detail, FailedScheduling):
                    fs = detail
                else:
                    self._set_rejections(d, [Rejection("gang_unschedulable" if vm.kind.startswith("gang") else "other",
                                                       "volcano", 0, raw=note[:200])], None)
                    changes.append(Change("attempt_failed", d, t_event))
                    return changes
            else:
                fs = decode_failed_scheduling(note)
            # the PodScheduled condition holds the full text; only use the note when it says more
            if d.message_source != "condition" or (fs.text and not fs.truncated and fs.text != d.message):
                if not (d.message_source == "condition" and fs.truncated):
                    d.message, d.message_source = note, "event"
                    self._apply_failed_scheduling(d, fs, "volcano" if reporter.kind == "volcano" else "kube-scheduler")
            changes.append(Change("attempt_failed", d, t_event))
        elif reason == "Scheduled":
            sc = decode_scheduled(note)
            self._count_errors("scheduled", sc.errors)
            d.reporter = reporter.component
            if sc.node:
                d.node = sc.node
            if d.bound is None or d.outcome == "pending":
                d.bound = d.bound or t_event
            if d.outcome == "pending":
                d.outcome = "placed"
                d.attempt += 1
                changes.append(Change("placed", d, d.bound))
        elif reason in ("FilteringSucceed", "FilteringFailed", "BindingSucceed", "BindingFailed"):
            he = decode_hami_event(reason, note)
            self._count_errors("hami_event", he.errors)
            det = he.detail
            if isinstance(det, FilteringSucceed):
                d.nodes_fit = det.nodes_fit
                d.nodes_total = det.nodes_fit + det.nodes_not_fit
                for sc in det.scores[:MAX_VERDICTS]:
                    d.verdicts[sc.node] = NodeVerdict(sc.node, True, sc.score)
                if det.node not in d.verdicts:
                    d.verdicts[det.node] = NodeVerdict(det.node, True)
                if d.filtered is None:
                    d.filtered = t_event
                    changes.append(Change("filtered", d, t_event))
            elif isinstance(det, FilteringFailedSummary):
                # the extender only sees nodes that passed kube-scheduler's filters;
                # the scheduler's own "0/N" count (when known) is the wider scope
                if det.candidate_nodes is not None and d.nodes_total is None:
                    d.nodes_total = det.candidate_nodes
                    d.nodes_fit = 0
            elif isinstance(det, FilteringFailedReason):
                code = det.code if is_known_reason_code(det.code) else "other"
                if code == "other":
                    self.errors["unknown_reason_code"] += 1
                for n in det.nodes:
                    if n not in d.verdicts and len(d.verdicts) >= MAX_VERDICTS:
                        break  # bounded: the aggregate rejection keeps the counts and names
                    v = d.verdicts.setdefault(n, NodeVerdict(n, False))
                    v.fit = False
                    if all(r.code != code for r in v.reasons):
                        v.reasons.append(Rejection(code, "hami", 1, detail=None if code != "other" else det.code))
                self._merge_rejection(d, Rejection(code, "hami", det.node_count,
                                                   node_names=list(det.nodes[:MAX_NODE_NAMES]),
                                                   detail=det.code if code == "other" else None))
            elif isinstance(det, BindingSucceed):
                if det.node:
                    d.node = d.node or det.node
                d.bound = d.bound or t_event
            elif isinstance(det, BindingFailed):
                self._merge_rejection(d, Rejection("binding_failed", "hami", 0, raw=det.message[:200]))
                changes.append(Change("attempt_failed", d, t_event))
        return changes

    def _buffer_orphan(self, key: str, ev: ObjectEvent) -> None:
        if not key or key == "None/None":
            self.errors["orphan_event"] += 1
            return
        self._orphans.setdefault(key, []).append(ev)
        self._orphans.move_to_end(key)
        self._orphan_count += 1
        while self._orphan_count > self._orphan_limit and self._orphans:
            _, dropped = self._orphans.popitem(last=False)
            self._orphan_count -= len(dropped)
            self.errors["orphan_event"] += len(dropped)

    def orphans_pending(self) -> int:
        """Events waiting for a pod that has not been seen."""
        return self._orphan_count

    # ------------------------------------------------------------------ reasons
    def _apply_failed_scheduling(self, d: PlacementDecision, fs: FailedScheduling, source: str) -> None:
        self._count_errors("failed_scheduling", fs.errors)
        if fs.total_nodes is not None:
            d.nodes_total = fs.total_nodes
            d.nodes_fit = fs.available_nodes if fs.available_nodes is not None else 0
        rejections: list[Rejection] = []
        if fs.prefilter:
            rejections.append(Rejection("prefilter", source, fs.total_nodes or 0, detail=fs.prefilter))
        for rc in fs.reasons:
            if rc.hami is not None and rc.hami.entries:
                for e in rc.hami.entries:
                    code = e.code if is_known_reason_code(e.code) else "other"
                    rejections.append(Rejection(code, "hami", rc.count,
                                                devices=(e.device_count or 0) * rc.count if e.device_count else None,
                                                detail=e.code if code == "other" else None, raw=rc.reason))
                continue
            code = rc.code if rc.code in KUBE_CODES else "other"
            if code == "other":
                self.errors["unknown_reason_code"] += 1
            rejections.append(Rejection(code, source, rc.count, detail=rc.detail or (rc.reason if code == "other"
                                                                                      else None), raw=rc.reason))
        # HAMi's FilteringFailed events name the nodes; the scheduler's message only counts them
        names = {(r.code, r.source): r.node_names for r in d.rejections if r.node_names}
        for r in rejections:
            r.node_names = r.node_names or list(names.get((r.code, r.source), ()))
        self._set_rejections(d, rejections, fs)

    def _set_rejections(self, d: PlacementDecision, rejections: list[Rejection], fs: FailedScheduling | None) -> None:
        merged: dict[tuple[str, str, str | None], Rejection] = {}
        for r in rejections:
            k = (r.code, r.source, r.detail)
            if k in merged:
                m = merged[k]
                m.nodes += r.nodes
                if r.devices is not None:
                    m.devices = (m.devices or 0) + r.devices
            else:
                merged[k] = r
        d.rejections = sorted(merged.values(), key=lambda r: (-r.nodes, -(r.devices or 0), r.code))
        d.primary_reason = self._primary(d.rejections)

    def _merge_rejection(self, d: PlacementDecision, r: Rejection) -> None:
        """Fold one reason from a HAMi event into the attempt's reasons: the
        same code from the scheduler's message keeps its counts and gains
        the node names; a new code is added."""
        for x in d.rejections:
            if x.code == r.code and x.source == r.source:
                x.nodes = max(x.nodes, r.nodes)
                x.node_names = sorted(set(x.node_names) | set(r.node_names))[:MAX_NODE_NAMES]
                d.primary_reason = self._primary(d.rejections)
                return
        self._set_rejections(d, d.rejections + [r], None)

    @staticmethod
    def _primary(rejections: list[Rejection]) -> str | None:
        """The reason that blocked the most nodes; preemption texts and the
        HAMi wrapper never win over a concrete reason."""
        concrete = [r for r in rejections if r.code not in ("preemption_not_helpful", "no_preemption_victims")]
        pool = concrete or rejections
        if not pool:
            return None
        return max(pool, key=lambda r: (r.nodes, r.devices or 0, r.source == "hami")).code

    def _count_errors(self, decoder: str, errors) -> None:
        for e in errors or ():
            self.errors[f"decode_{decoder}_{e.code}"] += 1

    # ------------------------------------------------------------------ finish
    def _finish(self, t: _Tracked, outcome: str | None, now: float) -> list[Change]:
        d = t.decision
        changes: list[Change] = []
        if outcome is not None and d.outcome == "pending":
            d.outcome = outcome
            changes.append(Change(outcome, d, now))
        elif d.outcome == "placed" and d.running is None:
            # bound but never started: outputs still need to close the placement
            changes.append(Change("deleted", d, now))
        d.finished = now
        if d.node and d.devices:
            self.dirty_nodes.add(d.node)
        self.pods.pop(d.uid, None)
        self._hold(t)  # no longer in self.pods: releases what it held
        if self.by_name.get((d.namespace, d.name)) == d.uid:
            del self.by_name[(d.namespace, d.name)]
        self.finished[d.uid] = d
        while len(self.finished) > self.max_finished:
            self.finished.popitem(last=False)
        return changes

    # ------------------------------------------------------------------ nodes
    def _node(self, ev: ObjectEvent) -> None:
        obj = ev.obj
        name = _s(obj["metadata"].get("name"))
        if not name:
            self.errors["bad_object"] += 1
            return
        self.dirty_nodes.add(name)
        self._best.pop(name, None)
        if ev.type == "DELETED":
            self.nodes.pop(name, None)
            return
        info = NodeInfo(name)
        ann = _d(obj["metadata"].get("annotations"))
        for key, value in ann.items():
            k = classify_node_annotation(key)
            if k is None:
                continue
            if k.kind == "register":
                reg = decode_node_register(value, key)
                self._count_errors("node_register", reg.errors)
                for dev in reg.devices:
                    info.devices[dev.id] = NodeDeviceInfo(
                        uuid=dev.id, vendor=reg.vendor, type=dev.type or "", index=dev.index,
                        memory_bytes=dev.memory_bytes, core_ratio=dev.cores, split_count=dev.count,
                        healthy=dev.healthy, numa=dev.numa, mode=dev.mode)
            elif k.kind == "handshake":
                hs = decode_handshake(value)
                self._count_errors("handshake", hs.errors)
                ts = hs.time.timestamp() if hs.time is not None else None
                info.handshake[k.vendor] = (hs.state or "unknown", ts)
        status = _d(obj.get("status"))
        alloc = _d(status.get("allocatable"))
        for res, q in alloc.items():
            if "/" in res and isinstance(q, (str, int)) and str(q).isdigit():
                info.allocatable[res] = int(q)
        info.cpu_milli = quantity(alloc.get("cpu"), 1000)
        info.memory_mib = quantity(alloc.get("memory"), 1 / (1024 * 1024))
        info.pods = quantity(alloc.get("pods"))
        info.labels = {str(k): str(v) for k, v in _d(obj["metadata"].get("labels")).items()}
        info.unschedulable = _d(obj.get("spec")).get("unschedulable") is True
        for c in _l(status.get("conditions")):
            if isinstance(c, dict) and c.get("type") == "Ready":
                info.ready = c.get("status") == "True"
        self.nodes[name] = info

    # ------------------------------------------------------------------ free capacity
    def device_usage(self) -> dict[str, dict[str, Any]]:
        """Per registered device UUID: node, index, type, registered memory
        and cores, and what tracked placed pods hold (``memory_allocated``
        bytes, ``cores_allocated`` ratio, ``shared`` containers)."""
        usage: dict[str, dict[str, Any]] = {}
        zero = (0, 0.0, 0)
        for node in self.nodes.values():
            for dev in node.devices.values():
                acc = self._alloc.get(dev.uuid, zero)
                usage[dev.uuid] = {"node": node.name, "device": dev, "memory_allocated": acc[0],
                                   "cores_allocated": acc[1], "shared": acc[2]}
        return usage
