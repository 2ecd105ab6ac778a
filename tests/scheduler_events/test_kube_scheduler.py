"""kube-scheduler FailedScheduling / Scheduled texts and the PodScheduled condition.

Real values are quoted from ../shared/reference/scheduling-signals.md §1.2-1.3
and hami-formats.md §4.1 (issue numbers in comments); the rest are synthetic
cases, one per grammar rule and quirk.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from scheduler_events.decoders.common import DecodeError
from scheduler_events.decoders.hami_events import NodeReasons, NodeRejection
from scheduler_events.decoders.kube_scheduler import (
    MAX_DEPTH,
    NOTE_LENGTH_LIMIT,
    FailedScheduling,
    PodScheduledCondition,
    ReasonClass,
    ReasonCount,
    Scheduled,
    SchedulingText,
    best_scheduling_text,
    classify_reason,
    decode_failed_scheduling,
    decode_scheduled,
    pod_scheduled_condition,
)


def truncate_like_scheduler(message: str) -> str:
    """kube-scheduler ``truncateMessage``: cut to NoteLengthLimit with " ..."."""
    if len(message) <= NOTE_LENGTH_LIMIT:
        return message
    return message[: NOTE_LENGTH_LIMIT - 4] + " ..."


NOT_HELPFUL = ReasonCount(3, "Preemption is not helpful for scheduling", plugin="DefaultPreemption", code="preemption_not_helpful")


# --------------------------------------------------------------------------- real messages


def test_prefilter_only_with_preemption():
    # scheduling-signals.md §1.2 rule 1.
    msg = (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    assert decode_failed_scheduling(msg) == FailedScheduling(
        kind="fit_error",
        text=msg,
        total_nodes=3,
        available_nodes=0,
        head="are available",
        prefilter="pod has unbound immediate PersistentVolumeClaims",
        reasons=(),
        preemption=FailedScheduling(
            kind="fit_error",
            text="0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
            total_nodes=3,
            available_nodes=0,
            head="are available",
            reasons=(NOT_HELPFUL,),
        ),
    )


def test_hami_issue_1368_node_unfit_pod():
    # HAMi issue #1368 (v2.6-v2.9 extender reason).
    msg = (
        "0/1 nodes are available: 1 NodeUnfitPod. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )
    fs = decode_failed_scheduling(msg)
    assert fs.reasons == (
        ReasonCount(
            1, "NodeUnfitPod", plugin="HAMi", code="hami", hami=NodeReasons((NodeRejection("NodeUnfitPod"),))
        ),
    )
    assert fs.preemption.reasons == (
        ReasonCount(1, "No preemption victims found for incoming pod", plugin="DefaultPreemption", code="no_preemption_victims"),
    )
    assert fs.errors == () and fs.preemption.errors == ()


def test_hami_issue_620_node_unregistered():
    # HAMi issue #620 (<= v2.5); the preemption part is elided in the reference.
    fs = decode_failed_scheduling("0/4 nodes are available: 3 node unregistered.")
    assert (fs.total_nodes, fs.counted_nodes) == (4, 3)
    assert fs.reasons[0].hami == NodeReasons((NodeRejection("NodeUnregistered"),))


def test_hami_reason_with_comma_is_one_entry():
    # hami-formats.md §4.1 (v2.10 shape): the per-node reason contains ", ".
    fs = decode_failed_scheduling("0/1 nodes are available: 1 1/8 CardInsufficientMemory, 7/8 CardTimeSlicingExhausted.")
    (entry,) = fs.reasons
    assert (entry.count, entry.reason) == (1, "1/8 CardInsufficientMemory, 7/8 CardTimeSlicingExhausted")
    assert entry.hami.entries == (
        NodeRejection("CardInsufficientMemory", None, 1, 8),
        NodeRejection("CardTimeSlicingExhausted", None, 7, 8),
    )


def test_website_docs_variant_without_are():
    # website docs/developers/scheduler-event-log.md: "0/1 nodes available: 1 node unregistered".
    fs = decode_failed_scheduling("0/1 nodes available: 1 node unregistered")
    assert (fs.kind, fs.head, fs.total_nodes) == ("fit_error", "available", 1)
    assert fs.reasons[0].reason == "node unregistered"


def test_issue_49896_counts_exceed_total():
    # kubernetes/kubernetes#49896 (v1.12): 10 + 4 reasons over 10 nodes.
    fs = decode_failed_scheduling("0/10 nodes are available: 10 node(s) didn't match node selector, 4 Insufficient cpu")
    assert [(r.count, r.reason, r.code) for r in fs.reasons] == [
        (10, "node(s) didn't match node selector", "node_affinity"),
        (4, "Insufficient cpu", "insufficient_resource"),
    ]
    assert fs.counted_nodes == 14 > fs.total_nodes
    assert fs.errors == ()


def test_issue_130427_taints_and_storage():
    # kubernetes/kubernetes#130427 (entries quoted there; the "…" elisions dropped).
    msg = (
        "0/216 nodes are available: 1 node(s) had untolerated taint {workergroup: agentless}, "
        "10 node(s) had untolerated taint {workergroup: gpu-pool}, 2 node(s) did not have enough free storage."
    )
    fs = decode_failed_scheduling(msg)
    assert [(r.count, r.plugin, r.code, r.detail) for r in fs.reasons] == [
        (1, "TaintToleration", "untolerated_taint", "workergroup: agentless"),
        (10, "TaintToleration", "untolerated_taint", "workergroup: gpu-pool"),
        (2, "VolumeBinding", "volume_storage", None),
    ]
    assert [r.count for r in fs.ranked()] == [10, 2, 1]


# --------------------------------------------------------------------------- grammar rules


def test_pre_124_taint_text_contains_comma():
    msg = "0/5 nodes are available: 2 Insufficient nvidia.com/gpu, 3 node(s) had taint {nvidia.com/gpu: present}, that the pod didn't tolerate."
    fs = decode_failed_scheduling(msg)
    assert [(r.count, r.reason) for r in fs.reasons] == [
        (2, "Insufficient nvidia.com/gpu"),
        (3, "node(s) had taint {nvidia.com/gpu: present}, that the pod didn't tolerate"),
    ]
    assert fs.reasons[1].detail == "nvidia.com/gpu: present"


def test_entries_sorted_as_strings_are_kept_in_written_order():
    fs = decode_failed_scheduling("0/12 nodes are available: 10 node(s) were unschedulable, 2 Insufficient nvidia.com/gpu.")
    assert [r.count for r in fs.reasons] == [10, 2]
    assert [r.count for r in fs.ranked()] == [10, 2]
    fs = decode_failed_scheduling("0/12 nodes are available: 1 Too many pods, 11 Insufficient nvidia.com/mig-1g.5gb.")
    assert [r.count for r in fs.ranked()] == [11, 1]
    assert fs.reasons[1].detail == "nvidia.com/mig-1g.5gb"


def test_no_split_inside_braces():
    fs = decode_failed_scheduling("0/2 nodes are available: 2 node(s) had untolerated taint {k: a, 3 b}.")
    assert [(r.count, r.reason) for r in fs.reasons] == [(2, "node(s) had untolerated taint {k: a, 3 b}")]


def test_prefilter_then_histogram():
    fs = decode_failed_scheduling("0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. 3 node(s) had volume node affinity conflict.")
    assert fs.prefilter == "pod has unbound immediate PersistentVolumeClaims"
    assert [(r.count, r.code) for r in fs.reasons] == [(3, "volume_node_affinity")]


def test_preemption_not_eligible_plain_text():
    fs = decode_failed_scheduling("0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
    assert fs.preemption == FailedScheduling("other", "not eligible due to preemptionPolicy=Never.")


def test_double_trailing_period():
    fs = decode_failed_scheduling("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector..")
    assert [(r.count, r.plugin) for r in fs.reasons] == [(3, "NodeAffinity")]


def test_dra_reasons():
    fs = decode_failed_scheduling("0/4 nodes are available: 3 cannot allocate all claims, 1 resourceclaim not available on the node.")
    assert [r.code for r in fs.reasons] == ["dra_cannot_allocate", "dra_claim_unavailable"]


def test_truncated_event_note():
    reasons = ", ".join(f"1 node(s) had untolerated taint {{pool: pool-{i:03d}}}" for i in range(60))
    full = f"0/60 nodes are available: {reasons}. preemption: 0/60 nodes are available: 60 Preemption is not helpful for scheduling."
    note = truncate_like_scheduler(full)
    assert len(note) == NOTE_LENGTH_LIMIT and note.endswith(" ...")
    fs = decode_failed_scheduling(note)
    assert fs.truncated and fs.preemption is None
    assert fs.text == note
    assert all(not r.partial for r in fs.reasons[:-1])
    assert fs.reasons[-1].partial
    assert fs.reasons[0] == ReasonCount(1, "node(s) had untolerated taint {pool: pool-000}", plugin="TaintToleration", code="untolerated_taint", detail="pool: pool-000")
    assert [e.code for e in fs.errors] == ["truncated"]
    # the full condition text decodes completely
    whole = decode_failed_scheduling(full)
    assert len(whole.reasons) == 60 and whole.preemption.reasons[0].count == 60 and not whole.truncated


def test_truncated_inside_preemption_part():
    msg = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption vic ..."
    fs = decode_failed_scheduling(msg)
    assert fs.truncated and not fs.reasons[0].partial
    assert fs.preemption.reasons == (ReasonCount(3, "No preemption vic", partial=True),)
    assert [e.code for e in fs.all_errors()] == ["truncated"]


def test_recursion_limit():
    msg = "0/1 nodes are available: 1 x. " + "preemption: 0/1 nodes are available: 1 x. " * (MAX_DEPTH + 2)
    fs = decode_failed_scheduling(msg)
    assert "too_deep" in {e.code for e in fs.all_errors()}


@pytest.mark.parametrize(
    ("msg", "kind"),
    [
        ('Binding rejected: Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "n"', "binding_rejected"),
        ('running PreBind plugin "VolumeBinding": binding volumes: timed out waiting for the condition', "plugin_error"),
        ("skip schedule deleting pod: ml/ranker-2", "other"),
    ],
)
def test_non_fit_error_messages(msg, kind):
    fs = decode_failed_scheduling(msg)
    assert (fs.kind, fs.text, fs.errors, fs.reasons) == (kind, msg, (), ())


def test_bad_inputs():
    assert decode_failed_scheduling("").errors == (DecodeError("empty", ""),)
    assert decode_failed_scheduling(None).errors == (DecodeError("bad_type", "None"),)
    fs = decode_failed_scheduling("0/2 nodes are available: ")
    assert (fs.kind, fs.reasons, fs.prefilter) == ("fit_error", (), None)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("Insufficient nvidia.com/gpu", ReasonClass("NodeResourcesFit", "insufficient_resource", "nvidia.com/gpu")),
        ("Too many pods", ReasonClass("NodeResourcesFit", "too_many_pods")),
        ("node(s) had taints that the pod didn't tolerate", ReasonClass("TaintToleration", "untolerated_taint")),
        ("node(s) didn't match the requested node name", ReasonClass("NodeName", "node_name")),
        ("node(s) didn't match pod anti-affinity rules", ReasonClass("InterPodAffinity", "pod_anti_affinity")),
        ("node(s) didn't match pod topology spread constraints (missing required label)", ReasonClass("PodTopologySpread", "topology_spread")),
        ("node(s) exceed max volume count", ReasonClass("NodeVolumeLimits", "volume_limits")),
        ("node(s) had no available volume zone", ReasonClass("VolumeZone", "volume_zone")),
        ("node(s) resource fit failed", ReasonClass("VolcanoPredicates", "resource_fit_failed")),
        ("something new", ReasonClass(None, "other")),
        ("node usage unavailable", ReasonClass("HAMi", "hami", None, NodeReasons((NodeRejection("NodeUsageUnavailable"),)))),
    ],
)
def test_classify_reason(reason, expected):
    assert classify_reason(reason) == expected


# --------------------------------------------------------------------------- Scheduled


def test_scheduled_event():
    # kubectl describe example (scheduling-signals.md §1.3).
    assert decode_scheduled("Successfully assigned ns/p to node-1") == Scheduled("ns", "p", "node-1")
    # very old schedulers: no namespace.
    assert decode_scheduled("Successfully assigned p to node-1") == Scheduled(None, "p", "node-1")
    assert decode_scheduled("Assigned p").errors == (DecodeError("no_match", "Assigned p"),)
    assert decode_scheduled(1).errors[0].code == "bad_type"


# --------------------------------------------------------------------------- PodScheduled and best text

FULL = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."


def pod(status: str, message: str | None = FULL, reason: str = "Unschedulable") -> dict:
    cond = {"type": "PodScheduled", "status": status, "reason": reason, "lastTransitionTime": "2026-01-02T03:04:05Z"}
    if message is not None:
        cond["message"] = message
    return {"status": {"conditions": [{"type": "Initialized", "status": "True"}, cond]}}


def test_pod_scheduled_condition():
    assert pod_scheduled_condition(pod("False")) == PodScheduledCondition(
        "False", "Unschedulable", FULL, datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    )
    assert pod_scheduled_condition({"status": {}}) is None
    assert pod_scheduled_condition("pod") is None
    assert pod_scheduled_condition({"status": {"conditions": [None, {"type": "PodScheduled"}]}}) == PodScheduledCondition(None, None, None)


def test_best_text_prefers_condition_over_cut_note():
    note = FULL[:40] + " ..."
    assert best_scheduling_text(pod("False"), note) == SchedulingText(FULL, "pod_condition", False, "Unschedulable")


def test_best_text_falls_back_to_note():
    note = FULL[:40] + " ..."
    assert best_scheduling_text(pod("True", None, ""), note) == SchedulingText(note, "event", True)
    assert best_scheduling_text(pod("False", ""), FULL) == SchedulingText(FULL, "event", False)
    assert best_scheduling_text(None, None) == SchedulingText("", "none")
    assert best_scheduling_text({"status": None}, 5) == SchedulingText("", "none")
