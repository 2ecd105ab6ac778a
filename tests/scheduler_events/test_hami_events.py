"""HAMi scheduler-extender Events and per-node reason strings.

Real values are quoted from ../shared/reference/hami-formats.md §4 and
scheduling-signals.md §4.3 (sources in comments); the rest are synthetic
cases, one per grammar rule.
"""

from __future__ import annotations

import pytest

from scheduler_events.decoders.common import DecodeError
from scheduler_events.decoders.hami_events import (
    REASON_CODES,
    BindingFailed,
    BindingSucceed,
    FilteringError,
    FilteringFailedReason,
    FilteringFailedSummary,
    FilteringSucceed,
    HamiEvent,
    NodeReasons,
    NodeRejection,
    NodeScore,
    decode_hami_event,
    decode_node_reasons,
    is_known_reason_code,
)


# --------------------------------------------------------------------------- FilteringSucceed


def test_filtering_succeed_docs_example():
    # HAMi pkg/scheduler/event.go format, example from hami-formats.md §4.1.
    msg = "find fit node(node3), 7 nodes not fit, 2 nodes fit(node3:0.98,node4:0.65)"
    assert decode_hami_event("FilteringSucceed", msg) == HamiEvent(
        "FilteringSucceed",
        "filtering_succeed",
        FilteringSucceed("node3", 7, 2, (NodeScore("node3", 0.98), NodeScore("node4", 0.65))),
    )


def test_filtering_succeed_single_node_dotted_names():
    msg = "find fit node(gpu-1.example.com), 0 nodes not fit, 1 nodes fit(gpu-1.example.com:12.50)"
    ev = decode_hami_event("FilteringSucceed", msg)
    assert ev.detail == FilteringSucceed("gpu-1.example.com", 0, 1, (NodeScore("gpu-1.example.com", 12.5),))


def test_filtering_succeed_cut_message_keeps_complete_scores():
    msg = "find fit node(node3), 7 nodes not fit, 3 nodes fit(node3:0.98,node4:0.65,node5:0."
    ev = decode_hami_event("FilteringSucceed", msg)
    assert ev.truncated is True
    assert ev.detail.scores == (NodeScore("node3", 0.98), NodeScore("node4", 0.65))
    assert [e.code for e in ev.errors] == ["truncated"]


def test_filtering_succeed_bad_score():
    ev = decode_hami_event("FilteringSucceed", "find fit node(a), 0 nodes not fit, 2 nodes fit(a:x,b:1.00)")
    assert ev.detail.scores == (NodeScore("b", 1.0),)
    assert ev.errors == (DecodeError("bad_float", "a:x"),)


# --------------------------------------------------------------------------- FilteringFailed


def test_filtering_failed_per_reason_website_pr_767():
    # website PR #767: "Warning FilteringFailed … hami-scheduler 2 nodes CardInsufficientMemory(node-a,node-b)".
    ev = decode_hami_event("FilteringFailed", "2 nodes CardInsufficientMemory(node-a,node-b)")
    assert ev == HamiEvent(
        "FilteringFailed",
        "filtering_failed_reason",
        FilteringFailedReason("CardInsufficientMemory", 2, ("node-a", "node-b")),
    )
    assert ev.detail.known
    assert ev.detail.rejections() == (
        NodeRejection("CardInsufficientMemory", "node-a"),
        NodeRejection("CardInsufficientMemory", "node-b"),
    )


def test_filtering_failed_legacy_total_website_docs():
    # website docs/developers/scheduler-event-log.md (<= v2.5 text).
    ev = decode_hami_event("FilteringFailed", "no available node, all node scores do not meet")
    assert ev == HamiEvent("FilteringFailed", "filtering_failed_summary", FilteringFailedSummary(None))


def test_filtering_failed_total():
    ev = decode_hami_event("FilteringFailed", "no available node, 12 nodes do not meet")
    assert ev.detail == FilteringFailedSummary(12)


def test_filtering_failed_unknown_code_is_kept():
    ev = decode_hami_event("FilteringFailed", "1 nodes CardTooHot(n1)")
    assert ev.detail == FilteringFailedReason("CardTooHot", 1, ("n1",))
    assert not ev.detail.known
    assert ev.errors == ()


def test_filtering_failed_cut_node_list():
    ev = decode_hami_event("FilteringFailed", "3 nodes CardTypeMismatch(node-a,node-b,nod")
    assert ev.truncated
    assert ev.detail == FilteringFailedReason("CardTypeMismatch", 3, ("node-a", "node-b"))


def test_filtering_failed_errors():
    ev = decode_hami_event("FilteringFailed", "calcScore failed node usage unavailable for pod ml/ranker-2")
    assert ev.detail == FilteringError("calc_score", "calcScore failed node usage unavailable for pod ml/ranker-2", "ml/ranker-2")
    raw = 'pods "ranker-2" is forbidden: patch annotations'
    assert decode_hami_event("FilteringFailed", raw).detail == FilteringError("other", raw)
    assert decode_hami_event("FilteringFailed", "").errors == (DecodeError("empty", ""),)


# --------------------------------------------------------------------------- Binding


def test_binding_succeed_go_slice_brackets():
    ev = decode_hami_event("BindingSucceed", "Successfully binding node [gpu-node-1] to ml/ranker-2")
    assert ev == HamiEvent("BindingSucceed", "binding_succeed", BindingSucceed("gpu-node-1", "ml", "ranker-2", ("gpu-node-1",)))


def test_binding_succeed_no_match():
    ev = decode_hami_event("BindingSucceed", "bound somewhere")
    assert (ev.kind, ev.errors) == ("unknown", (DecodeError("no_match", "bound somewhere"),))


@pytest.mark.parametrize(
    ("msg", "detail"),
    [
        ("failed to get node gpu-node-9", BindingFailed("get_node", "failed to get node gpu-node-9", "gpu-node-9")),
        (
            "timed out after 5m0s waiting for node gpu-node-1 to be unlocked: lock held by ml/a",
            BindingFailed(
                "node_lock_timeout",
                "timed out after 5m0s waiting for node gpu-node-1 to be unlocked: lock held by ml/a",
                "gpu-node-1",
                "5m0s",
            ),
        ),
        ('Operation cannot be fulfilled on pods "x"', BindingFailed("other", 'Operation cannot be fulfilled on pods "x"')),
    ],
)
def test_binding_failed(msg, detail):
    assert decode_hami_event("BindingFailed", msg).detail == detail


def test_other_reasons():
    assert decode_hami_event("AsymmetricGPUP2PLink", "One or more GPU pairs on this node have asymmetric P2P link data; affected pairs scored 0 (possible NVLink hardware or driver issue)").kind == "asymmetric_p2p_link"
    ev = decode_hami_event("Scheduled", "Successfully assigned a/b to c")
    assert (ev.kind, ev.errors) == ("unknown", (DecodeError("unknown_value", "Scheduled"),))
    assert decode_hami_event(None, "x").errors[0].code == "bad_type"
    assert decode_hami_event("FilteringFailed", None).errors[0].code == "bad_type"


# --------------------------------------------------------------------------- per-node reasons


def test_node_reasons_docs_example():
    # HAMi docs example (hami-formats.md §4.2).
    text = "2/8 NumaNotFit, 3/8 CardInsufficientMemory, 2/8 CardInsufficientCore, 1/8 ExclusiveDeviceAllocateConflict"
    assert decode_node_reasons(text, node="node-b") == NodeReasons(
        (
            NodeRejection("NumaNotFit", "node-b", 2, 8),
            NodeRejection("CardInsufficientMemory", "node-b", 3, 8),
            NodeRejection("CardInsufficientCore", "node-b", 2, 8),
            NodeRejection("ExclusiveDeviceAllocateConflict", "node-b", 1, 8),
        )
    )


def test_node_reasons_issue_2923():
    # Issue #2923 (v2.7.1): 8 idle H100s still held by a stale allocation.
    assert decode_node_reasons("8/8 CardInsufficientMemory") == NodeReasons(
        (NodeRejection("CardInsufficientMemory", None, 8, 8),)
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("NodeInsufficientDevice", "NodeInsufficientDevice"),
        ("node unregistered", "NodeUnregistered"),  # <= v2.5 and later, issue #620
        ("node usage unavailable", "NodeUsageUnavailable"),
        ("NodeUnfitPod", "NodeUnfitPod"),  # v2.6-v2.9, issue #1368
        ("node not fit pod", "NodeUnfitPod"),  # <= v2.5
    ],
)
def test_node_level_texts(text, code):
    assert decode_node_reasons(text) == NodeReasons((NodeRejection(code),))
    assert is_known_reason_code(code)


def test_node_reasons_unparsed_error_string():
    text = "failed to get node usage: connection refused"
    assert decode_node_reasons(text) == NodeReasons((), text, (DecodeError("no_match", text),))
    assert decode_node_reasons("").errors == (DecodeError("empty", ""),)
    assert decode_node_reasons(None).errors[0].code == "bad_type"


def test_reason_codes_are_bounded():
    assert len(REASON_CODES) == 20
    assert not is_known_reason_code("other")
