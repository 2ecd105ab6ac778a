"""Decoders for kube-scheduler's ``FailedScheduling`` and ``Scheduled`` Event
texts and the pod's ``PodScheduled`` condition.

Format sources (kubernetes/kubernetes ``pkg/scheduler/framework/types.go``
``FitError.Error``, ``pkg/scheduler/framework/preemption/preemption.go``,
``pkg/scheduler/framework/plugins/defaultpreemption``,
``pkg/scheduler/schedule_one.go`` ``handleSchedulingFailure`` /
``truncateMessage`` / ``finishBinding``; written down in ``docs/formats.md``
§kube-scheduler, research notes ``scheduling-signals.md`` §1.2)::

    message    := head [ " " prefilter "." ] [ " " histogram "." ] [ " " postfilter ]
    head       := "0/" N " nodes are available:"
    histogram  := entry { ", " entry }          ; sorted as strings, not by importance
    entry      := COUNT " " REASON              ; counts may add up to more than N
    postfilter := "preemption: " message        ; recursive

Quirks handled: prefilter free text (no counts, no histogram), REASON texts
that contain ``", "`` (the pre-1.24 taint text, HAMi's ``1/8 CardX, 7/8
CardY``) -- a new entry starts only where the text after ``", "`` begins with
``<integer><space>`` and outside brackets --, the recursive ``preemption:``
part (or a plain text when the pod cannot preempt), trailing ``.``, the
Event note cut at 1024 bytes ending in ``" ..."`` (the ``PodScheduled``
condition message keeps the full text), the ``0/N nodes available:`` variant
(HAMi docs) and Volcano's ``0/N nodes are unavailable:`` head.

Public API::

    decode_failed_scheduling(message) -> FailedScheduling
    classify_reason(reason) -> ReasonClass
    decode_scheduled(message) -> Scheduled
    pod_scheduled_condition(pod) -> PodScheduledCondition | None
    best_scheduling_text(pod, event_note=None) -> SchedulingText
    NOTE_LENGTH_LIMIT, TRUNCATION_SUFFIX

No function raises; problems are :class:`~scheduler_events.decoders.common.DecodeError`
records in the result's ``errors``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from collections.abc import Mapping
from typing import Any

from .common import DecodeError, error, never_raises, parse_rfc3339
from .hami_events import NodeReasons, decode_node_reasons, looks_like_node_reasons

#: ``validation.NoteLengthLimit``: an Event note longer than this is cut.
NOTE_LENGTH_LIMIT = 1024
#: What ``truncateMessage`` appends to a cut note.
TRUNCATION_SUFFIX = " ..."
#: Deepest ``preemption:`` nesting decoded (the scheduler writes one level).
MAX_DEPTH = 4

_HEAD_RE = re.compile(r"\s*(?P<avail>[0-9]+)/(?P<total>[0-9]+) nodes (?P<are>are )?(?P<word>available|unavailable):\s*")
_ENTRY_START_RE = re.compile(r"[0-9]+ \S")
_ENTRY_RE = re.compile(r"(?P<count>[0-9]+) (?P<reason>.+)", re.S)
_PREEMPTION = "preemption:"
_ENTRY_SEP_RE = re.compile(r", (?=[0-9]+ \S)")
_PREFILTER_END_RE = re.compile(r"\.\s+(?=[0-9]+ \S)")
_OPEN, _CLOSE = "([{", ")]}"


# --------------------------------------------------------------------------- reason classes


@dataclass(frozen=True, slots=True)
class ReasonClass:
    """A histogram REASON mapped to the plugin that writes it.

    ``plugin``: ``NodeResourcesFit``, ``TaintToleration``, ``NodeAffinity``,
    ``NodeName``, ``NodeUnschedulable``, ``InterPodAffinity``,
    ``PodTopologySpread``, ``VolumeBinding``, ``NodeVolumeLimits``,
    ``VolumeZone``, ``DynamicResources``, ``DefaultPreemption``,
    ``VolcanoPredicates``, ``HAMi`` (extender reason string) or ``None``.
    ``code``: a bounded snake_case code (``insufficient_resource``,
    ``untolerated_taint``... ``hami``, ``other``).
    ``detail``: the variable part (resource name, ``key: value`` of a taint).
    ``hami``: the decoded HAMi per-node reasons when ``plugin == "HAMi"``.
    """

    plugin: str | None
    code: str
    detail: str | None = None
    hami: NodeReasons | None = None


#: Fixed REASON texts -> (plugin, code).
_FIXED_REASONS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "Too many pods": ("NodeResourcesFit", "too_many_pods"),
        "node(s) had taints that the pod didn't tolerate": ("TaintToleration", "untolerated_taint"),
        "node(s) didn't match Pod's node affinity/selector": ("NodeAffinity", "node_affinity"),
        "node(s) didn't match node selector": ("NodeAffinity", "node_affinity"),
        "node(s) didn't match the requested node name": ("NodeName", "node_name"),
        "node(s) were unschedulable": ("NodeUnschedulable", "node_unschedulable"),
        "node(s) didn't match pod affinity rules": ("InterPodAffinity", "pod_affinity"),
        "node(s) didn't match pod anti-affinity rules": ("InterPodAffinity", "pod_anti_affinity"),
        "node(s) didn't match pod topology spread constraints": ("PodTopologySpread", "topology_spread"),
        "node(s) didn't match pod topology spread constraints (missing required label)": (
            "PodTopologySpread",
            "topology_spread",
        ),
        "node(s) didn't find available persistent volumes to bind": ("VolumeBinding", "volume_binding"),
        "node(s) had volume node affinity conflict": ("VolumeBinding", "volume_node_affinity"),
        "node(s) did not have enough free storage": ("VolumeBinding", "volume_storage"),
        "node(s) exceed max volume count": ("NodeVolumeLimits", "volume_limits"),
        "node(s) had no available volume zone": ("VolumeZone", "volume_zone"),
        "cannot allocate all claims": ("DynamicResources", "dra_cannot_allocate"),
        "resourceclaim not available on the node": ("DynamicResources", "dra_claim_unavailable"),
        "Preemption is not helpful for scheduling": ("DefaultPreemption", "preemption_not_helpful"),
        "No preemption victims found for incoming pod": ("DefaultPreemption", "no_preemption_victims"),
        "node(s) resource fit failed": ("VolcanoPredicates", "resource_fit_failed"),
        "node(s) pod number exceeded": ("VolcanoPredicates", "pod_number_exceeded"),
    }
)
_TAINT_RE = re.compile(r"node\(s\) had untolerated taint \{(?P<t>.*)\}", re.S)
_TAINT_OLD_RE = re.compile(r"node\(s\) had taint \{(?P<t>.*)\}, that the pod didn't tolerate", re.S)


def classify_reason(reason: str) -> ReasonClass:
    """Map one histogram REASON (``Insufficient nvidia.com/gpu``,
    ``node(s) had untolerated taint {k: v}``, a HAMi reason string...) to
    the plugin that writes it and a bounded code (scheduling-signals.md §1.2).
    Unrecognised text gives ``ReasonClass(None, "other")``."""
    if not isinstance(reason, str):
        return ReasonClass(None, "other")
    text = reason.strip()
    fixed = _FIXED_REASONS.get(text)
    if fixed is not None:
        return ReasonClass(fixed[0], fixed[1])
    if text.startswith("Insufficient "):
        return ReasonClass("NodeResourcesFit", "insufficient_resource", text[len("Insufficient ") :])
    m = _TAINT_RE.fullmatch(text) or _TAINT_OLD_RE.fullmatch(text)
    if m:
        return ReasonClass("TaintToleration", "untolerated_taint", m["t"])
    if looks_like_node_reasons(text):
        return ReasonClass("HAMi", "hami", None, decode_node_reasons(text))
    return ReasonClass(None, "other")


# --------------------------------------------------------------------------- FailedScheduling


@dataclass(frozen=True, slots=True)
class ReasonCount:
    """One histogram entry: ``count`` nodes gave ``reason``.

    ``partial``: the entry was the last one before the note was cut, so its
    text (and possibly count) is incomplete.  ``plugin``/``code``/``detail``/
    ``hami``: from :func:`classify_reason`.
    """

    count: int
    reason: str
    partial: bool = False
    plugin: str | None = None
    code: str = "other"
    detail: str | None = None
    hami: NodeReasons | None = None


@dataclass(frozen=True, slots=True)
class FailedScheduling:
    """A decoded ``FailedScheduling`` message (or ``PodScheduled`` condition message).

    ``kind``: ``fit_error`` (the count-led grammar), ``binding_rejected``
    (``Binding rejected: <err>``), ``plugin_error`` (``running … plugin …``)
    or ``other`` (any other text, e.g. the short "cannot preempt" text inside
    ``preemption:``).
    ``total_nodes``: N of ``0/N``; ``available_nodes``: the number before the
    slash (0 from kube-scheduler).  ``head``: ``are available``,
    ``available`` or ``are unavailable`` (Volcano).
    ``prefilter``: the PreFilter text (no per-node histogram then).
    ``reasons``: entries in written order (sorted as strings by the
    scheduler; use :meth:`ranked` for importance).
    ``preemption``: the decoded ``preemption:`` part, itself a
    :class:`FailedScheduling`.
    ``truncated``: the text ended with the note-cut suffix ``" ..."``.
    ``text``: the input text.
    """

    kind: str
    text: str
    total_nodes: int | None = None
    available_nodes: int | None = None
    head: str | None = None
    prefilter: str | None = None
    reasons: tuple[ReasonCount, ...] = ()
    preemption: FailedScheduling | None = None
    truncated: bool = False
    errors: tuple[DecodeError, ...] = ()

    def ranked(self) -> tuple[ReasonCount, ...]:
        """Entries by node count, largest first (ties keep written order)."""
        return tuple(sorted(self.reasons, key=lambda r: -r.count))

    @property
    def counted_nodes(self) -> int:
        """Sum of the entry counts; may exceed ``total_nodes`` (a node can give several reasons)."""
        return sum(r.count for r in self.reasons)

    def all_errors(self) -> tuple[DecodeError, ...]:
        """Errors of this message and its ``preemption`` part."""
        inner = self.preemption.all_errors() if self.preemption is not None else ()
        return self.errors + inner


def _split_entries(hist: str) -> list[str]:
    """Split a histogram at ``", "`` where the next text starts an entry
    (``<int><space>``) and no bracket is open."""
    parts: list[str] = []
    start = scanned = depth = 0
    for m in _ENTRY_SEP_RE.finditer(hist):
        pos = m.start()
        chunk = hist[scanned:pos]
        depth = max(0, depth + sum(chunk.count(c) for c in _OPEN) - sum(chunk.count(c) for c in _CLOSE))
        scanned = pos
        if depth == 0:
            parts.append(hist[start:pos])
            start = scanned = m.end()
    parts.append(hist[start:])
    return parts


def _find_preemption(body: str) -> tuple[int, int] | None:
    """``(start, end)`` of the first ``preemption:`` marker that begins the
    body or follows whitespace (``start`` includes the ``". "`` before it)."""
    idx = body.find(_PREEMPTION)
    while idx >= 0:
        if idx == 0 or body[idx - 1].isspace():
            start = idx
            while start > 0 and body[start - 1].isspace():
                start -= 1
            if start > 0 and body[start - 1] == ".":
                start -= 1
            end = idx + len(_PREEMPTION)
            while end < len(body) and body[end].isspace():
                end += 1
            return start, end
        idx = body.find(_PREEMPTION, idx + 1)
    return None


def _other_kind(text: str) -> str:
    if text.startswith("Binding rejected:"):
        return "binding_rejected"
    if text.startswith("running ") and "plugin" in text:
        return "plugin_error"
    return "other"


def _parse(text: str, depth: int, cut: bool) -> FailedScheduling:
    m = _HEAD_RE.match(text)
    if not m:
        return FailedScheduling(_other_kind(text.strip()), text, truncated=cut)
    errors: list[DecodeError] = []
    body = text[m.end() :]
    preemption: FailedScheduling | None = None
    pm = _find_preemption(body)
    if pm is not None:
        inner = body[pm[1] :]
        body = body[: pm[0]]
        if depth >= MAX_DEPTH:
            errors.append(error("too_deep", inner))
        else:
            preemption = _parse(inner, depth + 1, cut)
    main = body.strip().rstrip(". ").strip()
    main_cut = cut and preemption is None
    prefilter: str | None = None
    hist = ""
    if _ENTRY_START_RE.match(main):
        hist = main
    elif main:
        pf = _PREFILTER_END_RE.search(main)
        if pf:
            prefilter, hist = main[: pf.start()], main[pf.end() :]
        else:
            prefilter = main
    reasons: list[ReasonCount] = []
    if hist:
        parts = _split_entries(hist)
        for idx, part in enumerate(parts):
            em = _ENTRY_RE.fullmatch(part.strip())
            if not em:
                errors.append(error("no_match", part))
                continue
            reason = em["reason"].strip()
            cls = classify_reason(reason)
            reasons.append(
                ReasonCount(
                    int(em["count"]),
                    reason,
                    partial=main_cut and idx == len(parts) - 1,
                    plugin=cls.plugin,
                    code=cls.code,
                    detail=cls.detail,
                    hami=cls.hami,
                )
            )
    if main_cut:
        errors.append(error("truncated", text[-80:]))
    word = m["word"]
    head = ("are " if m["are"] else "") + word
    return FailedScheduling(
        kind="fit_error",
        text=text,
        total_nodes=int(m["total"]),
        available_nodes=int(m["avail"]),
        head=head,
        prefilter=prefilter,
        reasons=tuple(reasons),
        preemption=preemption,
        truncated=cut,
        errors=tuple(errors),
    )


def _fs_fallback(raw: Any, err: DecodeError) -> FailedScheduling:
    return FailedScheduling("other", raw if isinstance(raw, str) else "", errors=(err,))


@never_raises(_fs_fallback)
def decode_failed_scheduling(message: Any) -> FailedScheduling:
    """Decode a kube-scheduler ``FailedScheduling`` Event note / message, or
    the ``PodScheduled`` condition message (``docs/formats.md``
    §kube-scheduler, scheduling-signals.md §1.2).

    Input: e.g. ``0/1 nodes are available: 1 NodeUnfitPod. preemption: 0/1
    nodes are available: 1 No preemption victims found for incoming pod.``
    Output: :class:`FailedScheduling` with total nodes, prefilter text,
    per-reason counts (classified), the recursive preemption part and whether
    the text was cut.  A cut text (``" ..."`` suffix) marks its last entry
    ``partial`` and records a ``truncated`` error.  Text without the
    ``0/N nodes`` head is kept as ``kind`` ``binding_rejected``,
    ``plugin_error`` or ``other`` without an error.
    """
    if not isinstance(message, str):
        return FailedScheduling("other", "", errors=(error("bad_type", message),))
    text = message.strip()
    if not text:
        return FailedScheduling("other", "", errors=(error("empty", message),))
    cut = text.endswith(TRUNCATION_SUFFIX)
    if cut:
        text = text[: -len(TRUNCATION_SUFFIX)]
    return replace(_parse(text, 0, cut), text=message)


# --------------------------------------------------------------------------- Scheduled


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A decoded ``Scheduled`` Event: ``namespace`` is ``None`` for the very
    old ``Successfully assigned <pod> to <node>`` form."""

    namespace: str | None
    pod: str | None
    node: str | None
    errors: tuple[DecodeError, ...] = ()


_SCHEDULED_RE = re.compile(r"Successfully assigned (?:(?P<ns>[^/\s]+)/)?(?P<pod>[^/\s]+) to (?P<node>\S+)")


def _scheduled_fallback(raw: Any, err: DecodeError) -> Scheduled:
    return Scheduled(None, None, None, (err,))


@never_raises(_scheduled_fallback)
def decode_scheduled(message: Any) -> Scheduled:
    """Decode a ``Scheduled`` Event note (``finishBinding``; Volcano writes the
    same text): ``Successfully assigned <namespace>/<pod> to <node>``
    (``docs/formats.md`` §kube-scheduler, scheduling-signals.md §1.2)."""
    if not isinstance(message, str):
        return Scheduled(None, None, None, (error("bad_type", message),))
    m = _SCHEDULED_RE.fullmatch(message.strip())
    if not m:
        return Scheduled(None, None, None, (error("no_match", message),))
    return Scheduled(m["ns"], m["pod"], m["node"])


# --------------------------------------------------------------------------- PodScheduled condition


@dataclass(frozen=True, slots=True)
class PodScheduledCondition:
    """The pod's ``status.conditions[type=PodScheduled]``.

    ``status``: ``True`` | ``False`` | ``Unknown``; ``reason``:
    ``Unschedulable``, ``SchedulerError``, ``SchedulingGated`` (or Volcano's
    ``Schedulable``/``Undetermined``); ``message``: the **full** FitError text;
    ``last_transition_time``: aware datetime or ``None``.
    """

    status: str | None
    reason: str | None
    message: str | None
    last_transition_time: datetime | None = None


def pod_scheduled_condition(pod: Any) -> PodScheduledCondition | None:
    """The ``PodScheduled`` condition of a Pod dict (``status.conditions``),
    or ``None`` when absent or the pod is not a dict.  Never raises."""
    try:
        conditions = pod.get("status", {}).get("conditions") or ()
        for cond in conditions:
            if isinstance(cond, Mapping) and cond.get("type") == "PodScheduled":
                status, reason, message = cond.get("status"), cond.get("reason"), cond.get("message")
                return PodScheduledCondition(
                    status if isinstance(status, str) else None,
                    reason if isinstance(reason, str) else None,
                    message if isinstance(message, str) else None,
                    parse_rfc3339(cond.get("lastTransitionTime")),
                )
    except (AttributeError, TypeError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class SchedulingText:
    """The best available "why is this pod not scheduled" text.

    ``source``: ``pod_condition`` (full, current), ``event`` (may be cut and
    may be the *first* message of a long Event series) or ``none``.
    ``truncated``: the chosen text ends with the note-cut suffix.
    ``condition_reason``: the condition's reason when the condition was used.
    """

    text: str
    source: str
    truncated: bool = False
    condition_reason: str | None = None


def best_scheduling_text(pod: Any, event_note: Any = None) -> SchedulingText:
    """Pick the text to decode: the pod's ``PodScheduled`` condition message
    when the condition is ``False`` and has a message (kube-scheduler writes
    the full FitError there), else the newest ``FailedScheduling`` Event note
    the caller has (cut at 1024 bytes, ``" ..."``).  Input: a Pod dict (or
    ``None``) and a note string (or ``None``).  Never raises."""
    cond = pod_scheduled_condition(pod)
    if cond is not None and cond.status == "False" and cond.message and cond.message.strip():
        return SchedulingText(cond.message, "pod_condition", False, cond.reason)
    if isinstance(event_note, str) and event_note.strip():
        return SchedulingText(event_note, "event", event_note.rstrip().endswith(TRUNCATION_SUFFIX))
    return SchedulingText("", "none")
