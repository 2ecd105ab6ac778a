"""Decoders for the HAMi scheduler extender's Kubernetes Events and for its
per-node filter reason strings.

Format sources (Project-HAMi/HAMi ``pkg/scheduler/event.go``,
``pkg/scheduler/scheduler.go``, ``pkg/scheduler/score.go``,
``pkg/device/common/common.go`` ``GenReason``/``ParseReason``, v2.5-v2.10;
written down in ``docs/formats.md`` §events, research notes
``hami-formats.md`` §4).  The extender writes core/v1 Events on the Pod with
``source.component`` = the scheduler name (e.g. ``hami-scheduler``):

=============================  =========================================================================
reason                         message
=============================  =========================================================================
``FilteringSucceed``           ``find fit node(<node>), <n> nodes not fit, <m> nodes fit(<node>:<score>,…)``
``FilteringFailed`` (summary)  ``no available node, <N> nodes do not meet`` (<= v2.5:
                               ``no available node, all node scores do not meet``)
``FilteringFailed`` (reason)   ``<count> nodes <Code>(<node1>,<node2>,…)``, one event per reason code (v2.7+)
``FilteringFailed`` (error)    ``calcScore failed <err> for pod <name>`` or a raw error
``BindingSucceed``             ``Successfully binding node [<node>] to <ns>/<pod>``
``BindingFailed``              a raw error (``failed to get node <n>``, node-lock timeouts, API errors)
``AsymmetricGPUP2PLink``       on the Node (v2.10), fixed text
=============================  =========================================================================

The **per-node reason string** the extender returns in ``FailedNodes`` (and
which therefore appears as one REASON inside kube-scheduler's
``FailedScheduling`` histogram) is ``<cnt>/<cards> <Code>`` entries joined by
``", "`` (e.g. ``1/8 CardInsufficientMemory, 7/8 CardTypeMismatch``), or a
bare node-level text: ``NodeInsufficientDevice``, ``node unregistered``,
``node usage unavailable``, ``NodeUnfitPod`` (v2.6-v2.9), ``node not fit
pod`` (<= v2.5).

Public API::

    decode_hami_event(reason, message) -> HamiEvent
    decode_node_reasons(text, node=None) -> NodeReasons
    looks_like_node_reasons(text) -> bool
    is_known_reason_code(code) -> bool
    REASON_CODES, CARD_REASON_CODES, NODE_REASON_CODES, HAMI_EVENT_REASONS

No function raises; problems are :class:`~scheduler_events.decoders.common.DecodeError`
records in the result's ``errors``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from collections.abc import Mapping
from typing import Any, Union

from .common import DecodeError, error, never_raises

#: Per-device reason codes (``<cnt>/<cards> <Code>``), HAMi ``pkg/device/common/common.go``.
CARD_REASON_CODES = frozenset(
    {
        "CardNotHealth",
        "CardCordoned",
        "CardTypeMismatch",
        "NumaNotFit",
        "CardUuidMismatch",
        "CardTimeSlicingExhausted",
        "ExclusiveDeviceAllocateConflict",
        "ResourceQuotaNotFit",
        "CardInsufficientMemory",
        "CardInsufficientCore",
        "CardComputeUnitsExhausted",
        "CardMigTopologyInfeasible",
        "CardNotFoundCustomFilterRule",
        "ModeNotFit",
        "AllocatedCardsInsufficientRequest",
    }
)

#: Node-level codes.  ``NodeInsufficientDevice``, ``NodeUnfitPod`` and
#: ``NodeFitPod`` are HAMi's own; ``NodeUnregistered`` and
#: ``NodeUsageUnavailable`` are accelscope's names for HAMi's lower-case texts
#: ``node unregistered`` / ``node usage unavailable``.
NODE_REASON_CODES = frozenset(
    {"NodeInsufficientDevice", "NodeUnfitPod", "NodeFitPod", "NodeUnregistered", "NodeUsageUnavailable"}
)

#: Every reason code this module can produce from documented text.
REASON_CODES = CARD_REASON_CODES | NODE_REASON_CODES

#: Event reasons written by the HAMi scheduler extender / device plugin.
HAMI_EVENT_REASONS = frozenset(
    {"FilteringSucceed", "FilteringFailed", "BindingSucceed", "BindingFailed", "AsymmetricGPUP2PLink"}
)

#: Bare node-level reason texts -> code.
_NODE_TEXTS: Mapping[str, str] = MappingProxyType(
    {
        "NodeInsufficientDevice": "NodeInsufficientDevice",
        "NodeUnfitPod": "NodeUnfitPod",
        "node not fit pod": "NodeUnfitPod",
        "node unregistered": "NodeUnregistered",
        "node usage unavailable": "NodeUsageUnavailable",
    }
)


def is_known_reason_code(code: str) -> bool:
    """Whether ``code`` is one of :data:`REASON_CODES` (callers fold the rest into ``other``)."""
    return code in REASON_CODES


# --------------------------------------------------------------------------- node reasons


@dataclass(frozen=True, slots=True)
class NodeRejection:
    """One reason a node was rejected by the HAMi filter.

    ``code``: a HAMi reason code (may be outside :data:`REASON_CODES` for a
    newer HAMi; check :func:`is_known_reason_code`).
    ``node``: the node name when known (FilteringFailed per-reason events name
    nodes; reason strings inside FailedScheduling do not).
    ``device_count``: devices on the node rejected with this code (for
    ``AllocatedCardsInsufficientRequest``: the cards that *did* fit); ``None``
    when the source gives no per-device count.
    ``cards``: devices of the requested type on the node; ``None`` if unknown.
    """

    code: str
    node: str | None = None
    device_count: int | None = None
    cards: int | None = None

    @property
    def known(self) -> bool:
        return self.code in REASON_CODES


@dataclass(frozen=True, slots=True)
class NodeReasons:
    """A decoded per-node reason string.

    ``entries``: one :class:`NodeRejection` per ``<cnt>/<cards> <Code>`` entry
    or bare node-level text, in the order written.  ``unparsed``: the whole
    text when it is not in HAMi's reason grammar (e.g. a raw error string).
    """

    entries: tuple[NodeRejection, ...] = ()
    unparsed: str | None = None
    errors: tuple[DecodeError, ...] = ()


_CARD_ENTRY_RE = re.compile(r"(?P<count>[0-9]+)/(?P<cards>[0-9]+) (?P<code>[A-Za-z][A-Za-z0-9]*)")


def _reasons_fallback(raw: Any, err: DecodeError) -> NodeReasons:
    return NodeReasons((), raw if isinstance(raw, str) else None, (err,))


@never_raises(_reasons_fallback)
def decode_node_reasons(text: Any, node: str | None = None) -> NodeReasons:
    """Decode a HAMi per-node filter reason string (the extender's
    ``FailedNodes`` value; ``docs/formats.md`` §events, hami-formats.md §4.2).

    Input: ``2/8 NumaNotFit, 3/8 CardInsufficientMemory`` (entries joined by
    ``", "``, sorted as strings by HAMi), or a bare node-level text
    (``NodeInsufficientDevice``, ``node unregistered``, ``node usage
    unavailable``, ``NodeUnfitPod``, ``node not fit pod``).  ``node`` is
    copied into every entry.

    Output: :class:`NodeReasons`.  Text in neither grammar gives no entries,
    ``unparsed`` = the text and a ``no_match`` error.
    """
    if not isinstance(text, str):
        return NodeReasons((), None, (error("bad_type", text),))
    stripped = text.strip()
    if not stripped:
        return NodeReasons((), None, (error("empty", text),))
    entries: list[NodeRejection] = []
    for part in stripped.split(", "):
        part = part.strip()
        m = _CARD_ENTRY_RE.fullmatch(part)
        if m:
            entries.append(NodeRejection(m["code"], node, int(m["count"]), int(m["cards"])))
            continue
        code = _NODE_TEXTS.get(part)
        if code is not None:
            entries.append(NodeRejection(code, node))
            continue
        return NodeReasons((), stripped, (error("no_match", stripped),))
    return NodeReasons(tuple(entries))


def looks_like_node_reasons(text: str) -> bool:
    """Cheap test: is ``text`` in the HAMi per-node reason grammar?"""
    if not isinstance(text, str) or not text:
        return False
    return all(_CARD_ENTRY_RE.fullmatch(p.strip()) or p.strip() in _NODE_TEXTS for p in text.split(", "))


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class NodeScore:
    """A fitting node and its HAMi score (``%.2f`` in the event)."""

    node: str
    score: float


@dataclass(frozen=True, slots=True)
class FilteringSucceed:
    """``FilteringSucceed``: the chosen node, how many nodes did not fit, how
    many fit, and the score of every fitting node."""

    node: str
    nodes_not_fit: int
    nodes_fit: int
    scores: tuple[NodeScore, ...] = ()


@dataclass(frozen=True, slots=True)
class FilteringFailedSummary:
    """``FilteringFailed`` total: ``candidate_nodes`` is N in
    ``no available node, N nodes do not meet``; ``None`` for the <= v2.5 text
    ``no available node, all node scores do not meet``."""

    candidate_nodes: int | None


@dataclass(frozen=True, slots=True)
class FilteringFailedReason:
    """``FilteringFailed`` per reason code (v2.7+, emitted only when no node
    fits): ``node_count`` nodes failed with ``code``; ``nodes`` sorted as HAMi
    wrote them."""

    code: str
    node_count: int
    nodes: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.code in REASON_CODES

    def rejections(self) -> tuple[NodeRejection, ...]:
        """One :class:`NodeRejection` per named node (no device counts)."""
        return tuple(NodeRejection(self.code, n) for n in self.nodes)


@dataclass(frozen=True, slots=True)
class FilteringError:
    """``FilteringFailed`` carrying an error: ``kind`` is ``calc_score``
    (``calcScore failed <err> for pod <pod>``) or ``other`` (raw error)."""

    kind: str
    message: str
    pod: str | None = None


@dataclass(frozen=True, slots=True)
class BindingSucceed:
    """``BindingSucceed``: ``nodes`` from the Go slice ``[<node>]`` (normally
    one; ``node`` is the first), and the pod."""

    node: str | None
    namespace: str
    pod: str
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BindingFailed:
    """``BindingFailed``: ``kind`` is ``get_node`` (``failed to get node <n>``),
    ``node_lock_timeout`` (``timed out after <d> waiting for node <n> to be
    unlocked``) or ``other``; ``message`` is the raw error."""

    kind: str
    message: str
    node: str | None = None
    timeout: str | None = None


HamiEventDetail = Union[
    FilteringSucceed, FilteringFailedSummary, FilteringFailedReason, FilteringError, BindingSucceed, BindingFailed
]


@dataclass(frozen=True, slots=True)
class HamiEvent:
    """A decoded HAMi extender Event.

    ``kind``: ``filtering_succeed``, ``filtering_failed_summary``,
    ``filtering_failed_reason``, ``filtering_error``, ``binding_succeed``,
    ``binding_failed``, ``asymmetric_p2p_link`` or ``unknown``.
    ``detail``: the matching dataclass (``None`` for ``asymmetric_p2p_link``
    and ``unknown``).  ``truncated``: the message was cut and decoded partially.
    """

    reason: str
    kind: str
    detail: HamiEventDetail | None = None
    truncated: bool = False
    errors: tuple[DecodeError, ...] = ()


_SUCCEED_RE = re.compile(
    r"find fit node\((?P<node>[^()]*)\), (?P<notfit>[0-9]+) nodes not fit, (?P<fit>[0-9]+) nodes fit\((?P<scores>.*)",
    re.S,
)
_SUMMARY_RE = re.compile(r"no available node, (?P<n>[0-9]+) nodes do not meet")
_SUMMARY_LEGACY = "no available node, all node scores do not meet"
_PER_REASON_RE = re.compile(r"(?P<count>[0-9]+) nodes (?P<code>[A-Za-z][A-Za-z0-9]*)\((?P<nodes>.*)", re.S)
_CALC_SCORE_RE = re.compile(r"calcScore failed (?P<err>.*) for pod (?P<pod>\S+)", re.S)
_BIND_OK_RE = re.compile(r"Successfully binding node \[(?P<nodes>[^\]]*)\] to (?P<ns>[^/\s]+)/(?P<pod>\S+)")
_GET_NODE_RE = re.compile(r"failed to get node (?P<node>[^\s:,]+)")
_LOCK_TIMEOUT_RE = re.compile(r"timed out after (?P<d>\S+) waiting for node (?P<node>[^\s:,]+) to be unlocked")


def _event_fallback(raw: Any, err: DecodeError) -> HamiEvent:
    return HamiEvent(raw if isinstance(raw, str) else "", "unknown", None, False, (err,))


@never_raises(_event_fallback)
def decode_hami_event(reason: Any, message: Any) -> HamiEvent:
    """Decode one HAMi scheduler-extender Event (``docs/formats.md`` §events,
    hami-formats.md §4.1).

    Input: the Event's ``reason`` and ``message`` (core/v1) / ``note``
    (events.k8s.io/v1).  Identify the reporter first (see
    :mod:`scheduler_events.decoders.reporter`); this function only reads the
    two strings.

    Output: :class:`HamiEvent` whose ``detail`` is :class:`FilteringSucceed`,
    :class:`FilteringFailedSummary`, :class:`FilteringFailedReason`,
    :class:`FilteringError`, :class:`BindingSucceed` or :class:`BindingFailed`.
    A reason outside :data:`HAMI_EVENT_REASONS` gives ``kind="unknown"`` with an
    ``unknown_value`` error; a message in no documented form gives ``no_match``.
    """
    if not isinstance(reason, str):
        return HamiEvent("", "unknown", None, False, (error("bad_type", reason),))
    if not isinstance(message, str):
        return HamiEvent(reason, "unknown", None, False, (error("bad_type", message),))
    text = message.strip()
    if reason == "FilteringSucceed":
        return _filtering_succeed(reason, text)
    if reason == "FilteringFailed":
        return _filtering_failed(reason, text)
    if reason == "BindingSucceed":
        m = _BIND_OK_RE.fullmatch(text)
        if not m:
            return HamiEvent(reason, "unknown", None, False, (error("no_match", text),))
        nodes = tuple(m["nodes"].split())
        return HamiEvent(
            reason, "binding_succeed", BindingSucceed(nodes[0] if nodes else None, m["ns"], m["pod"], nodes)
        )
    if reason == "BindingFailed":
        m = _LOCK_TIMEOUT_RE.search(text)
        if m:
            return HamiEvent(reason, "binding_failed", BindingFailed("node_lock_timeout", text, m["node"], m["d"]))
        m = _GET_NODE_RE.match(text)
        if m:
            return HamiEvent(reason, "binding_failed", BindingFailed("get_node", text, m["node"]))
        return HamiEvent(reason, "binding_failed", BindingFailed("other", text))
    if reason == "AsymmetricGPUP2PLink":
        return HamiEvent(reason, "asymmetric_p2p_link")
    return HamiEvent(reason, "unknown", None, False, (error("unknown_value", reason),))


def _filtering_succeed(reason: str, text: str) -> HamiEvent:
    m = _SUCCEED_RE.fullmatch(text)
    if not m:
        return HamiEvent(reason, "unknown", None, False, (error("no_match", text),))
    body = m["scores"]
    closed = body.endswith(")")
    if closed:
        body = body[:-1]
    parts = [p for p in body.split(",") if p] if body else []
    if not closed and parts:
        parts.pop()  # the cut entry
    scores: list[NodeScore] = []
    errors: list[DecodeError] = []
    for part in parts:
        name, sep, raw = part.rpartition(":")
        try:
            value = float(raw)
        except ValueError:
            value = None
        if not sep or not name or value is None:
            errors.append(error("bad_float", part))
            continue
        scores.append(NodeScore(name, value))
    if not closed:
        errors.append(error("truncated", text[-80:]))
    detail = FilteringSucceed(m["node"], int(m["notfit"]), int(m["fit"]), tuple(scores))
    return HamiEvent(reason, "filtering_succeed", detail, not closed, tuple(errors))


def _filtering_failed(reason: str, text: str) -> HamiEvent:
    m = _SUMMARY_RE.fullmatch(text)
    if m:
        return HamiEvent(reason, "filtering_failed_summary", FilteringFailedSummary(int(m["n"])))
    if text == _SUMMARY_LEGACY:
        return HamiEvent(reason, "filtering_failed_summary", FilteringFailedSummary(None))
    m = _PER_REASON_RE.fullmatch(text)
    if m:
        body = m["nodes"]
        closed = body.endswith(")")
        if closed:
            body = body[:-1]
        nodes = [n for n in body.split(",") if n]
        errors: tuple[DecodeError, ...] = ()
        if not closed:
            if nodes:
                nodes.pop()
            errors = (error("truncated", text[-80:]),)
        detail = FilteringFailedReason(m["code"], int(m["count"]), tuple(nodes))
        return HamiEvent(reason, "filtering_failed_reason", detail, not closed, errors)
    m = _CALC_SCORE_RE.fullmatch(text)
    if m:
        return HamiEvent(reason, "filtering_error", FilteringError("calc_score", text, m["pod"]))
    if not text:
        return HamiEvent(reason, "unknown", None, False, (error("empty", text),))
    return HamiEvent(reason, "filtering_error", FilteringError("other", text))
