"""KubeSource end to end: the real ``kubernetes`` client against the fake API
server (tests/fakes/fake_kube_api.py), plus ``pod_is_relevant``."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any, Callable

import kubernetes
import pytest

from scheduler_events.sources.kube import (
    KIND_SPECS,
    SYNTHETIC_DELETE_ANNOTATION,
    KubeSource,
    pod_is_relevant,
)
from scheduler_events.stream import KINDS, ObjectEvent
from tests.fakes.fake_kube_api import (
    FakeKubeAPI,
    make_event,
    make_event_v1,
    make_node,
    make_pod,
    make_podgroup,
)

WAIT = 5.0


class Collector:
    """Thread-safe callback that records ObjectEvents."""

    def __init__(self) -> None:
        self.events: list[ObjectEvent] = []
        self._cond = threading.Condition()

    def __call__(self, ev: ObjectEvent) -> None:
        with self._cond:
            self.events.append(ev)
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[list[ObjectEvent]], bool], timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self.events), timeout)

    def wait_count(self, n: int, kind: str = "Pod", timeout: float = WAIT) -> list[ObjectEvent]:
        assert self.wait_for(lambda evs: len([e for e in evs if e.kind == kind]) >= n, timeout), self.summary()
        return self.of(kind)

    def of(self, kind: str = "Pod") -> list[ObjectEvent]:
        with self._cond:
            return [e for e in self.events if e.kind == kind]

    def summary(self) -> list[tuple[str, str, str]]:
        with self._cond:
            return [(e.kind, e.type, e.obj.get("metadata", {}).get("name", "")) for e in self.events]


class Sleeper:
    """Injected back-off sleep: records delays, sleeps briefly, and can be
    held closed (``gate.clear()``) to keep the source disconnected."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.entered.set()
        self.gate.wait(WAIT)
        time.sleep(0.01)


def names(events: list[ObjectEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.obj["metadata"]["name"]) for e in events]


@pytest.fixture
def api():
    with FakeKubeAPI() as server:
        yield server


@pytest.fixture
def sources():
    made: list[KubeSource] = []
    yield made
    for s in made:
        s.stop()


@pytest.fixture
def make_source(sources):
    def make(server: FakeKubeAPI, **kwargs: Any) -> tuple[KubeSource, Collector, Sleeper]:
        sleeper = Sleeper()
        kwargs.setdefault("kinds", ("Pod",))
        kwargs.setdefault("watch_timeout", 10)
        kwargs.setdefault("sleep", sleeper)
        kwargs.setdefault("rng", random.Random(7))
        client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=server.url))
        src = KubeSource(client, **kwargs)
        sources.append(src)
        col = Collector()
        src.start(col)
        return src, col, sleeper

    return make


def wait_until(pred: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def pod_watches(api: FakeKubeAPI) -> list:
    return api.requests_to("/api/v1/pods", watch=True)


# --------------------------------------------------------------------------- list


def test_initial_list_is_chunked_and_emits_sync(api, make_source):
    for i in range(5):
        api.create("pods", make_pod(f"p{i}", namespace="ns-a" if i < 3 else "ns-b"))
    rv_after_create = api.resource_version
    src, col, _ = make_source(api, page_size=2)

    events = col.wait_count(5)
    assert names(events) == [("SYNC", f"p{i}") for i in range(5)]
    # list items of built-in types lack kind/apiVersion on the wire; the source fills them in
    assert all(e.obj["kind"] == "Pod" and e.obj["apiVersion"] == "v1" for e in events)
    assert all(e.received > 0 for e in events)

    lists = api.requests_to("/api/v1/pods", watch=False)
    assert [r.query.get("limit") for r in lists] == ["2", "2", "2"]
    assert "continue" not in lists[0].query
    assert all("continue" in r.query for r in lists[1:])
    assert wait_until(lambda: len(pod_watches(api)) == 1)
    watch = pod_watches(api)[0]
    assert watch.query["resourceVersion"] == str(rv_after_create)
    assert watch.query["allowWatchBookmarks"] == "true"
    assert "timeoutSeconds" in watch.query
    assert src.resource_version("Pod") == str(rv_after_create)
    assert src.synced()
    assert src.stats["Pod"]["lists"] == 1 and src.stats["Pod"]["pages"] == 3
    assert src.stats["Pod"]["synced"] == 5
    assert "relists" not in src.stats["Pod"]


def test_watch_delivers_added_modified_deleted_in_order(api, make_source):
    api.create("pods", make_pod("a"))
    api.create("pods", make_pod("b"))
    src, col, _ = make_source(api)
    col.wait_count(2)
    assert api.wait_for_watches(1, "pods")

    api.create("pods", make_pod("c", requests={"nvidia.com/gpu": "1"}))
    api.modify("pods", "a", lambda p: p["metadata"].setdefault("annotations", {}).update({"hami.io/bind-phase": "allocating"}))
    deleted = api.delete("pods", "b")

    events = col.wait_count(5)
    assert names(events[2:]) == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert events[3].obj["metadata"]["annotations"]["hami.io/bind-phase"] == "allocating"
    assert events[2].obj["kind"] == "Pod"
    assert src.resource_version("Pod") == deleted["metadata"]["resourceVersion"]
    assert src.stats["Pod"]["events"] == 3


def test_bookmark_moves_the_resume_resource_version(api, make_source):
    api.create("pods", make_pod("a"))
    src, col, sleeper = make_source(api)
    col.wait_count(1)
    assert api.wait_for_watches(1, "pods")

    api.create("nodes", make_node("n1"))  # bumps the global RV; not seen by the pod watch
    bookmark_rv = str(api.resource_version)
    assert src.resource_version("Pod") != bookmark_rv
    assert api.bookmark("pods") == 1
    assert wait_until(lambda: src.stats["Pod"].get("bookmarks") == 1)
    assert src.resource_version("Pod") == bookmark_rv

    api.drop_watches("pods")
    assert wait_until(lambda: len(pod_watches(api)) == 2)
    assert pod_watches(api)[1].query["resourceVersion"] == bookmark_rv
    assert [e.type for e in col.of()] == ["SYNC"]  # a bookmark is not passed on by default


def test_dropped_connection_resumes_from_last_rv_without_gap_or_duplicate(api, make_source):
    api.create("pods", make_pod("a"))
    api.create("pods", make_pod("b"))
    src, col, sleeper = make_source(api)
    col.wait_count(2)
    assert api.wait_for_watches(1, "pods")
    c = api.create("pods", make_pod("c"))
    col.wait_count(3)

    sleeper.gate.clear()  # keep the source away while things change
    assert api.drop_watches() == 1
    assert sleeper.entered.wait(WAIT)
    api.create("pods", make_pod("d"))
    api.modify("pods", "a", lambda p: p["status"].update({"phase": "Running"}))
    api.delete("pods", "b")
    sleeper.gate.set()

    events = col.wait_count(6)
    time.sleep(0.1)  # nothing more may arrive
    assert names(col.of()) == [
        ("SYNC", "a"), ("SYNC", "b"), ("ADDED", "c"),
        ("ADDED", "d"), ("MODIFIED", "a"), ("DELETED", "b"),
    ]
    assert events[4].obj["status"]["phase"] == "Running"
    watches = pod_watches(api)
    assert len(watches) == 2
    assert watches[1].query["resourceVersion"] == c["metadata"]["resourceVersion"]
    stats = src.stats["Pod"]
    assert stats["errors_connection"] == 1
    assert stats["watch_restarts"] == 1
    assert stats["lists"] == 1
    assert len(sleeper.delays) == 1


def test_server_watch_timeout_rewatches_from_last_rv_without_error(api, make_source):
    api.create("pods", make_pod("a"))
    src, col, sleeper = make_source(api, watch_timeout=1)
    col.wait_count(1)
    assert wait_until(lambda: len(pod_watches(api)) >= 2, timeout=4)
    assert pod_watches(api)[1].query["resourceVersion"] == pod_watches(api)[0].query["resourceVersion"]
    assert pod_watches(api)[0].query["timeoutSeconds"] == "1"
    assert not any(k.startswith("errors_") for k in src.stats["Pod"])
    assert sleeper.delays == []
    api.create("pods", make_pod("b"))
    assert names(col.wait_count(2)) == [("SYNC", "a"), ("ADDED", "b")]


# --------------------------------------------------------------------------- 410


def test_compaction_410_relists_and_synthesizes_deletes(api, make_source):
    for n in ("a", "b", "c"):
        api.create("pods", make_pod(n))
    src, col, sleeper = make_source(api, page_size=2)
    col.wait_count(3)
    assert api.wait_for_watches(1, "pods")
    b_uid = api.get("pods", "b")["metadata"]["uid"]

    sleeper.gate.clear()
    api.drop_watches()
    assert sleeper.entered.wait(WAIT)
    api.delete("pods", "b")
    api.create("pods", make_pod("d"))
    api.modify("pods", "a", lambda p: p["status"].update({"phase": "Running"}))
    api.compact()
    list_rv = str(api.resource_version)
    sleeper.gate.set()

    events = col.wait_count(3 + 4)
    relist = events[3:]
    assert names(relist) == [("SYNC", "a"), ("SYNC", "c"), ("SYNC", "d"), ("DELETED", "b")]
    assert relist[0].obj["status"]["phase"] == "Running"
    tomb = relist[3].obj
    assert tomb["metadata"]["uid"] == b_uid
    assert tomb["metadata"]["namespace"] == "default"
    assert tomb["kind"] == "Pod"
    assert tomb["metadata"]["annotations"][SYNTHETIC_DELETE_ANNOTATION] == "relist"

    stats = src.stats["Pod"]
    assert stats["errors_expired"] == 1
    assert stats["relists"] == 1 and stats["lists"] == 2
    assert stats["deleted_synthesized"] == 1
    # the expired watch, then a watch from the relist's resourceVersion
    assert wait_until(lambda: len(pod_watches(api)) == 3)
    assert pod_watches(api)[2].query["resourceVersion"] == list_rv
    api.create("pods", make_pod("e"))
    assert names(col.wait_count(8)[7:]) == [("ADDED", "e")]


def test_410_error_event_on_an_open_watch_relists(api, make_source):
    api.create("pods", make_pod("a"))
    src, col, sleeper = make_source(api)
    col.wait_count(1)
    assert api.wait_for_watches(1, "pods")
    assert api.expire_watches() == 1
    events = col.wait_count(2)
    assert names(events) == [("SYNC", "a"), ("SYNC", "a")]
    assert src.stats["Pod"]["relists"] == 1
    assert src.stats["Pod"]["errors_expired"] == 1
    assert sleeper.delays == []  # a single 410 relists at once


def test_http_410_on_watch_request_relists(api, make_source):
    api.create("pods", make_pod("a"))
    api.fail_next(1, 410, path="/api/v1/pods", watch=True, reason="Expired")
    src, col, _ = make_source(api)
    events = col.wait_count(2)
    assert names(events) == [("SYNC", "a"), ("SYNC", "a")]
    assert src.stats["Pod"]["errors_expired"] == 1
    assert src.stats["Pod"]["relists"] == 1


# --------------------------------------------------------------------------- errors


def test_http_500_backs_off_exponentially_and_recovers(api, make_source):
    api.create("pods", make_pod("a"))
    api.fail_next(3, 500, path="/api/v1/pods")
    src, col, sleeper = make_source(api, backoff_base=0.5)
    assert names(col.wait_count(1)) == [("SYNC", "a")]
    assert src.stats["Pod"]["errors_http_500"] == 3
    assert len(sleeper.delays) == 3
    for i, d in enumerate(sleeper.delays):
        full = 0.5 * 2**i
        assert full * 0.5 <= d <= full
    assert sleeper.delays == sorted(sleeper.delays)
    assert [r.status for r in api.requests_to("/api/v1/pods", watch=False)] == [500, 500, 500, 200]
    assert api.wait_for_watches(1, "pods")
    api.create("pods", make_pod("b"))
    assert names(col.wait_count(2))[1] == ("ADDED", "b")


def test_backoff_is_capped():
    src = KubeSource(kubernetes.client.ApiClient(), kinds=("Pod",), backoff_base=0.5, backoff_cap=30.0,
                     rng=random.Random(1))
    assert all(15.0 <= src._backoff(n) <= 30.0 for n in (*range(7, 40), 5000, 10**6))


def test_http_503_on_watch_request_backs_off_and_resumes(api, make_source):
    api.create("pods", make_pod("a"))
    api.fail_next(1, 503, path="/api/v1/pods", watch=True)
    src, col, sleeper = make_source(api)
    col.wait_count(1)
    assert wait_until(lambda: api.open_watches("pods") == 1)
    assert src.stats_snapshot()["Pod"]["errors_http_503"] == 1
    assert len(sleeper.delays) == 1
    watches = pod_watches(api)
    assert watches[1].query["resourceVersion"] == watches[0].query["resourceVersion"]
    api.create("pods", make_pod("b"))
    assert names(col.wait_count(2)) == [("SYNC", "a"), ("ADDED", "b")]


def test_bad_lines_are_skipped_and_non_410_error_events_resume_the_watch(api, make_source):
    api.create("pods", make_pod("a"))
    src, col, sleeper = make_source(api)
    col.wait_count(1)
    assert api.wait_for_watches(1, "pods")
    b = api.create("pods", make_pod("b"))
    col.wait_count(2)
    assert api.send_raw("{not json") == 1
    assert api.send_raw('{"type": "ADDED"}') == 1
    assert api.send_raw('{"type": "SURPRISE", "object": {}}') == 1
    error = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcd hiccup",
             "reason": "InternalError", "code": 500}
    assert api.send_raw({"type": "ERROR", "object": error}) == 1
    assert wait_until(lambda: len(pod_watches(api)) == 2)
    stats = src.stats_snapshot()["Pod"]
    assert stats["errors_decode"] == 2
    assert stats["errors_unknown_type"] == 1
    assert stats["errors_watch_InternalError"] == 1
    assert "relists" not in stats
    assert pod_watches(api)[1].query["resourceVersion"] == b["metadata"]["resourceVersion"]
    assert api.wait_for_watches(1, "pods")
    api.create("pods", make_pod("c"))
    assert names(col.wait_count(3)) == [("SYNC", "a"), ("ADDED", "b"), ("ADDED", "c")]


def test_callback_exception_is_counted_and_the_watch_continues(api, sources):
    api.create("pods", make_pod("a"))
    seen: list[str] = []

    def callback(ev: ObjectEvent) -> None:
        seen.append(ev.obj["metadata"]["name"])
        if ev.obj["metadata"]["name"] == "a":
            raise RuntimeError("consumer bug")

    src = KubeSource(kubernetes.client.ApiClient(kubernetes.client.Configuration(host=api.url)),
                     kinds=("Pod",), watch_timeout=10)
    sources.append(src)
    src.start(callback)
    assert wait_until(lambda: api.open_watches("pods") == 1)
    api.create("pods", make_pod("b"))
    assert wait_until(lambda: seen == ["a", "b"])
    assert src.stats["Pod"]["errors_callback"] == 1


def test_start_twice_and_unknown_kind_are_errors(api):
    with pytest.raises(ValueError):
        KubeSource(kubernetes.client.ApiClient(), kinds=("Pod", "Deployment"))
    src = KubeSource(kubernetes.client.ApiClient(kubernetes.client.Configuration(host=api.url)), kinds=("Node",))
    src.start(lambda ev: None)
    try:
        with pytest.raises(RuntimeError):
            src.start(lambda ev: None)
    finally:
        assert src.stop()


def test_from_environment_with_host_and_with_kubeconfig(api, sources, tmp_path):
    api.create("nodes", make_node("n1"))
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
    }))
    for src in (KubeSource.from_environment(host=api.url, kinds=("Node",)),
                KubeSource.from_environment(kubeconfig=str(kubeconfig), kinds=("Node",))):
        sources.append(src)
        col = Collector()
        src.start(col)
        assert names(col.wait_count(1, "Node")) == [("SYNC", "n1")]
    with pytest.raises(kubernetes.config.ConfigException):
        KubeSource.from_environment(kubeconfig=str(tmp_path / "missing"))


# --------------------------------------------------------------------------- kinds and selectors


def test_all_kinds_with_missing_optional_groups_skipped_quietly(api, make_source):
    pod = api.create("pods", make_pod("p", requests={"nvidia.com/gpu": "1"}))
    api.create("nodes", make_node("n1"))
    api.create("events", make_event("e1", involved_name="p", involved_uid=pod["metadata"]["uid"]))
    api.create("events", make_event("e2", involved_kind="Node", involved_name="n1", reason="NodeReady"))
    api.create("events.k8s.io/events", make_event_v1("e3", regarding_name="p"))
    src, col, sleeper = make_source(api, kinds=KINDS)

    assert src.wait_synced(WAIT)
    assert set(src.skipped) == {"PodGroup", "ResourceClaim", "ResourceSlice"}
    for kind in ("PodGroup", "ResourceClaim", "ResourceSlice"):
        assert src.stats[kind] == {"skipped": 1}
        assert src.phase(kind) == "skipped"
    assert sleeper.delays == []
    assert not [r for r in api.requests if "podgroups" in r.path or "resourceclaims" in r.path]
    assert api.requests_to("/apis/scheduling.volcano.sh/v1beta1")[0].status == 404

    col.wait_count(1, "Event")
    col.wait_count(1, "EventV1")
    assert [e.obj["metadata"]["name"] for e in col.of("Event")] == ["e1"]  # Node event filtered out
    assert col.of("EventV1")[0].obj["kind"] == "Event"
    assert col.of("EventV1")[0].obj["apiVersion"] == "events.k8s.io/v1"
    assert [e.obj["metadata"]["name"] for e in col.of("Node")] == ["n1"]
    core_ev = api.requests_to("/api/v1/events", watch=False)[0]
    assert core_ev.query["fieldSelector"] == "involvedObject.kind=Pod"
    v1_ev = api.requests_to("/apis/events.k8s.io/v1/events", watch=False)[0]
    assert v1_ev.query["fieldSelector"] == "regarding.kind=Pod"
    assert "fieldSelector" not in api.requests_to("/api/v1/pods", watch=False)[0].query


def test_installed_volcano_and_dra_groups_are_followed(make_source):
    with FakeKubeAPI(volcano=True, dra=True) as server:
        server.create("scheduling.volcano.sh/podgroups", make_podgroup("pg", min_member=2))
        server.create("resource.k8s.io/resourceslices", {"metadata": {"name": "node-a-gpu"},
                                                         "spec": {"nodeName": "node-a", "driver": "gpu.example.com"}})
        src, col, _ = make_source(server, kinds=("PodGroup", "ResourceClaim", "ResourceSlice"))
        assert src.wait_synced(WAIT)
        assert src.skipped == ()
        pg = col.wait_count(1, "PodGroup")[0]
        assert pg.type == "SYNC" and pg.obj["spec"]["minMember"] == 2
        assert pg.obj["apiVersion"] == "scheduling.volcano.sh/v1beta1"
        assert col.wait_count(1, "ResourceSlice")[0].obj["kind"] == "ResourceSlice"
        assert server.wait_for_watches(3)
        server.create("resource.k8s.io/resourceclaims", {"metadata": {"name": "claim", "namespace": "ml"}})
        assert col.wait_count(1, "ResourceClaim")[0].type == "ADDED"
        assert server.requests_to("/apis/resource.k8s.io/v1/resourceclaims", watch=True)


def test_namespace_and_pod_selectors_are_sent(api, make_source):
    api.create("pods", make_pod("keep", namespace="ml", labels={"team": "ml"}))
    api.create("pods", make_pod("other", namespace="ml", labels={"team": "web"}))
    api.create("pods", make_pod("elsewhere", namespace="web", labels={"team": "ml"}))
    src, col, _ = make_source(api, namespace="ml", pod_label_selector="team=ml",
                              pod_field_selector="status.phase!=Succeeded")
    assert names(col.wait_count(1)) == [("SYNC", "keep")]
    req = api.requests_to("/api/v1/namespaces/ml/pods", watch=False)[0]
    assert req.query["labelSelector"] == "team=ml"
    assert req.query["fieldSelector"] == "status.phase!=Succeeded"
    assert api.wait_for_watches(1, "pods")
    # leaving the selector arrives as DELETED (the real API's watch semantics)
    api.modify("pods", "keep", lambda p: p["metadata"]["labels"].update({"team": "web"}), namespace="ml")
    assert names(col.wait_count(2)) == [("SYNC", "keep"), ("DELETED", "keep")]


# --------------------------------------------------------------------------- stop


def test_stop_returns_promptly_while_watching(api, make_source):
    api.create("pods", make_pod("a"))
    src, col, _ = make_source(api, kinds=("Pod", "Node", "Event"), watch_timeout=60)
    col.wait_count(1)
    assert api.wait_for_watches(3)
    t0 = time.monotonic()
    assert src.stop(timeout=2.0)
    assert time.monotonic() - t0 < 2.0
    assert all(src.phase(k) == "stopped" for k in ("Pod", "Node", "Event"))


def test_stop_cuts_a_long_backoff(api, sources):
    api.fail_next(100, 500, path="/api/v1/pods")
    src = KubeSource(kubernetes.client.ApiClient(kubernetes.client.Configuration(host=api.url)),
                     kinds=("Pod",), backoff_base=20.0)
    sources.append(src)
    src.start(lambda ev: None)
    assert wait_until(lambda: src.phase("Pod") == "backoff")
    t0 = time.monotonic()
    assert src.stop(timeout=2.0)
    assert time.monotonic() - t0 < 1.0


# --------------------------------------------------------------------------- the fake itself


def test_fake_continue_token_expires_after_compaction(api):
    for i in range(3):
        api.create("pods", make_pod(f"p{i}"))
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kubernetes.client.Configuration(host=api.url)))
    first = json.loads(core.list_pod_for_all_namespaces(limit=1, _preload_content=False).data)
    assert first["metadata"]["remainingItemCount"] == 2
    api.delete("pods", "p2")
    second = json.loads(core.list_pod_for_all_namespaces(
        limit=5, _continue=first["metadata"]["continue"], _preload_content=False).data)
    assert [i["metadata"]["name"] for i in second["items"]] == ["p1", "p2"]  # consistent snapshot
    api.compact()
    with pytest.raises(kubernetes.client.ApiException) as err:
        core.list_pod_for_all_namespaces(limit=1, _continue=first["metadata"]["continue"], _preload_content=False)
    assert err.value.status == 410
    assert json.loads(err.value.body)["reason"] == "Expired"
    with pytest.raises(kubernetes.client.ApiException) as err:
        core.list_pod_for_all_namespaces(field_selector="spec.containers=x", _preload_content=False)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=x", ["a"]),
        ("app!=x", ["b", "c"]),
        ("app in (x,y)", ["a", "b"]),
        ("app notin (x)", ["b", "c"]),
        ("app", ["a", "b"]),
        ("!app", ["c"]),
        ("app=y,tier", ["b"]),
    ],
)
def test_fake_label_selectors(api, selector, expected):
    api.create("pods", make_pod("a", labels={"app": "x"}))
    api.create("pods", make_pod("b", labels={"app": "y", "tier": "1"}))
    api.create("pods", make_pod("c"))
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kubernetes.client.Configuration(host=api.url)))
    body = json.loads(core.list_pod_for_all_namespaces(label_selector=selector, _preload_content=False).data)
    assert [i["metadata"]["name"] for i in body["items"]] == expected


# --------------------------------------------------------------------------- pod_is_relevant


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], **spec}}


@pytest.mark.parametrize(
    "pod",
    [
        make_pod("g", requests={"nvidia.com/gpu": "1"}),
        make_pod("g", limits={"nvidia.com/gpumem": "3000"}),
        make_pod("g", limits={"huawei.com/Ascend910": "1"}),
        make_pod("g", requests={"hygon.com/dcunum": "1"}),
        _pod(initContainers=[{"name": "i", "resources": {"limits": {"cambricon.com/vmlu": "1"}}}]),
        make_pod("a", annotations={"hami.io/vgpu-node": "node-1"}),
        make_pod("a", annotations={"volcano.sh/task-spec": "worker"}),
        make_pod("a", annotations={"metax-tech.com/gpu-devices-allocated": "x"}),
        make_pod("a", annotations={"huawei.com/Ascend910B3": "[]"}),
        make_pod("a", annotations={"predicate-time": "1760929506"}),
        make_pod("a", annotations={"enflame.com/gcu-assigned-id": "0"}),
        make_pod("a", annotations={"example.com/foo-devices-to-allocate": ";"}),
        make_pod("s", scheduler_name="volcano"),
        make_pod("s", scheduler_name="hami-scheduler"),
        _pod(resourceClaims=[{"name": "gpu", "resourceClaimName": "c"}]),
    ],
)
def test_pod_is_relevant_true(pod):
    assert pod_is_relevant(pod) is True


@pytest.mark.parametrize(
    "pod",
    [
        make_pod("plain", requests={"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}),
        make_pod("huge", limits={"hugepages-2Mi": "1Gi"}),
        make_pod("native", requests={"kubernetes.io/batch-cpu": "1"}),
        make_pod("ann", annotations={"prometheus.io/scrape": "true", "kubectl.kubernetes.io/restartedAt": "x"}),
        _pod(schedulerName="default-scheduler", resourceClaims=[]),
        _pod(),
        {},
        {"spec": None, "metadata": None},
        {"spec": {"containers": [None, {"resources": "bad"}, {"resources": {"limits": ["nvidia.com/gpu"]}}]}},
        {"spec": {"containers": "x", "schedulerName": 5}, "metadata": {"annotations": ["hami.io/x"]}},
        "not a pod",  # type: ignore[list-item]
    ],
)
def test_pod_is_relevant_false(pod):
    assert pod_is_relevant(pod) is False


def test_kind_specs_cover_stream_kinds():
    assert set(KIND_SPECS) == set(KINDS)


def test_optional_kind_forbidden_by_rbac_is_skipped_and_sync_completes(make_source):
    """DRA and Volcano are followed only when RBAC grants them: a 403 on an
    optional kind skips it, so /readyz does not wait for it forever."""
    with FakeKubeAPI(volcano=True) as server:
        server.fail_next(100, status=403, path="/apis/scheduling.volcano.sh/v1beta1/podgroups")
        src, col, _ = make_source(server, kinds=("Pod", "PodGroup"))
        assert src.wait_synced(5)
        assert "PodGroup" in src.skipped
        assert src.stats_snapshot()["PodGroup"].get("errors_forbidden") == 1
