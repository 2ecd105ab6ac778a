"""Decoders for Volcano's gang-scheduling texts and PodGroup conditions.

Format sources (volcano-sh/volcano ed72c7c8: ``pkg/scheduler/api/job_info.go``
``JobInfo.FitError``/``TaskSchedulingReason``, ``pkg/scheduler/api/unschedule_info.go``
``FitErrors``/``FitError``, ``pkg/scheduler/plugins/gang/gang.go``,
``pkg/scheduler/cache/cache.go``, ``apis/pkg/apis/scheduling/v1beta1/types.go``;
written down in ``docs/formats.md`` §volcano, research notes
``scheduling-signals.md`` §2.2):

* PodGroup condition / ``Unschedulable`` Event:
  ``<unready>/<total> tasks in gang unschedulable: <job fit error>``
* Job fit error::

    ("pod group is ready" | "pod group is not ready") ", " <"COUNT STATUS" list incl. "N minAvailable">
    [ "; Pending: " <"COUNT REASON" list> ]
    [ ". Origin reason is " <task>": " <FitErrors> | ". Origin reason is: " <job fit errors> ]

* FitErrors (per task): ``0/<n> nodes are unavailable: <COUNT reason, …>.``,
  or ``all nodes are unavailable`` when nothing was recorded.
* One node: ``task <ns>/<name> on node <node> fit failed: <reasons>``.
* Pod condition ``Schedulable``: ``Pod <ns>/<pod> can possibly be assigned to
  <node>, once minAvailable is satisfied`` (pipelined: ``…once resource is
  released and minAvailable is satisfied``).
* PodGroup ``Scheduled`` Event: ``pod group is ready``.

Public API::

    decode_volcano_message(text) -> VolcanoMessage
    decode_job_fit_error(text) -> JobFitError
    decode_podgroup_condition(condition) -> PodGroupCondition
    decode_podgroup(podgroup) -> PodGroupStatus

No function raises; problems are :class:`~scheduler_events.decoders.common.DecodeError`
records in the result's ``errors``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Mapping
from typing import Any, Union

from .common import DecodeError, error, never_raises, parse_rfc3339
from .kube_scheduler import FailedScheduling, decode_failed_scheduling

#: Fixed texts written by the Volcano scheduler.
POD_GROUP_READY = "pod group is ready"
POD_GROUP_NOT_READY = "pod group is not ready"
ALL_NODES_UNAVAILABLE = "all nodes are unavailable"
#: PodGroup condition types and the gang plugin's reasons.
PODGROUP_CONDITION_TYPES = ("Unschedulable", "Scheduled")
PODGROUP_PHASES = ("Pending", "Inqueue", "Running", "Unknown", "Completed")

_GANG_RE = re.compile(r"(?P<unready>[0-9]+)/(?P<total>[0-9]+) tasks in gang unschedulable: ?(?P<rest>.*)", re.S)
_JOB_HEAD_RE = re.compile(r"pod group is (?P<not>not )?ready(?:, |$)")
_COUNT_RE = re.compile(r"(?P<count>[0-9]+) (?P<word>\S+)")
_ORIGIN = ". Origin reason is"
_TASK_FIT_RE = re.compile(
    r"task (?P<ns>[^/\s]+)/(?P<name>\S+) on node (?P<node>\S+) fit failed: ?(?P<reasons>.*)", re.S
)
_ASSIGN_RE = re.compile(
    r"Pod (?P<ns>[^/\s]+)/(?P<pod>\S+) can possibly be assigned to (?P<node>[^\s,]+), once (?P<wait>.*?)\.?"
)


@dataclass(frozen=True, slots=True)
class JobFitError:
    """A decoded ``JobInfo.FitError()`` text.

    ``ready``: ``pod group is ready`` vs ``… not ready``.
    ``task_statuses``: ``(count, status)`` pairs (``Pending``, ``Running``...)
    without the ``minAvailable`` entry, which is in ``min_available``.
    ``pending_reasons``: ``(count, reason)`` over pending tasks
    (``Unschedulable``, ``Undetermined``, ``Schedulable``...).
    ``origin_task``: the task whose fit errors are quoted (``None`` for the
    job-level ``Origin reason is: …`` form); ``origin``: that text decoded
    with the FitError grammar (head ``nodes are unavailable``).
    """

    ready: bool
    task_statuses: tuple[tuple[int, str], ...] = ()
    min_available: int | None = None
    pending_reasons: tuple[tuple[int, str], ...] = ()
    origin_task: str | None = None
    origin: FailedScheduling | None = None
    errors: tuple[DecodeError, ...] = ()


@dataclass(frozen=True, slots=True)
class GangUnschedulable:
    """``<unready>/<total> tasks in gang unschedulable: <job fit error>``."""

    unready: int
    total: int
    job: JobFitError | None
    detail_text: str


@dataclass(frozen=True, slots=True)
class TaskFitFailed:
    """``task <ns>/<name> on node <node> fit failed: <reasons>``."""

    namespace: str
    task: str
    node: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CanBeAssigned:
    """Pod condition ``Schedulable``: allocated to ``node``, waiting for
    ``minAvailable`` (and, when ``pipelined``, for resources to be released)."""

    namespace: str
    pod: str
    node: str
    waiting_for: str
    pipelined: bool


VolcanoDetail = Union[GangUnschedulable, JobFitError, FailedScheduling, TaskFitFailed, CanBeAssigned]


@dataclass(frozen=True, slots=True)
class VolcanoMessage:
    """A decoded Volcano scheduling text.

    ``kind``: ``gang_unschedulable``, ``job_fit_error``, ``fit_errors``
    (``0/N nodes are unavailable: …`` or ``all nodes are unavailable``),
    ``task_fit_failed``, ``can_be_assigned``, ``pod_group_ready`` or
    ``unknown``.  ``detail``: the matching dataclass.
    """

    kind: str
    text: str
    detail: VolcanoDetail | None = None
    errors: tuple[DecodeError, ...] = ()


def _counts(text: str, errors: list[DecodeError]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for part in text.split(", "):
        part = part.strip()
        if not part:
            continue
        m = _COUNT_RE.fullmatch(part)
        if m:
            out.append((int(m["count"]), m["word"]))
        else:
            errors.append(error("no_match", part))
    return out


def _job_fallback(raw: Any, err: DecodeError) -> JobFitError:
    return JobFitError(False, errors=(err,))


@never_raises(_job_fallback)
def decode_job_fit_error(text: Any) -> JobFitError:
    """Decode Volcano's job fit error (``JobInfo.FitError()``;
    ``docs/formats.md`` §volcano, scheduling-signals.md §2.2), e.g.
    ``pod group is not ready, 1 Pending, 1 minAvailable; Pending: 1
    Unschedulable. Origin reason is w-0: 0/1 nodes are unavailable: 1
    Insufficient nvidia.com/gpu.``  Output: :class:`JobFitError`; text
    without the ``pod group is …ready`` head gives ``no_match``."""
    if not isinstance(text, str):
        return JobFitError(False, errors=(error("bad_type", text),))
    body = text.strip()
    m = _JOB_HEAD_RE.match(body)
    if not m:
        return JobFitError(False, errors=(error("no_match", text),))
    errors: list[DecodeError] = []
    rest = body[m.end() :]
    origin_task: str | None = None
    origin: FailedScheduling | None = None
    idx = rest.find(_ORIGIN)
    if idx >= 0:
        origin_text = rest[idx + len(_ORIGIN) :]
        rest = rest[:idx]
        if origin_text.startswith(": "):
            origin = decode_failed_scheduling(origin_text[2:])
        else:
            task, sep, fit = origin_text.strip().partition(": ")
            if sep and task:
                origin_task = task
                origin = decode_failed_scheduling(fit)
            else:
                errors.append(error("no_match", origin_text))
        if origin is not None:
            errors.extend(origin.all_errors())
    statuses_text, _, pending_text = rest.partition("; ")
    statuses = _counts(statuses_text.rstrip("."), errors)
    min_available: int | None = None
    task_statuses: list[tuple[int, str]] = []
    for count, word in statuses:
        if word == "minAvailable":
            min_available = count
        else:
            task_statuses.append((count, word))
    pending: list[tuple[int, str]] = []
    if pending_text:
        label, sep, hist = pending_text.partition(": ")
        if label == "Pending" and sep:
            pending = _counts(hist.rstrip("."), errors)
        else:
            errors.append(error("no_match", pending_text))
    return JobFitError(
        ready=not m["not"],
        task_statuses=tuple(task_statuses),
        min_available=min_available,
        pending_reasons=tuple(pending),
        origin_task=origin_task,
        origin=origin,
        errors=tuple(errors),
    )


def _message_fallback(raw: Any, err: DecodeError) -> VolcanoMessage:
    return VolcanoMessage("unknown", raw if isinstance(raw, str) else "", None, (err,))


@never_raises(_message_fallback)
def decode_volcano_message(text: Any) -> VolcanoMessage:
    """Decode any Volcano scheduling text: a PodGroup ``Unschedulable``
    condition or Event message, a pod ``FailedScheduling`` note written by
    Volcano, a ``Schedulable`` pod condition message, or ``pod group is
    ready`` (``docs/formats.md`` §volcano, scheduling-signals.md §2.2).

    Output: :class:`VolcanoMessage`; ``kind="unknown"`` with ``no_match``
    for text in none of the documented forms.
    """
    if not isinstance(text, str):
        return VolcanoMessage("unknown", "", None, (error("bad_type", text),))
    body = text.strip()
    if not body:
        return VolcanoMessage("unknown", text, None, (error("empty", text),))
    if body == POD_GROUP_READY:
        return VolcanoMessage("pod_group_ready", text)
    m = _GANG_RE.fullmatch(body)
    if m:
        rest = m["rest"]
        job = decode_job_fit_error(rest) if _JOB_HEAD_RE.match(rest) else None
        detail = GangUnschedulable(int(m["unready"]), int(m["total"]), job, rest)
        return VolcanoMessage("gang_unschedulable", text, detail, job.errors if job else ())
    if _JOB_HEAD_RE.match(body):
        job = decode_job_fit_error(body)
        return VolcanoMessage("job_fit_error", text, job, job.errors)
    if body.rstrip(".") == ALL_NODES_UNAVAILABLE:
        return VolcanoMessage("fit_errors", text, decode_failed_scheduling(body))
    fit = decode_failed_scheduling(body)
    if fit.kind == "fit_error":
        return VolcanoMessage("fit_errors", text, fit, fit.all_errors())
    m = _TASK_FIT_RE.fullmatch(body)
    if m:
        reasons = tuple(r.strip() for r in m["reasons"].split(", ") if r.strip())
        return VolcanoMessage("task_fit_failed", text, TaskFitFailed(m["ns"], m["name"], m["node"], reasons))
    m = _ASSIGN_RE.fullmatch(body)
    if m:
        wait = m["wait"]
        detail = CanBeAssigned(m["ns"], m["pod"], m["node"], wait, "released" in wait)
        return VolcanoMessage("can_be_assigned", text, detail)
    return VolcanoMessage("unknown", text, None, (error("no_match", text),))


# --------------------------------------------------------------------------- PodGroup


@dataclass(frozen=True, slots=True)
class PodGroupCondition:
    """One ``status.conditions`` entry of a Volcano PodGroup.

    ``type``: ``Unschedulable`` | ``Scheduled``; ``status``: ``True`` |
    ``False`` | ``Unknown``; ``reason``: ``NotEnoughResources``,
    ``NotEnoughTasks``, ``NotEnoughPodsOfTask``, ``tasks in gang are ready to
    be scheduled``...; ``transition_id``: the scheduler session UID;
    ``gang``: the decoded ``N/M tasks in gang unschedulable: …`` message.
    """

    type: str | None
    status: str | None
    reason: str | None
    message: str | None
    transition_id: str | None = None
    last_transition_time: datetime | None = None
    gang: GangUnschedulable | None = None
    errors: tuple[DecodeError, ...] = ()


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _cond_fallback(raw: Any, err: DecodeError) -> PodGroupCondition:
    return PodGroupCondition(None, None, None, None, errors=(err,))


@never_raises(_cond_fallback)
def decode_podgroup_condition(condition: Any) -> PodGroupCondition:
    """Decode one PodGroup condition dict (``type``, ``status``, ``reason``,
    ``message``, ``transitionID``, ``lastTransitionTime``;
    ``docs/formats.md`` §volcano).  A gang message is decoded into ``gang``."""
    if not isinstance(condition, Mapping):
        return PodGroupCondition(None, None, None, None, errors=(error("bad_type", condition),))
    message = _str(condition, "message")
    gang: GangUnschedulable | None = None
    errors: tuple[DecodeError, ...] = ()
    if message and _GANG_RE.fullmatch(message.strip()):
        decoded = decode_volcano_message(message)
        if isinstance(decoded.detail, GangUnschedulable):
            gang = decoded.detail
        errors = decoded.errors
    return PodGroupCondition(
        type=_str(condition, "type"),
        status=_str(condition, "status"),
        reason=_str(condition, "reason"),
        message=message,
        transition_id=_str(condition, "transitionID"),
        last_transition_time=parse_rfc3339(condition.get("lastTransitionTime")),
        gang=gang,
        errors=errors,
    )


@dataclass(frozen=True, slots=True)
class PodGroupStatus:
    """A Volcano PodGroup (``scheduling.volcano.sh/v1beta1``) reduced to what
    explains gang placement.

    ``min_member``: ``spec.minMember``; ``queue``: ``spec.queue``;
    ``phase``: ``status.phase`` (``Pending``, ``Inqueue``, ``Running``,
    ``Unknown``, ``Completed``); ``running``/``succeeded``/``failed``: pod
    counts; ``conditions``: in API order.
    """

    namespace: str | None
    name: str | None
    uid: str | None
    min_member: int | None = None
    queue: str | None = None
    phase: str | None = None
    running: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    conditions: tuple[PodGroupCondition, ...] = ()
    errors: tuple[DecodeError, ...] = ()

    def condition(self, type_: str) -> PodGroupCondition | None:
        """The last condition of ``type_`` (``Unschedulable``/``Scheduled``)."""
        found = None
        for cond in self.conditions:
            if cond.type == type_:
                found = cond
        return found


def _int(obj: Mapping[str, Any], key: str, errors: list[DecodeError]) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(error("bad_int", f"{key}={value!r}"))
        return None
    return value


def _pg_fallback(raw: Any, err: DecodeError) -> PodGroupStatus:
    return PodGroupStatus(None, None, None, errors=(err,))


@never_raises(_pg_fallback)
def decode_podgroup(podgroup: Any) -> PodGroupStatus:
    """Decode a Volcano PodGroup object dict (``metadata``, ``spec.minMember``,
    ``spec.queue``, ``status.phase``, ``status.conditions``...;
    ``docs/formats.md`` §volcano).  Output: :class:`PodGroupStatus`."""
    if not isinstance(podgroup, Mapping):
        return PodGroupStatus(None, None, None, errors=(error("bad_type", podgroup),))
    errors: list[DecodeError] = []
    meta = podgroup.get("metadata") if isinstance(podgroup.get("metadata"), Mapping) else {}
    spec = podgroup.get("spec") if isinstance(podgroup.get("spec"), Mapping) else {}
    status = podgroup.get("status") if isinstance(podgroup.get("status"), Mapping) else {}
    conditions: list[PodGroupCondition] = []
    raw_conditions = status.get("conditions") or []
    if not isinstance(raw_conditions, list):
        errors.append(error("bad_shape", f"conditions={raw_conditions!r}"))
        raw_conditions = []
    for raw in raw_conditions:
        cond = decode_podgroup_condition(raw)
        conditions.append(cond)
        errors.extend(cond.errors)
    return PodGroupStatus(
        namespace=_str(meta, "namespace"),
        name=_str(meta, "name"),
        uid=_str(meta, "uid"),
        min_member=_int(spec, "minMember", errors),
        queue=_str(spec, "queue"),
        phase=_str(status, "phase"),
        running=_int(status, "running", errors),
        succeeded=_int(status, "succeeded", errors),
        failed=_int(status, "failed", errors),
        conditions=tuple(conditions),
        errors=tuple(errors),
    )
