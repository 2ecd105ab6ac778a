"""Volcano gang-scheduling texts and PodGroup conditions.

The reference (../shared/reference/scheduling-signals.md §2.2) documents the
grammar and the fixed texts but quotes no complete real message, so these
cases are built from that grammar, one per rule.
"""

from __future__ import annotations

from datetime import datetime, timezone

from scheduler_events.decoders.common import DecodeError
from scheduler_events.decoders.kube_scheduler import FailedScheduling, ReasonCount
from scheduler_events.decoders.volcano import (
    CanBeAssigned,
    GangUnschedulable,
    JobFitError,
    PodGroupCondition,
    PodGroupStatus,
    TaskFitFailed,
    VolcanoMessage,
    decode_job_fit_error,
    decode_podgroup,
    decode_podgroup_condition,
    decode_volcano_message,
)

ORIGIN = "0/3 nodes are unavailable: 1 node(s) resource fit failed, 2 Insufficient nvidia.com/gpu."
JOB = (
    "pod group is not ready, 2 Pending, 1 Running, 3 minAvailable; Pending: 1 Schedulable, 1 Unschedulable. "
    f"Origin reason is mnist-worker-1: {ORIGIN}"
)
GANG = f"2/3 tasks in gang unschedulable: {JOB}"

ORIGIN_DECODED = FailedScheduling(
    kind="fit_error",
    text=ORIGIN,
    total_nodes=3,
    available_nodes=0,
    head="are unavailable",
    reasons=(
        ReasonCount(1, "node(s) resource fit failed", plugin="VolcanoPredicates", code="resource_fit_failed"),
        ReasonCount(2, "Insufficient nvidia.com/gpu", plugin="NodeResourcesFit", code="insufficient_resource", detail="nvidia.com/gpu"),
    ),
)
JOB_DECODED = JobFitError(
    ready=False,
    task_statuses=((2, "Pending"), (1, "Running")),
    min_available=3,
    pending_reasons=((1, "Schedulable"), (1, "Unschedulable")),
    origin_task="mnist-worker-1",
    origin=ORIGIN_DECODED,
)


def test_gang_message():
    assert decode_volcano_message(GANG) == VolcanoMessage(
        "gang_unschedulable", GANG, GangUnschedulable(2, 3, JOB_DECODED, JOB)
    )


def test_job_fit_error_alone():
    assert decode_job_fit_error(JOB) == JOB_DECODED
    assert decode_volcano_message(JOB) == VolcanoMessage("job_fit_error", JOB, JOB_DECODED)


def test_job_level_origin_and_no_pending_part():
    text = "pod group is not ready, 4 Pending, 4 minAvailable. Origin reason is: queue default is overused"
    job = decode_job_fit_error(text)
    assert job == JobFitError(
        ready=False,
        task_statuses=((4, "Pending"),),
        min_available=4,
        origin_task=None,
        origin=FailedScheduling("other", "queue default is overused"),
    )


def test_ready_without_origin():
    assert decode_job_fit_error("pod group is ready, 3 Running, 3 minAvailable") == JobFitError(
        True, ((3, "Running"),), 3
    )


def test_job_fit_error_bad_parts():
    job = decode_job_fit_error("pod group is not ready, lots Pending; Waiting: 1 x. Origin reason is nocolon")
    assert sorted(e.code for e in job.errors) == ["no_match", "no_match", "no_match"]
    assert decode_job_fit_error("not a job").errors == (DecodeError("no_match", "not a job"),)
    assert decode_job_fit_error(None).errors[0].code == "bad_type"


def test_fit_errors_forms():
    msg = decode_volcano_message(ORIGIN)
    assert (msg.kind, msg.detail) == ("fit_errors", ORIGIN_DECODED)
    msg = decode_volcano_message("all nodes are unavailable")
    assert (msg.kind, msg.detail) == ("fit_errors", FailedScheduling("other", "all nodes are unavailable"))


def test_task_fit_failed():
    text = "task ml/mnist-worker-1 on node gpu-3 fit failed: Insufficient nvidia.com/gpu, node(s) pod number exceeded"
    assert decode_volcano_message(text).detail == TaskFitFailed(
        "ml", "mnist-worker-1", "gpu-3", ("Insufficient nvidia.com/gpu", "node(s) pod number exceeded")
    )


def test_can_be_assigned_condition_messages():
    text = "Pod ml/mnist-worker-0 can possibly be assigned to gpu-1, once minAvailable is satisfied"
    assert decode_volcano_message(text).detail == CanBeAssigned(
        "ml", "mnist-worker-0", "gpu-1", "minAvailable is satisfied", False
    )
    text = "Pod ml/mnist-worker-0 can possibly be assigned to gpu-1, once resource is released and minAvailable is satisfied"
    detail = decode_volcano_message(text).detail
    assert (detail.pipelined, detail.node) == (True, "gpu-1")


def test_pod_group_ready_and_unknown():
    assert decode_volcano_message("pod group is ready") == VolcanoMessage("pod_group_ready", "pod group is ready")
    assert decode_volcano_message("hello").errors == (DecodeError("no_match", "hello"),)
    assert decode_volcano_message("").errors == (DecodeError("empty", ""),)
    assert decode_volcano_message(3).errors[0].code == "bad_type"


def test_gang_message_with_unexpected_detail():
    msg = decode_volcano_message("1/2 tasks in gang unschedulable: something else")
    assert msg.detail == GangUnschedulable(1, 2, None, "something else")


# --------------------------------------------------------------------------- PodGroup

PODGROUP = {
    "apiVersion": "scheduling.volcano.sh/v1beta1",
    "kind": "PodGroup",
    "metadata": {"namespace": "ml", "name": "mnist", "uid": "pg-uid-1"},
    "spec": {"minMember": 3, "queue": "default"},
    "status": {
        "phase": "Pending",
        "running": 1,
        "conditions": [
            {
                "type": "Unschedulable",
                "status": "True",
                "reason": "NotEnoughResources",
                "message": GANG,
                "transitionID": "6f1c-session",
                "lastTransitionTime": "2026-03-04T05:06:07Z",
            }
        ],
    },
}


def test_podgroup():
    cond = PodGroupCondition(
        type="Unschedulable",
        status="True",
        reason="NotEnoughResources",
        message=GANG,
        transition_id="6f1c-session",
        last_transition_time=datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc),
        gang=GangUnschedulable(2, 3, JOB_DECODED, JOB),
    )
    status = decode_podgroup(PODGROUP)
    assert status == PodGroupStatus(
        namespace="ml", name="mnist", uid="pg-uid-1", min_member=3, queue="default", phase="Pending",
        running=1, conditions=(cond,),
    )
    assert status.condition("Unschedulable") == cond
    assert status.condition("Scheduled") is None


def test_podgroup_scheduled_condition():
    cond = decode_podgroup_condition(
        {"type": "Scheduled", "status": "True", "reason": "tasks in gang are ready to be scheduled"}
    )
    assert cond == PodGroupCondition("Scheduled", "True", "tasks in gang are ready to be scheduled", None)


def test_podgroup_bad_shapes():
    assert decode_podgroup("x").errors[0].code == "bad_type"
    pg = decode_podgroup({"spec": {"minMember": "3"}, "status": {"conditions": {"a": 1}}})
    assert sorted(e.code for e in pg.errors) == ["bad_int", "bad_shape"]
    pg = decode_podgroup({"status": {"conditions": ["nope"]}})
    assert pg.conditions[0].errors[0].code == "bad_type"
