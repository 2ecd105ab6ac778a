"""Event reporter identification and the two-shape Event view.

Shapes follow ../shared/reference/scheduling-signals.md §1.3-1.5 and §4.2
(Karpenter and Volcano also write FailedScheduling; HAMi uses the legacy
core/v1 recorder with source.component = the scheduler name).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from scheduler_events.decoders.common import DecodeError
from scheduler_events.decoders.reporter import (
    EventView,
    ObjectRef,
    Reporter,
    event_view,
    identify_reporter,
)

UTC = timezone.utc

POD_REF = {"kind": "Pod", "namespace": "ml", "name": "ranker-2", "uid": "uid-1", "apiVersion": "v1"}

# core/v1 Event written by HAMi's legacy recorder.
HAMI_CORE = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "ranker-2.1", "namespace": "ml", "uid": "ev-1", "resourceVersion": "42"},
    "involvedObject": POD_REF,
    "reason": "FilteringFailed",
    "message": "2 nodes CardInsufficientMemory(node-a,node-b)",
    "source": {"component": "hami-scheduler"},
    "reportingComponent": "",
    "reportingInstance": "",
    "type": "Warning",
    "count": 3,
    "firstTimestamp": "2026-01-02T03:04:05Z",
    "lastTimestamp": "2026-01-02T03:10:05Z",
    "eventTime": None,
}

# events.k8s.io/v1 Event written by kube-scheduler.
SCHED_NEW = {
    "apiVersion": "events.k8s.io/v1",
    "kind": "Event",
    "metadata": {"name": "ranker-2.2", "namespace": "ml", "uid": "ev-2"},
    "regarding": POD_REF,
    "reason": "FailedScheduling",
    "note": "0/5 nodes are available: 5 Insufficient nvidia.com/gpu.",
    "action": "Scheduling",
    "reportingController": "default-scheduler",
    "reportingInstance": "default-scheduler-cp-1",
    "type": "Warning",
    "eventTime": "2026-01-02T03:04:05.123456Z",
    "series": {"count": 7, "lastObservedTime": "2026-01-02T03:30:00.000001Z"},
    "deprecatedCount": 0,
}


def test_core_v1_source_component_when_reporting_component_empty():
    assert identify_reporter(HAMI_CORE) == Reporter("hami-scheduler", "hami", "source.component", None, "core/v1")


def test_events_v1_reporting_controller():
    assert identify_reporter(SCHED_NEW) == Reporter(
        "default-scheduler", "kube-scheduler", "reportingController", "default-scheduler-cp-1", "events.k8s.io/v1"
    )


@pytest.mark.parametrize(
    ("event", "component", "kind", "field"),
    [
        ({"reason": "FailedScheduling", "reportingComponent": "karpenter"}, "karpenter", "karpenter", "reportingComponent"),
        ({"reason": "FailedScheduling", "source": {"component": "volcano"}}, "volcano", "volcano", "source.component"),
        ({"reason": "NotTriggerScaleUp", "source": {"component": "cluster-autoscaler"}}, "cluster-autoscaler", "cluster-autoscaler", "source.component"),
        ({"reason": "FailedScheduling", "deprecatedSource": {"component": "my-scheduler"}}, "my-scheduler", "other", "deprecatedSource.component"),
        # reason says FailedScheduling, reporter says Karpenter: the reporter wins.
        ({"reason": "FailedScheduling", "reportingController": "karpenter", "source": {"component": "default-scheduler"}}, "karpenter", "karpenter", "reportingController"),
    ],
)
def test_reporter_precedence(event, component, kind, field):
    rep = identify_reporter(event)
    assert (rep.component, rep.kind, rep.field) == (component, kind, field)


def test_known_names_override():
    rep = identify_reporter({"source": {"component": "gpu-scheduler"}}, known={"gpu-scheduler": "hami"})
    assert rep.kind == "hami"
    rep = identify_reporter({"source": {"component": "gpu-scheduler"}}, known={"gpu-scheduler": "whatever"})
    assert rep.kind == "other"


def test_no_reporter():
    assert identify_reporter({"reason": "FailedScheduling", "message": "x"}) == Reporter(
        None, "unknown", None, None, "core/v1", (DecodeError("bad_shape", "no reporter field"),)
    )
    assert identify_reporter("event").errors[0].code == "bad_type"


def test_event_view_core_v1():
    assert event_view(HAMI_CORE) == EventView(
        reason="FilteringFailed",
        type="Warning",
        note="2 nodes CardInsufficientMemory(node-a,node-b)",
        action=None,
        reporter=Reporter("hami-scheduler", "hami", "source.component", None, "core/v1"),
        regarding=ObjectRef("Pod", "ml", "ranker-2", "uid-1", "v1"),
        count=3,
        first_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        last_time=datetime(2026, 1, 2, 3, 10, 5, tzinfo=UTC),
        uid="ev-1",
        resource_version="42",
    )


def test_event_view_events_v1_series():
    view = event_view(SCHED_NEW)
    assert (view.note, view.action, view.count) == (SCHED_NEW["note"], "Scheduling", 7)
    assert view.first_time == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert view.last_time == datetime(2026, 1, 2, 3, 30, 0, 1, tzinfo=UTC)
    assert view.regarding.name == "ranker-2"
    assert view.errors == ()


def test_event_view_bad_time_and_fallbacks():
    view = event_view({"reportingController": "x", "eventTime": "yesterday", "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}})
    assert view.first_time == view.last_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert view.count == 1
    assert view.errors == (DecodeError("bad_time", "eventTime='yesterday'"),)
    assert event_view(None).errors[0].code == "bad_type"
