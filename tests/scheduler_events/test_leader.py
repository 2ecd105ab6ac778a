"""Leader election through a coordination.k8s.io/v1 Lease (scheduler_events/leader.py).

Two electors talk to the fake API server (tests/fakes/fake_kube_leases.py)
through the real ``kubernetes`` client.  Most tests drive the electors one
attempt at a time (:meth:`LeaderElector.step`) with an injected clock, so
expiry and deadlines are exact and nothing sleeps; two threaded tests run
the real loop with sub-second durations.
"""

from __future__ import annotations

import collections
import re
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from scheduler_events.leader import (
    DEFAULT_LEASE_NAME,
    LeaderElector,
    LeaderGate,
    LeaseRecord,
    MicroTime,
    format_microtime,
    namespace_from_environment,
    parse_microtime,
)
from scheduler_events.pipeline import Pipeline
from tests.fakes.fake_kube_api import FakeKubeAPI
from tests.fakes.fake_kube_leases import LEASES, FakeKubeAPIWithLeases, make_lease

NS = "accelscope"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{DEFAULT_LEASE_NAME}"
MICRO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
T0 = 1_750_000_000.0  # a whole second: a zero fraction is the case the client's models get wrong


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class Calls:
    """Records on_started_leading / on_stopped_leading."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def started(self) -> None:
        self.events.append("started")

    def stopped(self) -> None:
        self.events.append("stopped")


@pytest.fixture
def api():
    server = FakeKubeAPIWithLeases().start()
    try:
        yield server
    finally:
        server.stop()


def api_client(api) -> k8s.ApiClient:
    return k8s.ApiClient(k8s.Configuration(host=api.url))


def elector(api, identity: str, clock=None, calls: Calls | None = None, **kw) -> LeaderElector:
    kw.setdefault("jitter", 0.0)
    return LeaderElector(api_client(api), namespace=NS, identity=identity, clock=clock or Clock(),
                         on_started_leading=calls.started if calls else None,
                         on_stopped_leading=calls.stopped if calls else None, **kw)


def stored(api) -> dict:
    obj = api.lease(DEFAULT_LEASE_NAME, NS)
    assert obj is not None
    return obj


# --------------------------------------------------------------------------- the fake's Lease protocol


def test_fake_serves_leases_with_optimistic_concurrency(api):
    coord = k8s.CoordinationV1Api(api_client(api))
    body = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name="l1"),
                       spec=k8s.V1LeaseSpec(holder_identity="x", lease_duration_seconds=5,
                                            renew_time=MicroTime.from_unix(T0)))
    created = coord.create_namespaced_lease(NS, body)
    rv = created.metadata.resource_version
    assert created.spec.holder_identity == "x" and created.metadata.uid
    assert stored_raw(api, "l1")["spec"]["renewTime"] == "2025-06-15T15:06:40.000000Z"

    with pytest.raises(ApiException) as exc:  # create again
        coord.create_namespaced_lease(NS, body)
    assert exc.value.status == 409 and '"reason":"AlreadyExists"' in exc.value.body.replace(" ", "")

    body.metadata.resource_version = rv
    body.spec.holder_identity = "y"
    updated = coord.replace_namespaced_lease("l1", NS, body)
    assert updated.metadata.resource_version != rv and updated.spec.holder_identity == "y"

    body.spec.holder_identity = "z"  # still the old resourceVersion
    with pytest.raises(ApiException) as exc:
        coord.replace_namespaced_lease("l1", NS, body)
    assert exc.value.status == 409 and "the object has been modified" in exc.value.body
    assert stored_raw(api, "l1")["spec"]["holderIdentity"] == "y"

    body.metadata.resource_version = None  # leases are never updated unconditionally
    with pytest.raises(ApiException) as exc:
        coord.replace_namespaced_lease("l1", NS, body)
    assert exc.value.status == 422 and "must be specified for an update" in exc.value.body

    with pytest.raises(ApiException) as exc:
        coord.read_namespaced_lease("nope", NS)
    assert exc.value.status == 404
    assert [r.status for r in api.requests_to(f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases")] == [201, 409]


def stored_raw(api, name: str) -> dict:
    obj = api.lease(name, NS)
    assert obj is not None
    return obj


def test_fake_rejects_microtime_without_six_fraction_digits(api):
    """The client's own models render a zero fraction away (isoformat); the
    API server (and the fake) answer 400 — hence MicroTime."""
    coord = k8s.CoordinationV1Api(api_client(api))
    plain = datetime.fromtimestamp(T0, timezone.utc)
    assert plain.isoformat() == "2025-06-15T15:06:40+00:00"
    body = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name="l2"), spec=k8s.V1LeaseSpec(renew_time=plain))
    with pytest.raises(ApiException) as exc:
        coord.create_namespaced_lease(NS, body)
    assert exc.value.status == 400
    body.spec.lease_duration_seconds = 0
    body.spec.renew_time = MicroTime.from_unix(T0)
    with pytest.raises(ApiException) as exc:
        coord.create_namespaced_lease(NS, body)
    assert exc.value.status == 422 and "leaseDurationSeconds" in exc.value.body


def test_fake_lease_discovery_is_per_instance(api):
    coord = k8s.CoordinationV1Api(api_client(api))
    names = [r.name for r in coord.get_api_resources().resources]
    assert names == ["leases"]
    groups = k8s.ApisApi(api_client(api)).get_api_versions().groups
    assert "coordination.k8s.io" in [g.name for g in groups]
    with FakeKubeAPI() as plain:  # the base fake is unchanged
        groups = k8s.ApisApi(api_client(plain)).get_api_versions().groups
        assert "coordination.k8s.io" not in [g.name for g in groups]
        assert LEASES.key not in plain._objects


# --------------------------------------------------------------------------- election, one attempt at a time


def test_first_elector_creates_the_lease_and_leads(api):
    calls = Calls()
    a = elector(api, "a", calls=calls)
    assert a.step() is True and a.is_leader
    obj = stored(api)
    spec = obj["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert MICRO_RE.match(spec["renewTime"]) and MICRO_RE.match(spec["acquireTime"])
    assert spec["renewTime"] == spec["acquireTime"] == "2025-06-15T15:06:40.000000Z"
    assert calls.events == ["started"]
    assert a.holder == "a" and a.leader_transitions == 0


def test_two_electors_exactly_one_leads_and_the_leader_renews(api):
    clock = Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a.step()
    acquired = stored(api)["spec"]["acquireTime"]
    for _ in range(20):  # 40 s: well past the 15 s lease duration
        clock.advance(2.0)
        b.step()
        a.step()
        assert (a.is_leader, b.is_leader) == (True, False)
    spec = stored(api)["spec"]
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == acquired
    assert parse_microtime(spec["renewTime"]) == pytest.approx(clock.t)
    assert b.holder == "a"
    assert a.stats["acquired"] == 1 and a.stats["renewed"] == 20
    assert b.stats["acquired"] == 0


def test_leader_stopping_releases_and_the_other_takes_over_at_once(api):
    clock = Clock()
    ca, cb = Calls(), Calls()
    a, b = elector(api, "a", clock, ca), elector(api, "b", clock, cb)
    a.step()
    b.step()
    a.stop()
    assert not a.is_leader
    spec = stored(api)["spec"]
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert MICRO_RE.match(spec["renewTime"])
    clock.advance(0.5)  # less than the released lease's 1 s: released means free
    assert b.step() is True
    spec = stored(api)["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert spec["leaseDurationSeconds"] == 15
    assert ca.events == ["started", "stopped"]
    assert cb.events == ["started"]
    b.stop()
    assert cb.events == ["started", "stopped"]
    a.stop()  # idempotent
    assert ca.events == ["started", "stopped"]
    # a third replica counts one more transition
    c = elector(api, "c", clock)
    c.step()
    assert stored(api)["spec"]["leaseTransitions"] == 2


def test_crashed_leader_is_replaced_after_the_lease_duration(api):
    clock = Clock()
    ca, cb = Calls(), Calls()
    a, b = elector(api, "a", clock, ca), elector(api, "b", clock, cb)
    a.step()
    b.step()
    assert not b.is_leader
    # a crashes: it never renews again
    took_over_at = None
    for i in range(1, 20):
        clock.advance(1.0)
        if b.step():
            took_over_at = i
            break
    # b saw the record last change at T0 and takes over once 15 s passed without a change
    assert took_over_at == 16
    assert stored(api)["spec"]["holderIdentity"] == "b"
    assert stored(api)["spec"]["leaseTransitions"] == 1
    # the crashed leader's own view: it stopped leading renew_deadline after its last renewal
    assert a.is_leader is False
    assert cb.events == ["started"]


def test_is_leader_turns_false_at_the_renew_deadline_without_a_step(api):
    clock = Clock()
    a = elector(api, "a", clock)
    a.step()
    clock.advance(10.0)
    assert a.is_leader  # exactly at the deadline
    clock.advance(0.001)
    assert not a.is_leader  # the election thread may be blocked; writers stop anyway


def test_a_stale_lease_is_taken_over_at_first_sight(api):
    clock = Clock()
    api.create(LEASES.key, make_lease(DEFAULT_LEASE_NAME, NS, holder="ghost", renew_time=T0 - 60,
                                      acquire_time=T0 - 3600, transitions=4))
    b = elector(api, "b", clock)
    assert b.step() is True
    spec = stored(api)["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 5
    assert parse_microtime(spec["acquireTime"]) == T0


def test_a_fresh_lease_is_respected_and_labels_are_kept(api):
    clock = Clock()
    lease = make_lease(DEFAULT_LEASE_NAME, NS, holder="other", renew_time=T0 - 1, transitions=2)
    lease["metadata"]["labels"] = {"app.kubernetes.io/name": "accelscope"}
    lease["metadata"]["annotations"] = {"note": "kept"}
    api.create(LEASES.key, lease)
    b = elector(api, "b", clock)
    assert b.step() is False
    clock.advance(13.5)  # renewTime (T0 - 1) + 15 s not yet passed
    assert b.step() is False
    clock.advance(1.0)
    assert b.step() is True
    obj = stored(api)
    assert obj["metadata"]["labels"] == {"app.kubernetes.io/name": "accelscope"}
    assert obj["metadata"]["annotations"] == {"note": "kept"}
    assert obj["spec"]["leaseTransitions"] == 3


def test_a_live_holder_is_not_robbed_when_its_clock_falls_behind(api):
    """Once a follower has seen the holder renew, it judges expiry by its own
    clock, not by the holder's renewTime."""
    clock_a, clock_b = Clock(), Clock()
    a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
    a.step()
    b.step()
    for _ in range(3):
        clock_a.advance(2.0)
        clock_b.advance(2.0)
        a.step()
        b.step()
    clock_a.advance(-120.0)  # a's clock steps back two minutes: its renewTime looks stale to b
    for _ in range(20):
        clock_a.advance(2.0)
        clock_b.advance(2.0)
        a.step()
        b.step()
        assert (a.is_leader, b.is_leader) == (True, False)
    assert stored(api)["spec"]["holderIdentity"] == "a"


def test_a_conflicting_update_between_read_and_write_is_handled(api):
    """Both replicas race for a released Lease: b reads it, a acquires it,
    b's replace (with the resourceVersion it read) gets 409, b reads again
    and follows."""
    clock = Clock()
    api.create(LEASES.key, make_lease(DEFAULT_LEASE_NAME, NS, holder="", renew_time=T0 - 1, lease_duration=1,
                                      transitions=7))
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    real_read = b.api.read_namespaced_lease
    raced = []

    def racing_read(*args, **kwargs):
        resp = real_read(*args, **kwargs)
        if not raced:
            raced.append(True)
            assert a.step() is True  # a writes between b's read and b's write
        return resp

    b.api.read_namespaced_lease = racing_read
    assert b.step() is False
    assert b.stats["conflicts"] == 1
    assert a.is_leader and not b.is_leader
    spec = stored(api)["spec"]
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 8  # one transition, not two
    puts = [r.status for r in api.requests_to(LEASE_PATH) if r.method == "PUT"]
    assert puts == [200, 409]


def test_a_conflicting_renewal_is_retried_at_once(api):
    """Someone else touches the leader's Lease (e.g. kubectl annotate) between
    its read and its write: the renewal is read again and succeeds in the
    same attempt."""
    clock = Clock()
    a = elector(api, "a", clock)
    a.step()
    real_read = a.api.read_namespaced_lease
    touched = []

    def read_then_touch(*args, **kwargs):
        resp = real_read(*args, **kwargs)
        if not touched:
            touched.append(True)
            api.modify(LEASES.key, DEFAULT_LEASE_NAME,
                       lambda o: o["metadata"].setdefault("annotations", {}).update({"touched": "yes"}), NS)
        return resp

    a.api.read_namespaced_lease = read_then_touch
    clock.advance(2.0)
    assert a.step() is True
    assert a.stats["conflicts"] == 1 and a.stats["renewed"] == 1
    obj = stored(api)
    assert obj["metadata"]["annotations"] == {"touched": "yes"}
    assert parse_microtime(obj["spec"]["renewTime"]) == clock.t


def test_a_create_race_is_handled(api):
    clock = Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    real_read = b.api.read_namespaced_lease
    raced = []

    def racing_read(*args, **kwargs):
        try:
            return real_read(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and not raced:
                raced.append(True)
                assert a.step() is True  # a creates the Lease after b saw none
            raise

    b.api.read_namespaced_lease = racing_read
    assert b.step() is False
    assert b.stats["conflicts"] == 1
    assert stored(api)["spec"]["holderIdentity"] == "a"
    posts = [r.status for r in api.requests if r.method == "POST"]
    assert posts == [201, 409]


def test_api_down_the_leader_steps_down_after_the_renew_deadline(api):
    clock = Clock()
    calls = Calls()
    a = elector(api, "a", clock, calls)
    a.step()
    api.fail_next(10**6, 503, path=LEASE_PATH, message="etcdserver: request timed out")
    leading = []
    for _ in range(7):
        clock.advance(2.0)
        leading.append(a.step())
    # renewals fail from T0+2 on; the last success was at T0, the deadline 10 s
    assert leading == [True, True, True, True, True, False, False]
    assert calls.events == ["started", "stopped"]
    assert a.stats["errors_http_503"] == 7 and a.stats["lost"] == 1
    # the API comes back before the lease (15 s) expired for anyone else: a renews its own lease
    api.clear_failures()
    clock.advance(1.0)
    assert a.step() is True
    assert calls.events == ["started", "stopped", "started"]
    assert stored(api)["spec"]["leaseTransitions"] == 0  # same holder, no transition


def test_unreachable_api_never_raises(api):
    url = api.url
    api.stop()
    cfg = k8s.Configuration(host=url)
    cfg.retries = False
    e = LeaderElector(k8s.ApiClient(cfg), namespace=NS, identity="a", jitter=0.0, request_timeout=1.0)
    assert e.step() is False
    assert e.stats["errors_connection"] == 1
    e.stop()  # release attempt fails quietly


def test_another_holder_seen_makes_the_leader_step_down_at_once(api):
    clock = Clock()
    calls = Calls()
    a = elector(api, "a", clock, calls)
    a.step()

    def hijack(o):
        o["spec"]["holderIdentity"] = "intruder"
        o["spec"]["renewTime"] = format_microtime(clock.t)

    api.modify(LEASES.key, DEFAULT_LEASE_NAME, hijack, NS)
    clock.advance(2.0)
    assert a.step() is False
    assert calls.events == ["started", "stopped"]
    assert a.holder == "intruder"


# --------------------------------------------------------------------------- the real loop


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


FAST = {"lease_duration": 1, "renew_deadline": 0.5, "retry_period": 0.05, "jitter": 0.2, "request_timeout": 0.5}


def test_threads_exactly_one_leads_and_a_stopping_leader_hands_over(api):
    ca, cb = Calls(), Calls()
    a = LeaderElector(api_client(api), namespace=NS, identity="a", on_started_leading=ca.started,
                      on_stopped_leading=ca.stopped, clock=time.time, **FAST)
    b = LeaderElector(api_client(api), namespace=NS, identity="b", on_started_leading=cb.started,
                      on_stopped_leading=cb.stopped, clock=time.time, **FAST)
    a.start()
    b.start()
    try:
        assert wait_until(lambda: a.is_leader or b.is_leader, 3.0)
        both = 0
        end = time.monotonic() + 0.4
        while time.monotonic() < end:
            both += a.is_leader and b.is_leader
            time.sleep(0.005)
        assert both == 0
        assert wait_until(lambda: a.is_leader != b.is_leader, 2.0)
        leader, follower = (a, b) if a.is_leader else (b, a)
        lc, fc = (ca, cb) if leader is a else (cb, ca)
        t = time.monotonic()
        leader.stop()
        assert wait_until(lambda: follower.is_leader, 2.0)
        assert time.monotonic() - t < 1.0  # a released Lease is taken at the next attempt
        assert lc.events == ["started", "stopped"]
        # the callback runs on the election thread right after is_leader flips
        assert wait_until(lambda: fc.events == ["started"], 2.0), fc.events
        assert stored(api)["spec"]["leaseTransitions"] == 1
    finally:
        a.stop()
        b.stop()
    assert fc.events == ["started", "stopped"]


def test_threads_a_vanished_leader_is_replaced_within_about_the_lease_duration(api):
    a = LeaderElector(api_client(api), namespace=NS, identity="a", release_on_stop=False, **FAST)
    b = LeaderElector(api_client(api), namespace=NS, identity="b", **FAST)
    a.start()
    assert wait_until(lambda: a.is_leader, 2.0)
    b.start()
    try:
        assert wait_until(lambda: b.holder == "a", 2.0)
        assert not b.is_leader
        t = time.monotonic()
        a.stop()  # no release: like a crash
        assert stored(api)["spec"]["holderIdentity"] == "a"
        assert wait_until(lambda: b.is_leader, 3.0)
        assert 0.5 < time.monotonic() - t < 2.5  # about lease_duration (1 s), with slack for a loaded machine
    finally:
        b.stop()
        a.stop()


# --------------------------------------------------------------------------- LeaderGate


class Out:
    def __init__(self) -> None:
        self.changes: list = []
        self.ticks = 0
        self.store = "the store"

    def on_change(self, change) -> None:
        self.changes.append(change)

    def tick(self) -> None:
        self.ticks += 1


class Boom:
    def on_change(self, change) -> None:
        raise RuntimeError("boom")


def test_gate_forwards_only_while_leading():
    state = SimpleNamespace(is_leader=False)
    out = Out()
    hooks = []
    gate = LeaderGate(out, state, on_gain=lambda o: hooks.append(("gain", o)),
                      on_loss=lambda o: hooks.append(("loss", o)))
    gate.on_change(1)
    gate.tick()
    assert out.changes == [] and out.ticks == 0 and gate.dropped == 1
    state.is_leader = True
    gate.on_change(2)
    gate.tick()
    gate.on_change(3)
    assert out.changes == [2, 3] and out.ticks == 1
    state.is_leader = False
    gate.tick()
    gate.on_change(4)
    assert out.changes == [2, 3] and out.ticks == 1 and gate.dropped == 2
    assert hooks == [("gain", out), ("loss", out)]
    assert gate.store == "the store"  # attributes read through
    assert isinstance(gate, LeaderGate) and type(gate).__name__ == "Out"


def test_gate_accepts_a_callable_and_survives_a_failing_hook():
    flag = [True]
    out = Out()

    def bad(_o):
        raise ValueError("hook failed")

    gate = LeaderGate(out, lambda: flag[0], on_gain=bad)
    gate.on_change("x")
    assert out.changes == ["x"] and gate.errors == 1


def test_gate_in_a_pipeline_keeps_the_output_name_in_error_counts():
    class Engine:
        def apply(self, ev):
            return [SimpleNamespace(kind="placed", decision=None, time=0.0)]

    leading = SimpleNamespace(is_leader=True)
    out = Out()
    pipe = Pipeline(Engine(), [LeaderGate(out, leading), LeaderGate(Boom(), leading)])
    pipe.feed(object())
    pipe.tick()
    assert len(out.changes) == 1 and out.ticks == 1
    assert pipe.output_errors == collections.Counter({"Boom": 1})
    leading.is_leader = False
    pipe.feed(object())
    pipe.tick()
    assert len(out.changes) == 1 and out.ticks == 1
    assert pipe.output_errors == collections.Counter({"Boom": 1})


def test_gate_with_a_real_elector(api):
    clock = Clock()
    a = elector(api, "a", clock)
    out = Out()
    gate = LeaderGate(out, a)
    gate.on_change("before")
    a.step()
    gate.on_change("leading")
    clock.advance(11.0)  # past the renew deadline
    gate.on_change("overdue")
    assert out.changes == ["leading"]


# --------------------------------------------------------------------------- helpers


def test_microtime_format_and_parse():
    assert format_microtime(0) == "1970-01-01T00:00:00.000000Z"
    assert format_microtime(T0 + 0.25) == "2025-06-15T15:06:40.250000Z"
    assert MicroTime.from_unix(T0).isoformat() == "2025-06-15T15:06:40.000000Z"
    assert k8s.ApiClient().sanitize_for_serialization(
        k8s.V1LeaseSpec(renew_time=MicroTime.from_unix(T0)))["renewTime"] == "2025-06-15T15:06:40.000000Z"
    assert parse_microtime("2025-06-15T15:06:40.250000Z") == T0 + 0.25
    assert parse_microtime("2025-06-15T17:06:40.5+02:00") == T0 + 0.5
    assert parse_microtime("2025-06-15T15:06:40.123456789Z") == pytest.approx(T0 + 0.123456)
    assert parse_microtime("2025-06-15T15:06:40Z") == T0
    assert parse_microtime("yesterday") is None and parse_microtime(None) is None


def test_lease_record_tolerates_partial_specs():
    rec = LeaseRecord.from_object({"metadata": {"resourceVersion": "3"}, "spec": {"leaseTransitions": -1}})
    assert (rec.holder, rec.lease_duration, rec.renew_time, rec.transitions, rec.resource_version) == \
        ("", None, None, 0, "3")


def test_namespace_from_environment(tmp_path):
    f = tmp_path / "namespace"
    f.write_text("from-file\n")
    assert namespace_from_environment({"POD_NAMESPACE": "from-env"}, str(f)) == "from-env"
    assert namespace_from_environment({}, str(f)) == "from-file"
    assert namespace_from_environment({}, str(tmp_path / "missing")) is None


@pytest.mark.parametrize("kw", [
    {"lease_duration": 10, "renew_deadline": 10},
    {"lease_duration": 15, "renew_deadline": 2, "retry_period": 2},
    {"lease_duration": 1.5, "renew_deadline": 1},
    {"lease_duration": 0},
    {"retry_period": 0},
])
def test_timing_is_validated(kw):
    with pytest.raises(ValueError):
        LeaderElector(k8s.ApiClient(), namespace=NS, **kw)


def test_default_identity_is_unique():
    a = LeaderElector(k8s.ApiClient(), namespace=NS)
    b = LeaderElector(k8s.ApiClient(), namespace=NS)
    assert a.identity != b.identity and "_" in a.identity


def test_collector_gates_history_on_leadership(tmp_path):
    """main.Collector with --leader-elect: history is written only while leading."""
    import argparse as _argparse
    from pathlib import Path

    from scheduler_events.main import Collector, add_arguments
    from scheduler_events.sources.replay import ReplayStream

    p = _argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--leader-elect", "--history", str(tmp_path / "h.db"), "--source", "kube"])
    col = Collector(args)
    dump = Path(__file__).resolve().parents[2] / "scheduler_events" / "data" / "demo-cluster-dump.json"
    try:
        assert col.is_leader() is False  # no elector yet: a follower
        for ev in ReplayStream(dump):
            col.pipeline.feed(ev)
        col.history.flush()
        assert col.history.query(limit=100) == []

        class Leading:
            is_leader = True

        col.elector = Leading()
        assert col.is_leader() is True
        col.pipeline.tick()  # the gate notices the takeover and backfills
        col.history.flush()
        assert {d["name"] for d in col.history.query(outcome="pending", limit=100)} == {"ranker-2", "train-8x"}
    finally:
        col.close()
