"""OpenTelemetry traces: one trace per pod placement, pushed over OTLP/HTTP.

:class:`PlacementTracer` turns the decision engine's :class:`Change` values
into traces.  It is off unless the collector builds one (an OTLP endpoint is
configured).

**When.**  A placement's trace is emitted once, after the placement reaches
a terminal point: ``running`` (placed and its first container started),
``failed`` (bind or allocation failed) or ``deleted`` (removed while still
pending).  Other changes (``attempt_failed``, ``filtered``, ``placed``,
``allocated``) are ignored; the decision they point at is the same object and
is read in full when the trace is built.  The trace is built ``delay_s``
after the terminal change (at a later ``on_change``/``tick``, or at
``force_flush``/``shutdown``), because the Events that explain a placement can
arrive after the Pod update that ended it (always so in a ``kubectl get``
dump, which replays pods before events).  A pod UID is traced at most once
(remembered in a bounded set), so a later ``failed`` after ``running``, or a
replayed stream, does not produce a second trace.  The engine emits no change
when a pod that was placed but never ran is deleted, so such a placement is
not traced.

**Trace id.**  ``int(decision.trace_id, 16)`` — the pod UID's 128 bits (see
:func:`scheduler_events.model.trace_id_for_uid`) — so a dashboard can link a
UID to its trace without a lookup.  Span ids are random.

**Spans** (all ``INTERNAL``; start/end are the decision's phase timestamps,
Unix seconds turned into nanoseconds)::

    placement                     created   -> running (or the failure / deletion time)
      pending                     created   -> filtered, else bound
      filter                      filtered  -> bound
      bind                        bound     -> allocated
      allocate                    allocated -> running

A span whose start or end timestamp was not observed is left out, with one
exception: on ``failed``/``deleted`` the phase the placement was in (the last
phase whose start is known, when no later timestamp is) ends at the failure
or deletion time and gets status ERROR — e.g. a pod deleted while pending has
a ``pending`` span up to its deletion; a pod whose allocation failed has a
``bind`` span up to the failure.  When an end is before its start (clock skew
between API objects) the end is clamped to the start and the span gets
``accelscope.clock_skew=true``.  A root span whose ``created`` is unknown
starts at the earliest known phase timestamp.

**Events.**  ``node.evaluated`` per evaluated node (``decision.verdicts``) on
the ``filter`` span at its start, or, without one, on the ``pending`` span at
its end: ``k8s.node.name``, ``accelscope.node.fit`` (bool),
``accelscope.node.score`` (float, when HAMi scored the node),
``accelscope.node.reasons`` (list of reason codes, empty when it fit).  Fit
nodes come first, best score first; past ``max_node_events`` the rest are
dropped and counted in the span attribute ``accelscope.node_events.dropped``.
``placement.rejected`` per rejection reason of the latest failed attempt on
the ``pending`` span at its end: ``accelscope.reason.code``,
``accelscope.reason.source``, ``accelscope.reason.nodes`` (int),
``accelscope.reason.devices`` (int, when known), ``accelscope.reason.detail``
and ``accelscope.reason.node_names`` (when known).

**Root attributes.**  ``k8s.pod.name``, ``k8s.pod.uid``,
``k8s.namespace.name``, ``k8s.node.name`` (the chosen node, when any),
``k8s.<owner kind>.name`` for the usual workload kinds (``k8s.statefulset.name``...),
``accelscope.scheduler``, ``accelscope.reporter`` (when known),
``accelscope.outcome`` (``placed``, ``failed``, ``deleted``),
``accelscope.attempts`` (int), ``accelscope.primary_reason``,
``accelscope.devices`` (allocated device UUIDs), ``accelscope.nodes.total``
and ``accelscope.nodes.fit`` (when known), ``accelscope.message`` (the full
scheduler message, when any).  Status: ERROR for ``failed`` and ``deleted``
placements, with the description ``"<primary reason>: <message>"`` (either
part alone when the other is unknown); OK otherwise.  Phase spans keep the
default UNSET status, except the phase open at a failure or deletion (ERROR,
same description).

**Resource.**  ``service.name`` (``accelscope-collector``),
``service.version``, ``k8s.cluster.name`` when given, then
``resource_attributes`` (merged last, so they win).  ``OTEL_RESOURCE_ATTRIBUTES``
is honoured as by the SDK.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import random
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from accelscope import __version__
from scheduler_events.decisions import Change
from scheduler_events.model import PlacementDecision

log = logging.getLogger("accelscope")

#: change kinds at which a placement's trace is emitted
TERMINAL_KINDS = frozenset({"running", "failed", "deleted"})

#: owner kinds that have an OTel k8s ``k8s.<kind>.name`` attribute
_OWNER_ATTRIBUTES = {
    "StatefulSet": "k8s.statefulset.name",
    "ReplicaSet": "k8s.replicaset.name",
    "Deployment": "k8s.deployment.name",
    "DaemonSet": "k8s.daemonset.name",
    "Job": "k8s.job.name",
    "CronJob": "k8s.cronjob.name",
}

#: the trace id the next root span gets (set just before starting it)
_next_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("accelscope_next_trace_id",
                                                                             default=None)


class PlacementIdGenerator(IdGenerator):
    """Trace ids from :data:`_next_trace_id` when set (a placement's
    UID-derived id), random otherwise; span ids always random."""

    def __init__(self) -> None:
        self._rng = random.Random()

    def generate_span_id(self) -> int:
        span_id = self._rng.getrandbits(64)
        while span_id == trace.INVALID_SPAN_ID:
            span_id = self._rng.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        tid = _next_trace_id.get()
        if tid:
            return tid
        tid = self._rng.getrandbits(128)
        while tid == trace.INVALID_TRACE_ID:
            tid = self._rng.getrandbits(128)
        return tid

    def is_trace_id_random(self) -> bool:
        return False  # derived from pod UIDs, not guaranteed random


def to_ns(t: float) -> int:
    """Unix seconds (float) -> Unix nanoseconds (int), exact for whole seconds."""
    whole = int(t // 1)
    return whole * 1_000_000_000 + round((t - whole) * 1e9)


def trace_id_int(decision: PlacementDecision) -> int:
    """The placement's 128-bit trace id as an int (``int(decision.trace_id, 16)``)."""
    return int(decision.trace_id, 16)


class _Plan:
    """One span to emit: name, start/end (Unix seconds), error flag, skew flag."""

    __slots__ = ("name", "start", "end", "error", "skew")

    def __init__(self, name: str, start: float, end: float, error: bool = False) -> None:
        self.name, self.start, self.end, self.error = name, start, end, error
        self.skew = end < start
        if self.skew:
            self.end = start


def plan_spans(d: PlacementDecision, kind: str, when: float) -> tuple[_Plan, list[_Plan]]:
    """The root and phase spans for ``d`` reaching terminal change ``kind`` at
    ``when`` (Unix seconds); see the module docstring for the rules."""
    error = kind in ("failed", "deleted") or d.outcome in ("failed", "deleted")
    known = [t for t in (d.created, d.filtered, d.bound, d.allocated, d.running) if t is not None]
    if error:
        end = d.finished if kind == "deleted" and d.finished is not None else when
    else:
        end = d.running if d.running is not None else when
    start = d.created if d.created is not None else min(known, default=end)
    root = _Plan("placement", start, end, error)

    pending_end = d.filtered if d.filtered is not None else d.bound
    phases = [
        ("pending", d.created, pending_end),
        ("filter", d.filtered, d.bound),
        ("bind", d.bound, d.allocated),
        ("allocate", d.allocated, d.running),
    ]
    children: list[_Plan] = []
    open_phase = None
    if error:
        # the phase the placement was in: the last one that started, if it never ended
        for name, s, e in reversed(phases):
            if s is not None:
                if e is None:
                    open_phase = name
                break
    for name, s, e in phases:
        if s is None:
            continue
        if e is None:
            if name != open_phase:
                continue
            children.append(_Plan(name, s, end, True))
        else:
            children.append(_Plan(name, s, e))
    return root, children


class PlacementTracer:
    """Emit one OTLP trace per pod placement (see the module docstring).

    ``endpoint``: OTLP/HTTP base URL (``http://otel-collector:4318``);
    ``/v1/traces`` is appended unless present.  ``None`` lets the OTLP
    exporter use ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` (default
    ``http://localhost:4318/v1/traces``).  ``exporter``: inject a
    :class:`SpanExporter` instead (tests).  ``service_name``,
    ``cluster_name`` (``k8s.cluster.name``) and ``resource_attributes`` make
    the resource.  ``max_node_events``: ``node.evaluated`` events per span at
    most.  ``max_remembered``: traced pod UIDs kept for the once-per-UID
    guard (oldest forgotten first).  ``delay_s``: how long (by ``clock``,
    seconds) a terminal placement waits before its trace is built, so the
    Events that explain it (HAMi ``FilteringSucceed`` scores, a late
    ``FailedScheduling``) can reach the decision first; ``max_queued``:
    waiting traces at most (the oldest is emitted early beyond it); ``0``
    for either emits at once.

    Not thread-safe: call ``on_change``, ``tick``, ``force_flush`` and
    ``shutdown`` from the thread that runs the engine (the decisions are
    read when the trace is built).  ``traces`` counts traces emitted;
    ``errors`` counts problems by kind (``internal``); nothing here raises
    on bad input.
    """

    def __init__(self, endpoint: str | None = None, *, exporter: SpanExporter | None = None,
                 service_name: str = "accelscope-collector", cluster_name: str | None = None,
                 resource_attributes: dict | None = None, max_node_events: int = 32,
                 max_remembered: int = 100_000, delay_s: float = 5.0, max_queued: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            url = None
            if endpoint:
                url = endpoint.rstrip("/")
                if not url.endswith("/v1/traces"):
                    url += "/v1/traces"
            exporter = OTLPSpanExporter(endpoint=url)
        attrs: dict = {"service.name": service_name, "service.version": __version__}
        if cluster_name:
            attrs["k8s.cluster.name"] = cluster_name
        attrs.update(resource_attributes or {})
        self.max_node_events = max(0, int(max_node_events))
        limits = SpanLimits(max_events=self.max_node_events + 64)
        self.provider = TracerProvider(resource=Resource.create(attrs), id_generator=PlacementIdGenerator(),
                                       sampler=ParentBased(ALWAYS_ON), span_limits=limits)
        self._processor = BatchSpanProcessor(exporter, max_queue_size=16384, max_export_batch_size=1024)
        self.provider.add_span_processor(self._processor)
        self.tracer = self.provider.get_tracer("accelscope.scheduler_events", __version__)
        self._traced: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._queue: collections.OrderedDict[str, tuple[float, PlacementDecision, str, float]] = \
            collections.OrderedDict()
        self.delay_s = max(0.0, float(delay_s))
        self.max_queued = max(0, int(max_queued))
        self._clock = clock
        self._max_remembered = max(1, int(max_remembered))
        self.traces = 0
        self.errors: collections.Counter[str] = collections.Counter()

    # ------------------------------------------------------------------ input
    def on_change(self, change: Change) -> None:
        """Act on one engine change: queue the placement's trace when the
        change is terminal (``running``, ``failed``, ``deleted``) and the pod
        UID was not traced or queued yet; then emit what is due (:meth:`tick`)."""
        if change.kind in TERMINAL_KINDS:
            uid = change.decision.uid
            if uid not in self._traced and uid not in self._queue:
                self._queue[uid] = (self._clock() + self.delay_s, change.decision, change.kind, change.time)
        self.tick()

    def tick(self) -> int:
        """Emit the queued traces whose delay has passed (and the oldest ones
        beyond ``max_queued``); returns how many were emitted.  Call it from
        the engine's thread now and then, so a trace is not held back when
        no further change arrives."""
        now = self._clock()
        n = 0
        while self._queue:
            uid, (due, _, _, _) = next(iter(self._queue.items()))
            if due > now and len(self._queue) <= self.max_queued:
                break
            n += self._emit_queued(uid)
        return n

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Emit every queued trace, then export every finished span; True when
        all were exported in time."""
        while self._queue:
            self._emit_queued(next(iter(self._queue)))
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Emit every queued trace, flush and stop; later changes are dropped."""
        while self._queue:
            self._emit_queued(next(iter(self._queue)))
        self.provider.shutdown()

    def _emit_queued(self, uid: str) -> int:
        _, d, kind, when = self._queue.pop(uid)
        self._traced[uid] = None
        while len(self._traced) > self._max_remembered:
            self._traced.popitem(last=False)
        try:
            self._emit(d, kind, when)
        except Exception as exc:  # noqa: BLE001 - an output never stops the collector
            self.errors["internal"] += 1
            log.warning("trace of %s/%s failed: %s", d.namespace, d.name, exc, exc_info=True)
            return 0
        self.traces += 1
        return 1

    # ------------------------------------------------------------------ spans
    def _emit(self, d: PlacementDecision, kind: str, when: float) -> None:
        root_plan, children = plan_spans(d, kind, when)
        token = _next_trace_id.set(trace_id_int(d))
        try:
            root = self.tracer.start_span(root_plan.name, context=trace.set_span_in_context(trace.INVALID_SPAN),
                                          kind=SpanKind.INTERNAL, start_time=to_ns(root_plan.start),
                                          attributes=self._root_attributes(d))
        finally:
            _next_trace_id.reset(token)
        if root_plan.skew:
            root.set_attribute("accelscope.clock_skew", True)
        ctx = trace.set_span_in_context(root)
        spans = {}
        for p in children:
            span = self.tracer.start_span(p.name, context=ctx, kind=SpanKind.INTERNAL, start_time=to_ns(p.start))
            if p.skew:
                span.set_attribute("accelscope.clock_skew", True)
            spans[p.name] = (span, p)
        node_target = spans.get("filter") or spans.get("pending")
        if node_target is not None and d.verdicts:
            span, p = node_target
            self._node_events(span, d, p.start if p.name == "filter" else p.end)
        if "pending" in spans and d.rejections:
            span, p = spans["pending"]
            for r in d.rejections:
                attrs = {"accelscope.reason.code": r.code, "accelscope.reason.source": r.source,
                         "accelscope.reason.nodes": int(r.nodes)}
                if r.devices is not None:
                    attrs["accelscope.reason.devices"] = int(r.devices)
                if r.detail:
                    attrs["accelscope.reason.detail"] = r.detail
                if r.node_names:
                    attrs["accelscope.reason.node_names"] = list(r.node_names)
                span.add_event("placement.rejected", attrs, timestamp=to_ns(p.end))
        description = self._status_description(d)
        for span, p in spans.values():
            if p.error:
                span.set_status(Status(StatusCode.ERROR, description))
            span.end(end_time=to_ns(p.end))
        if root_plan.error:
            root.set_status(Status(StatusCode.ERROR, description))
        else:
            root.set_status(Status(StatusCode.OK))
        root.end(end_time=to_ns(root_plan.end))

    def _node_events(self, span, d: PlacementDecision, at: float) -> None:
        verdicts = sorted(d.verdicts.values(),
                          key=lambda v: (not v.fit, -(v.score if v.score is not None else float("-inf")), v.node))
        ts = to_ns(at)
        for v in verdicts[:self.max_node_events]:
            attrs = {"k8s.node.name": v.node, "accelscope.node.fit": bool(v.fit),
                     "accelscope.node.reasons": [r.code for r in v.reasons]}
            if v.score is not None:
                attrs["accelscope.node.score"] = float(v.score)
            span.add_event("node.evaluated", attrs, timestamp=ts)
        dropped = len(verdicts) - self.max_node_events
        if dropped > 0:
            span.set_attribute("accelscope.node_events.dropped", dropped)

    @staticmethod
    def _root_attributes(d: PlacementDecision) -> dict:
        attrs: dict = {
            "k8s.pod.name": d.name,
            "k8s.pod.uid": d.uid,
            "k8s.namespace.name": d.namespace,
            "accelscope.scheduler": d.scheduler,
            "accelscope.outcome": d.outcome,
            "accelscope.attempts": int(d.attempt),
        }
        if d.node:
            attrs["k8s.node.name"] = d.node
        owner_key = _OWNER_ATTRIBUTES.get(d.owner_kind or "")
        if owner_key and d.owner_name:
            attrs[owner_key] = d.owner_name
        if d.reporter:
            attrs["accelscope.reporter"] = d.reporter
        if d.primary_reason:
            attrs["accelscope.primary_reason"] = d.primary_reason
        if d.devices:
            attrs["accelscope.devices"] = [a.uuid for a in d.devices]
        if d.nodes_total is not None:
            attrs["accelscope.nodes.total"] = int(d.nodes_total)
        if d.nodes_fit is not None:
            attrs["accelscope.nodes.fit"] = int(d.nodes_fit)
        if d.message:
            attrs["accelscope.message"] = d.message
        return attrs

    @staticmethod
    def _status_description(d: PlacementDecision) -> str | None:
        parts = [p for p in (d.primary_reason, d.message) if p]
        return ": ".join(parts) if parts else None
