"""Identify who reported a Kubernetes Event, and read an Event dict of either
API shape (core/v1 or events.k8s.io/v1) through one view.

The reporter is taken **only** from the reporter fields, never from the
Event's ``reason``: Karpenter, Volcano and HAMi's kube-scheduler profile all
write ``FailedScheduling`` too (scheduling-signals.md §1.5, §4.2).  Field
precedence (first non-empty string wins):

1. ``reportingController`` (events.k8s.io/v1; the scheduler writes its
   profile name, e.g. ``default-scheduler``),
2. ``reportingComponent`` (core/v1 mirror of the same field),
3. ``source.component`` (core/v1 legacy recorders: HAMi, cluster-autoscaler,
   what ``kubectl describe`` shows under "From"),
4. ``deprecatedSource.component`` (events.k8s.io/v1 view of a legacy Event).

Field sources: kubernetes ``staging/src/k8s.io/api/events/v1/types.go``,
``core/v1/types.go``, client-go ``tools/events``/``tools/record``; written
down in ``docs/formats.md`` §events.

Public API::

    identify_reporter(event, known=None) -> Reporter
    event_view(event, known=None) -> EventView
    DEFAULT_REPORTERS, REPORTER_KINDS

No function raises; problems are :class:`~scheduler_events.decoders.common.DecodeError`
records in the result's ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from collections.abc import Mapping
from typing import Any

from .common import DecodeError, error, never_raises, parse_rfc3339

#: Reporter kinds (bounded; safe as a label value).
REPORTER_KINDS = ("kube-scheduler", "hami", "volcano", "cluster-autoscaler", "karpenter", "kubelet", "other", "unknown")

#: Default component name -> kind.  Scheduler names are configurable; pass
#: ``known`` to add or override (e.g. ``{"gpu-scheduler": "kube-scheduler"}``).
#: ``hami-scheduler`` is both HAMi's kube-scheduler profile and its extender's
#: recorder name, so both report as ``hami``.
DEFAULT_REPORTERS: Mapping[str, str] = MappingProxyType(
    {
        "default-scheduler": "kube-scheduler",
        "hami-scheduler": "hami",
        "volcano": "volcano",
        "cluster-autoscaler": "cluster-autoscaler",
        "karpenter": "karpenter",
        "kubelet": "kubelet",
    }
)

#: Reporter fields in precedence order: (path, API shape it belongs to).
_REPORTER_FIELDS = (
    (("reportingController",), "events.k8s.io/v1"),
    (("reportingComponent",), "core/v1"),
    (("source", "component"), "core/v1"),
    (("deprecatedSource", "component"), "events.k8s.io/v1"),
)
_INSTANCE_FIELDS = (("reportingInstance",), ("source", "host"), ("deprecatedSource", "host"))


def _get(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _nonempty(obj: Mapping[str, Any], path: tuple[str, ...]) -> str | None:
    value = _get(obj, path)
    return value if isinstance(value, str) and value.strip() else None


def _api(event: Mapping[str, Any]) -> str:
    version = event.get("apiVersion")
    if version == "events.k8s.io/v1" or version == "events.k8s.io/v1beta1":
        return "events.k8s.io/v1"
    if version == "v1":
        return "core/v1"
    if any(k in event for k in ("note", "regarding", "reportingController", "deprecatedSource")):
        return "events.k8s.io/v1"
    if any(k in event for k in ("message", "involvedObject", "source", "reportingComponent")):
        return "core/v1"
    return "unknown"


@dataclass(frozen=True, slots=True)
class Reporter:
    """Who reported an Event.

    ``component``: the reporter name as written (``default-scheduler``,
    ``hami-scheduler``, ``volcano``, ``karpenter``...), ``None`` if absent.
    ``instance``: ``reportingInstance`` or ``source.host``.
    ``field``: which field supplied ``component`` (``reportingController``,
    ``reportingComponent``, ``source.component``,
    ``deprecatedSource.component``).
    ``kind``: one of :data:`REPORTER_KINDS` (``other`` for a named but
    unknown component, ``unknown`` for none).
    ``api``: ``events.k8s.io/v1``, ``core/v1`` or ``unknown``.
    """

    component: str | None
    kind: str
    field: str | None = None
    instance: str | None = None
    api: str = "unknown"
    errors: tuple[DecodeError, ...] = ()


def _reporter_fallback(raw: Any, err: DecodeError) -> Reporter:
    return Reporter(None, "unknown", errors=(err,))


@never_raises(_reporter_fallback)
def identify_reporter(event: Any, known: Mapping[str, str] | None = None) -> Reporter:
    """Identify the reporter of an Event dict (core/v1 or events.k8s.io/v1)
    from ``reportingController`` / ``reportingComponent`` /
    ``source.component`` / ``deprecatedSource.component`` -- never from
    ``reason`` (``docs/formats.md`` §events, scheduling-signals.md §1.3-1.5).

    ``known`` maps extra component names to a kind in :data:`REPORTER_KINDS`
    (it overrides :data:`DEFAULT_REPORTERS`; a kind outside the set becomes
    ``other``).  Output: :class:`Reporter`; an Event without any reporter
    field gives ``kind="unknown"`` and a ``bad_shape`` error.
    """
    if not isinstance(event, Mapping):
        return Reporter(None, "unknown", errors=(error("bad_type", event),))
    api = _api(event)
    component = field_name = None
    for path, _shape in _REPORTER_FIELDS:
        component = _nonempty(event, path)
        if component is not None:
            field_name = ".".join(path)
            break
    instance = None
    for path in _INSTANCE_FIELDS:
        instance = _nonempty(event, path)
        if instance is not None:
            break
    if component is None:
        return Reporter(None, "unknown", None, instance, api, (error("bad_shape", "no reporter field"),))
    names = dict(DEFAULT_REPORTERS)
    if known:
        names.update(known)
    kind = names.get(component.strip(), "other")
    if kind not in REPORTER_KINDS:
        kind = "other"
    return Reporter(component, kind, field_name, instance, api)


# --------------------------------------------------------------------------- event view


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about (``involvedObject`` / ``regarding``)."""

    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    api_version: str | None = None
    field_path: str | None = None


@dataclass(frozen=True, slots=True)
class EventView:
    """An Event of either API shape, reduced to the fields a collector uses.

    ``note``: ``note`` (events.k8s.io/v1) or ``message`` (core/v1).
    ``regarding``: ``regarding`` or ``involvedObject``.
    ``count``: ``series.count``, else ``count``/``deprecatedCount``, else 1
    (the series count can lag by up to 30 minutes).
    ``first_time``: ``eventTime``, else ``firstTimestamp`` /
    ``deprecatedFirstTimestamp``, else ``metadata.creationTimestamp``.
    ``last_time``: ``series.lastObservedTime``, else ``lastTimestamp`` /
    ``deprecatedLastTimestamp``, else ``first_time``.  Times are aware.
    ``uid``/``resource_version``: of the Event object itself.
    """

    reason: str | None
    type: str | None
    note: str | None
    action: str | None
    reporter: Reporter
    regarding: ObjectRef
    count: int = 1
    first_time: datetime | None = None
    last_time: datetime | None = None
    uid: str | None = None
    resource_version: str | None = None
    errors: tuple[DecodeError, ...] = ()


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _view_fallback(raw: Any, err: DecodeError) -> EventView:
    return EventView(None, None, None, None, Reporter(None, "unknown"), ObjectRef(), errors=(err,))


@never_raises(_view_fallback)
def event_view(event: Any, known: Mapping[str, str] | None = None) -> EventView:
    """Read an Event dict of either shape (core/v1 ``message``,
    ``involvedObject``, ``source``, ``count``, ``firstTimestamp``... or
    events.k8s.io/v1 ``note``, ``regarding``, ``reportingController``,
    ``series``, ``eventTime``...) into one :class:`EventView`; the reporter
    comes from :func:`identify_reporter`.  Bad timestamps are ``None`` with a
    ``bad_time`` error."""
    if not isinstance(event, Mapping):
        return EventView(None, None, None, None, Reporter(None, "unknown"), ObjectRef(), errors=(error("bad_type", event),))
    errors: list[DecodeError] = []
    reporter = identify_reporter(event, known)
    errors.extend(reporter.errors)
    ref_raw = event.get("regarding")
    if not isinstance(ref_raw, Mapping):
        ref_raw = event.get("involvedObject")
    if not isinstance(ref_raw, Mapping):
        ref_raw = {}
    regarding = ObjectRef(
        kind=_s(ref_raw.get("kind")),
        namespace=_s(ref_raw.get("namespace")),
        name=_s(ref_raw.get("name")),
        uid=_s(ref_raw.get("uid")),
        api_version=_s(ref_raw.get("apiVersion")),
        field_path=_s(ref_raw.get("fieldPath")),
    )
    note = _s(event.get("note"))
    if note is None:
        note = _s(event.get("message"))

    def when(*paths: tuple[str, ...]) -> datetime | None:
        for path in paths:
            raw = _get(event, path)
            if raw is None or raw == "":
                continue
            parsed = parse_rfc3339(raw)
            if parsed is None:
                errors.append(error("bad_time", f"{'.'.join(path)}={raw!r}"))
                continue
            return parsed
        return None

    first = when(("eventTime",), ("firstTimestamp",), ("deprecatedFirstTimestamp",), ("metadata", "creationTimestamp"))
    last = when(("series", "lastObservedTime"), ("lastTimestamp",), ("deprecatedLastTimestamp",)) or first
    count = (
        _count(_get(event, ("series", "count")))
        or _count(event.get("count"))
        or _count(event.get("deprecatedCount"))
        or 1
    )
    return EventView(
        reason=_s(event.get("reason")),
        type=_s(event.get("type")),
        note=note,
        action=_s(event.get("action")),
        reporter=reporter,
        regarding=regarding,
        count=count,
        first_time=first,
        last_time=last,
        uid=_s(_get(event, ("metadata", "uid"))),
        resource_version=_s(_get(event, ("metadata", "resourceVersion"))),
        errors=tuple(errors),
    )
