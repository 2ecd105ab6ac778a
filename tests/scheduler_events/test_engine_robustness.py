"""Bad input never crashes the decision engine and is counted: malformed
objects of every kind, events for unknown pods, duplicates, out-of-order
events, truncated messages (hypothesis-driven plus exact cases)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler_events.decisions import DecisionEngine
from scheduler_events.sources.replay import ReplayStream
from scheduler_events.stream import ObjectEvent

DUMP = Path(__file__).resolve().parents[2] / "scheduler_events" / "data" / "demo-cluster-dump.json"
ITEMS = json.loads(DUMP.read_text())["items"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)


def _mutate(obj, path_choice, value):
    """Replace one nested value of a real object with arbitrary JSON."""
    obj = copy.deepcopy(obj)
    cur = obj
    keys = []
    while isinstance(cur, dict) and cur:
        k = sorted(cur)[path_choice % len(cur)]
        keys.append(k)
        if not isinstance(cur[k], (dict, list)) or path_choice % 3 == 0:
            cur[k] = value
            return obj
        nxt = cur[k]
        if isinstance(nxt, list):
            if not nxt:
                cur[k] = value
                return obj
            cur = nxt[path_choice % len(nxt)]
        else:
            cur = nxt
        path_choice //= 2
    return obj


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(idx=st.integers(0, len(ITEMS) - 1), path=st.integers(0, 10_000), value=json_values,
       typ=st.sampled_from(["ADDED", "MODIFIED", "DELETED", "SYNC"]))
def test_mutated_objects_never_crash(idx, path, value, typ):
    engine = DecisionEngine()
    for ev in ReplayStream(DUMP):
        engine.apply(ev)
    obj = _mutate(ITEMS[idx], path, value)
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ITEMS[idx]["kind"]
    kind = kind if kind in ("Pod", "Node", "Event") else ITEMS[idx]["kind"]
    engine.apply(ObjectEvent(kind, typ, obj, 1795169600.0))
    assert engine.errors.get("internal", 0) == 0, "a mutation reached an unhandled path"
    # the rest of the state is intact
    assert engine.decision("research", "train-8x") is not None


@settings(max_examples=200, deadline=None)
@given(note=st.text(max_size=300), reason=st.sampled_from(
    ["FailedScheduling", "Scheduled", "FilteringFailed", "FilteringSucceed", "BindingFailed", "BindingSucceed",
     "Whatever"]), comp=st.sampled_from(["default-scheduler", "hami-scheduler", "volcano", "", "x"]))
def test_arbitrary_event_texts_never_crash(note, reason, comp):
    engine = DecisionEngine()
    for ev in ReplayStream(DUMP):
        engine.apply(ev)
    ev = copy.deepcopy(next(i for i in ITEMS if i["kind"] == "Event" and i["involvedObject"]["name"] == "ranker-2"))
    ev["metadata"]["uid"] = "fuzz"
    ev.update(reason=reason, message=note, source={"component": comp}, reportingComponent=comp, count=99)
    engine.apply(ObjectEvent("Event", "ADDED", ev, 1795169600.0))
    assert engine.errors.get("internal", 0) == 0


def test_orphans_duplicates_and_garbage_are_counted():
    engine = DecisionEngine(orphan_buffer=2)
    ev = copy.deepcopy(next(i for i in ITEMS if i["kind"] == "Event"))
    for n in range(4):  # events for pods never seen: buffered, the oldest dropped and counted
        e = copy.deepcopy(ev)
        e["involvedObject"]["uid"] = f"nobody-{n}"
        e["metadata"]["uid"] = f"e{n}"
        engine.apply(ObjectEvent("Event", "ADDED", e, 1.0))
    assert engine.errors["orphan_event"] == 2 and engine.orphans_pending() == 2
    engine.apply(ObjectEvent("Pod", "ADDED", {"metadata": "not a dict"}, 1.0))
    engine.apply(ObjectEvent("Pod", "ADDED", {"metadata": {"name": "x"}}, 1.0))  # no uid
    assert engine.errors["bad_object"] == 2
    for ev2 in ReplayStream(DUMP):
        engine.apply(ev2)
    fs = next(i for i in ITEMS if i["kind"] == "Event" and i["reason"] == "FailedScheduling"
              and i["involvedObject"]["name"] == "ranker-2")
    engine.apply(ObjectEvent("Event", "MODIFIED", fs, 2.0))  # same uid and count again
    assert engine.errors["duplicate_event"] == 1
    assert engine.decision("ml", "ranker-2").attempt == 24


def test_event_before_pod_is_applied_when_the_pod_arrives():
    engine = DecisionEngine()
    events = [i for i in ITEMS if i["kind"] == "Event" and i["involvedObject"]["name"] == "train-8x"]
    pod = next(i for i in ITEMS if i["kind"] == "Pod" and i["metadata"]["name"] == "train-8x")
    for e in events:
        engine.apply(ObjectEvent("Event", "ADDED", e, 1.0))
    assert engine.decision("research", "train-8x") is None and engine.orphans_pending() == 1
    engine.apply(ObjectEvent("Pod", "ADDED", pod, 2.0))
    d = engine.decision("research", "train-8x")
    assert d.attempt == 9 and d.primary_reason == "insufficient_resource" and engine.orphans_pending() == 0


def test_truncated_event_note_does_not_replace_the_full_condition_text():
    engine = DecisionEngine()
    for ev in ReplayStream(DUMP):
        engine.apply(ev)
    full = engine.decision("ml", "ranker-2").message
    fs = copy.deepcopy(next(i for i in ITEMS if i["kind"] == "Event" and i["reason"] == "FailedScheduling"
                            and i["involvedObject"]["name"] == "ranker-2"))
    fs["message"] = full[:40] + " ..."
    fs["count"] = 25
    engine.apply(ObjectEvent("Event", "MODIFIED", fs, 3.0))
    d = engine.decision("ml", "ranker-2")
    assert d.message == full and d.attempt == 25 and d.primary_reason == "CardInsufficientMemory"
