"""The simulator's Kubernetes emission (``scheduler_events/simulate/emit.py``)
fed through the collector: the collector's view must be the simulator's.

* small clusters from the embedded workload profile, every policy family:
  each placed pod is ``placed`` on the same node with the same device UUIDs,
  memory and cores; each failed pod is ``pending`` with the emitted primary
  reason and a FailedScheduling text that decodes with no error; per-device
  usage equals the simulator's; the FragmentationView's fragmentation equals
  the simulator's ClusterFragmentation for the same workload M, within the
  engine's 1-milli rounding (see ``_compare_fragmentation``);
* hand-built clusters where the exact HAMi / kube-scheduler texts are known;
* the JSON-lines round trip through the replay source;
* the embedded profile equals what the generator computes from the trace.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from scheduler_events.decisions import DecisionEngine
from scheduler_events.decoders.hami_events import decode_hami_event
from scheduler_events.decoders.hami_node import decode_node_register
from scheduler_events.decoders.kube_scheduler import decode_failed_scheduling
from scheduler_events.fragmentation import ClusterFragmentation, NodeState, Shape, Workload
from scheduler_events.fragmentation_view import FragmentationView
from scheduler_events.simulate.emit import GPU_MODELS, Emitter, device_uuid, emit, gpu_model, write_jsonl
from scheduler_events.simulate.policies import HAMi
from scheduler_events.simulate.profile import (
    EMBEDDED_PROFILE,
    ProfileError,
    load_profile,
    profile_from_trace,
    sample_nodes,
    sample_pods,
)
from scheduler_events.simulate.trace import TracePod
from scheduler_events.sources.replay import ReplayStream
from tests.conftest import SHARED

TRACE = SHARED / "trace" / "cluster-trace-gpu-v2023"
START = 1767225600.0  # 2026-01-01T00:00:00Z
MIB = 1024 * 1024
NS = "sim"


@pytest.fixture(scope="module")
def profile():
    return load_profile()


def _engine(events) -> DecisionEngine:
    eng = DecisionEngine()
    for ev in events:
        eng.apply(ev)
    return eng


def _node(name: str, model: str, gpus: int, cpu: int = 64000, mem: int = 262144) -> NodeState:
    return NodeState(name, model, cpu, mem, cpu, mem, [1000] * gpus)


def _pod(name: str, cpu: int, num_gpu: int, milli: int, *, mem: int = 4096, types=frozenset()) -> TracePod:
    return TracePod(name, Shape(cpu, num_gpu, milli, frozenset(types), mem), 0)


def _view_workload(workload: Workload, models) -> list[tuple[Shape, float]]:
    """M with the trace's model codes turned into the names the collector
    sees (``NVIDIA-Tesla T4`` registers as model ``Tesla T4``)."""
    names = {m: gpu_model(m).nvml_name for m in models}
    return [(Shape(s.cpu_milli, s.num_gpu, s.gpu_milli, frozenset(names.get(t, t) for t in s.gpu_types)), p)
            for s, p in workload.shapes]


def _check_agreement(events, res) -> DecisionEngine:
    """Every claim of the module docstring's first item, but fragmentation."""
    assert res.mismatches == []
    eng = _engine(events)
    assert dict(eng.errors) == {}
    assert eng.orphans_pending() == 0
    for name, pl in res.placed.items():
        d = eng.decision(NS, name)
        assert d is not None and d.outcome == "placed", name
        assert d.node == pl.node
        assert [a.uuid for a in d.devices] == pl.devices
        assert [a.memory_bytes // MIB for a in d.devices] == pl.memory_mib
        assert [round((a.core_ratio or 0) * 100) for a in d.devices] == pl.cores
        assert d.running is not None and d.bind_phase == ("success" if pl.devices else None)
    for name, f in res.pending.items():
        d = eng.decision(NS, name)
        assert d is not None and d.outcome == "pending", name
        assert d.primary_reason == f.primary_reason, (name, f.message)
        # the full text: the event note when it was not cut, else the PodScheduled condition
        assert d.message == f.message
        assert d.message_source == ("event" if len(f.message.encode()) <= 1024 else "condition")
        assert d.nodes_total == res.nodes
        fs = decode_failed_scheduling(f.message)
        assert fs.all_errors() == () and fs.total_nodes == res.nodes and not fs.truncated
        counts = Counter()
        for r in d.rejections:
            counts[r.code] += r.nodes
        assert dict(counts) == f.reasons
    live = {t.decision.name for t in eng.pods.values()}
    assert live == set(res.placed) | set(res.pending)
    for name in res.departed:
        assert name not in live
    usage = eng.device_usage()
    assert set(usage) >= set(res.devices)
    for uuid, u in usage.items():
        want = res.devices.get(uuid, {"memory_mib": 0, "cores": 0, "tasks": 0})
        assert (u["memory_allocated"] // MIB, round(u["cores_allocated"] * 100), u["shared"]) == \
            (want["memory_mib"], want["cores"], want["tasks"]), uuid
    # every HAMi event and kube-scheduler text decodes cleanly
    for ev in events:
        if ev.kind != "Event":
            continue
        reason, msg = ev.obj["reason"], ev.obj["message"]
        if reason == "FailedScheduling":
            assert len(msg.encode()) <= 1024
            assert decode_failed_scheduling(msg).all_errors() == ()
        elif reason in ("FilteringSucceed", "FilteringFailed", "BindingSucceed"):
            he = decode_hami_event(reason, msg)
            assert he.errors == () and he.kind != "unknown", msg
            assert len(msg.encode()) <= 1024
    return eng


def _compare_fragmentation(eng: DecisionEngine, res, *, tol_rate: float = 0.005) -> None:
    """The collector's FragmentationView, fed the simulator's M, against the
    simulator's ClusterFragmentation.

    Two deliberate differences, both on the engine's side:
    * a device running ``deviceSplitCount`` tasks is full for HAMi, and the
      view counts it as 0 free; the simulator's node state keeps its free
      milli-GPU, so the expected value zeroes such devices too;
    * the view turns a device's free share into milli-GPU with ``int()``,
      so 1 - 0.81 = 0.18999999999999995 becomes 189, not 190: each device
      may be 1 milli lower (reported; not fixed here).
    """
    models = {n.gpu_type for n in res.cluster.nodes}
    view = FragmentationView(eng, fallback=_view_workload(res.workload, models), min_pods=10**9)
    view.refresh()
    assert view.workload_source == "configured"
    sim = {n.name: n for n in res.nodes_state()}
    by_name = {n.name: i for i, n in enumerate(res.cluster.nodes)}
    expected = ClusterFragmentation(Workload.from_weights(_view_workload(res.workload, models)))
    for name, st in view.states.items():
        s = sim[name]
        tasks = res.cluster.tasks[by_name[name]]
        want = [0 if t >= res.split_count else f for f, t in zip(s.gpu_free_milli, tasks)]
        assert st.cpu_free_milli == s.cpu_free_milli and st.memory_free_mib == s.memory_free_mib, name
        assert all(0 <= w - v <= 1 for v, w in zip(st.gpu_free_milli, want)), (name, st.gpu_free_milli, want)
        assert st.gpu_type == gpu_model(s.gpu_type).nvml_name
        expected.set_node(NodeState(name, st.gpu_type, s.cpu_milli, s.memory_mib, s.cpu_free_milli,
                                    s.memory_free_mib, want))
    assert set(view.states) == set(sim)
    ndev = sum(len(n.gpu_free_milli) for n in sim.values())
    assert 0 <= expected.free_milli - view.cluster.free_milli <= ndev
    assert view.cluster.rate() == pytest.approx(expected.rate(), abs=tol_rate)
    # without split-exhausted devices the simulator's own measure is the expected one
    if all(t < res.split_count for ts in res.cluster.tasks for t in ts):
        assert expected.rate() == pytest.approx(res.fragmentation().rate(), abs=1e-9)


# --------------------------------------------------------------------------- profile clusters


@pytest.mark.parametrize("policy", ["hami-binpack-spread", "fgd", "bestfit", "random"])
def test_small_g2_cluster_collector_agrees(profile, policy):
    """4 nodes x 8 GPUs (the trace's G2 nodes), 40 pods from the embedded profile."""
    g2 = next(m for m in profile.node_models if m.model == "G2")
    nodes = [g2.node(f"g2-{i}") for i in range(4)]
    pods = sample_pods(profile, 40, seed=7)
    events, res = emit(nodes, pods, policy, seed=7, start=START, workload=profile.workload())
    assert res.arrived == 40 and res.placements + res.failures == 40
    assert res.placed and res.pending  # both paths exercised
    eng = _check_agreement(events, res)
    _compare_fragmentation(eng, res)
    # the clock: nodes at start, pods one second apart
    assert events[0].kind == "Node" and events[0].received == START
    assert all(a.received <= b.received for a, b in zip(events, events[1:]))
    assert max(e.received for e in events) < START + 40


@pytest.mark.parametrize("policy", ["hami-binpack-spread", "fgd"])
def test_heterogeneous_cluster_with_departures(profile, policy):
    """12 nodes of the trace's mix (G2, T4, P100...), 150 pods, a third of
    the placed pods deleted later and pending pods retried."""
    nodes = sample_nodes(profile, 12)
    assert len({n.gpu_type for n in nodes}) >= 3
    pods = sample_pods(profile, 150, seed=3)
    events, res = emit(nodes, pods, policy, seed=3, start=START, workload=profile.workload(),
                       depart_fraction=0.35, mean_lifetime_pods=25)
    assert res.departed and res.events["Pod/DELETED"] == len(res.departed)
    eng = _check_agreement(events, res)
    _compare_fragmentation(eng, res)
    assert res.pending and res.retried_placements  # pods still pending; some placed on a retry
    # the observed workload: the collector reads each placed pod's shape back
    # exactly (gpumem never exceeds the core share, see emit's docstring)
    view = FragmentationView(eng)
    view.refresh()
    median = view._device_memory_median()  # noqa: SLF001
    for name in res.placed:
        d = eng.decision(NS, name)
        shape = next(p.shape for p in pods if p.name == name)
        got = view.shape_of(d, median)
        if shape.num_gpu == 0:
            assert got is None
        else:
            assert (got.cpu_milli, got.num_gpu, got.gpu_milli) == (shape.cpu_milli, shape.num_gpu, shape.gpu_milli)


def test_jsonl_round_trip_and_determinism(profile, tmp_path):
    nodes = sample_nodes(profile, 6)
    pods = sample_pods(profile, 60, seed=1)
    events, res = emit(nodes, pods, "hami", seed=1, start=START, depart_fraction=0.2)
    again, res2 = emit(nodes, pods, "hami", seed=1, start=START, depart_fraction=0.2)
    assert [e.to_json() for e in events] == [e.to_json() for e in again]
    path = tmp_path / "sim.jsonl"
    assert write_jsonl(iter(events), path) == len(events)
    rs = ReplayStream(path)
    replayed = list(rs)
    assert rs.format == "jsonl" and dict(rs.errors) == {}
    assert [(e.kind, e.type, e.received, e.obj) for e in replayed] == \
        [(e.kind, e.type, e.received, e.obj) for e in events]
    _check_agreement(replayed, res)
    assert res.event_count == len(events) == sum(res.events.values())


def test_node_objects(profile):
    nodes = [_node("n-t4", "T4", 4), _node("n-g2", "G2", 8)]
    em = Emitter(nodes, [], "hami", start=START)
    objs = {e.obj["metadata"]["name"]: e.obj for e in em.events()}
    assert set(objs) == {"n-t4", "n-g2"}
    t4 = objs["n-t4"]
    ann = t4["metadata"]["annotations"]
    assert ann["hami.io/node-handshake"] == "Requesting_2026-01-01 00:00:00"
    raw = json.loads(ann["hami.io/node-nvidia-register"])
    assert raw[0] == {"id": device_uuid("n-t4", 0), "count": 10, "devmem": 15360, "devcore": 100,
                      "type": "NVIDIA-Tesla T4", "mode": "hami-core", "health": True}
    assert raw[3]["index"] == 3 and raw[3]["numa"] == 1 and "numa" not in raw[1]
    reg = decode_node_register(ann["hami.io/node-nvidia-register"], "hami.io/node-nvidia-register")
    assert reg.errors == () and [d.id for d in reg.devices] == [device_uuid("n-t4", g) for g in range(4)]
    inv = em.result.inventory
    assert len(inv) == 12 and inv[0]["node"] == "n-g2" and inv[-1] == {
        "node": "n-t4", "index": 3, "uuid": device_uuid("n-t4", 3), "model": "T4", "type": "NVIDIA-Tesla T4",
        "memory_mib": 15360, "split_count": 10}
    assert t4["status"]["allocatable"] == {"cpu": "64", "memory": "262144Mi", "pods": "110", "nvidia.com/gpu": "40"}
    assert device_uuid("n-t4", 0) == device_uuid("n-t4", 0) != device_uuid("n-t4", 1)
    assert all(m.type == f"NVIDIA-{m.nvml_name}" for m in GPU_MODELS.values())


def test_gpu_type_filter_uses_hami_substring_semantics():
    """HAMi matches ``use-gputype`` as a substring of the device type, so
    "NVIDIA A10" also matches "NVIDIA-NVIDIA A100-SXM4-40GB": the emitter
    excludes the A100 with ``nouse-gputype`` and the pod waits for the A10."""
    nodes = [_node("a100", "A100", 1), _node("a10", "A10", 1)]
    pods = [_pod("w", 1000, 1, 1000, types={"A10"}), _pod("again", 1000, 1, 1000, types={"A10"})]
    events, res = emit(nodes, pods, "hami", seed=0, start=START)
    _check_agreement(events, res)
    assert res.placed["w"].node == "a10"
    first = next(e.obj for e in events if e.kind == "Pod" and e.obj["metadata"]["name"] == "w")
    ann = first["metadata"]["annotations"]
    assert ann["nvidia.com/use-gputype"] == "NVIDIA A10" and ann["nvidia.com/nouse-gputype"] == "NVIDIA A100-SXM4-40GB"
    assert res.pending["again"].message == (f"0/2 nodes are available: 1 1/1 CardInsufficientMemory, "
                                            f"1 1/1 CardTypeMismatch. {FOOT.format(n=2)}")


# --------------------------------------------------------------------------- exact texts


FOOT = "preemption: 0/{n} nodes are available: {n} No preemption victims found for incoming pod."


def test_reason_texts_memory_core_device_type_cpu():
    """T4 x 2 and V100-32GB x 1: every placement is forced, so the texts are known."""
    nodes = [_node("a-t4", "T4", 2, cpu=8000), _node("b-v100", "V100M32", 1, cpu=8000)]
    pods = [
        _pod("p0-whole2", 1000, 2, 1000),            # only a-t4 has 2 GPUs
        _pod("p1-share", 1000, 1, 600),              # only b-v100 is free
        _pod("p2-share", 1000, 1, 600),              # b-v100: memory fits, cores do not
        _pod("p3-whole2", 1000, 2, 1000),            # b-v100 has one device
        _pod("p4-cpu", 9000, 0, 0),                  # more CPU than any node
        _pod("p5-a10", 1000, 1, 300, types={"A10"}),  # no A10 in the cluster
    ]
    events, res = emit(nodes, pods, "hami-binpack-spread", seed=0, start=START)
    eng = _check_agreement(events, res)
    assert set(res.placed) == {"p0-whole2", "p1-share"}
    share = res.placed["p1-share"]
    # gpumem = 600 milli of the smallest device the pod may land on (T4: 15360 MiB)
    assert (share.node, share.memory_mib, share.cores) == ("b-v100", [9216], [60])
    whole = res.placed["p0-whole2"]
    assert whole.memory_mib == [15360, 15360] and whole.cores == [0, 0]
    d = eng.decision(NS, "p1-share")
    assert d.requests[0].memory_bytes == 9216 * MIB and d.requests[0].core_ratio == 0.6
    foot = FOOT.format(n=2)
    msgs = {k: v.message for k, v in res.pending.items()}
    assert msgs["p2-share"] == f"0/2 nodes are available: 1 1/1 CardInsufficientCore, 1 2/2 CardInsufficientMemory. {foot}"
    assert msgs["p3-whole2"] == f"0/2 nodes are available: 1 2/2 CardInsufficientMemory, 1 NodeInsufficientDevice. {foot}"
    assert msgs["p4-cpu"] == f"0/2 nodes are available: 2 Insufficient cpu. {foot}"
    assert msgs["p5-a10"] == f"0/2 nodes are available: 1 1/1 CardTypeMismatch, 1 2/2 CardTypeMismatch. {foot}"
    prim = {k: v.primary_reason for k, v in res.pending.items()}
    assert prim == {"p2-share": "CardInsufficientMemory", "p3-whole2": "CardInsufficientMemory",
                    "p4-cpu": "insufficient_resource", "p5-a10": "CardTypeMismatch"}
    # HAMi's own events: summary + one per card code (NodeInsufficientDevice is never among them)
    ff = [(e.obj["involvedObject"]["name"], e.obj["message"]) for e in events if e.kind == "Event"
          and e.obj["reason"] == "FilteringFailed"]
    assert ff == [
        ("p2-share", "no available node, 2 nodes do not meet"),
        ("p2-share", "1 nodes CardInsufficientCore(b-v100)"),
        ("p2-share", "1 nodes CardInsufficientMemory(a-t4)"),
        ("p3-whole2", "no available node, 2 nodes do not meet"),
        ("p3-whole2", "1 nodes CardInsufficientMemory(a-t4)"),
        ("p5-a10", "no available node, 2 nodes do not meet"),
        ("p5-a10", "2 nodes CardTypeMismatch(a-t4,b-v100)"),
    ]
    pod5 = [e.obj for e in events if e.kind == "Pod" and e.obj["metadata"]["name"] == "p5-a10"][0]
    assert pod5["metadata"]["annotations"]["nvidia.com/use-gputype"] == "NVIDIA A10"
    # a CPU-only pod: no HAMi events at all
    reasons = Counter((e.obj["involvedObject"]["name"], e.obj["reason"]) for e in events if e.kind == "Event")
    assert {r for (n, r) in reasons if n == "p4-cpu"} == {"FailedScheduling"}
    assert {r for (n, r) in reasons if n == "p0-whole2"} == {"FilteringSucceed", "BindingSucceed", "Scheduled"}


def test_reason_texts_partial_fit_and_split_count():
    """AllocatedCardsInsufficientRequest (some cards fit, too few) and
    CardTimeSlicingExhausted (HAMi's deviceSplitCount, 2 here)."""
    events, res = emit([_node("x", "T4", 2)], [_pod("s", 1000, 1, 300), _pod("w", 1000, 2, 1000)],
                       "hami", seed=0, start=START)
    _check_agreement(events, res)
    assert res.pending["w"].message == (f"0/1 nodes are available: 1 1/2 AllocatedCardsInsufficientRequest, "
                                        f"1/2 CardInsufficientMemory. {FOOT.format(n=1)}")
    pods = [_pod("w0", 1000, 1, 1000), _pod("s1", 1000, 1, 100), _pod("s2", 1000, 1, 100), _pod("s3", 1000, 1, 100)]
    events, res = emit([_node("z", "T4", 2)], pods, HAMi("binpack", "binpack", split_count=2), seed=0, start=START)
    eng = _check_agreement(events, res)
    assert res.split_count == 2
    assert res.pending["s3"].message == (f"0/1 nodes are available: 1 1/2 CardInsufficientMemory, "
                                         f"1/2 CardTimeSlicingExhausted. {FOOT.format(n=1)}")
    # the collector counts the split-exhausted device as full; the simulator's
    # node state still has 800 milli free on it (see _compare_fragmentation)
    view = FragmentationView(eng, min_pods=10**9)
    view.refresh()
    assert sorted(view.states["z"].gpu_free_milli) == [0, 0]
    assert sorted(res.cluster.nodes[0].gpu_free_milli) == [0, 800]
    _compare_fragmentation(eng, res)


def test_long_reason_lists_are_capped():
    """A pod that fails on 120 nodes: FilteringFailed lists are cut to 1 KiB
    (count kept), FailedScheduling stays one grouped entry."""
    nodes = [_node(f"node-{i:03d}", "T4", 1, cpu=4000) for i in range(120)]
    pods = [_pod(f"w{i:03d}", 1000, 1, 1000) for i in range(120)] + [_pod("late", 1000, 1, 1000)]
    events, res = emit(nodes, pods, "bestfit", seed=0, start=START)
    _check_agreement(events, res)
    assert res.pending["late"].message == f"0/120 nodes are available: 120 1/1 CardInsufficientMemory. {FOOT.format(n=120)}"
    ff = [e.obj["message"] for e in events if e.kind == "Event" and e.obj["reason"] == "FilteringFailed"]
    detail = decode_hami_event("FilteringFailed", ff[1]).detail
    assert detail.node_count == 120 and 0 < len(detail.nodes) < 120 and len(ff[1]) <= 1024


def test_emitter_rejects_bad_options():
    with pytest.raises(ValueError):
        Emitter([], [], "hami")
    with pytest.raises(ValueError):
        Emitter([_node("a", "T4", 1)], [], "nope")
    with pytest.raises(ValueError):
        Emitter([_node("a", "T4", 1)], [], "hami", seconds_per_pod=0)
    em = Emitter([_node("a", "T4", 1)], [], "hami")
    list(em.events())
    with pytest.raises(RuntimeError):
        list(em.events())


# --------------------------------------------------------------------------- profile


def test_profile_sampling(profile):
    assert profile.total_nodes == 1213 and profile.total_gpus == 6212 and profile.total_pods == 8152
    nodes = sample_nodes(profile, 40)
    mix = Counter((n.gpu_type, len(n.gpu_free_milli)) for n in nodes)
    assert len(nodes) == 40 and mix[("G2", 8)] == 18 and mix[("T4", 2)] == 13
    assert [n.name for n in nodes] == [n.name for n in sample_nodes(profile, 40)]
    pods = sample_pods(profile, 500, seed=5)
    assert [p.shape for p in pods] == [p.shape for p in sample_pods(profile, 500, seed=5)]
    assert len({p.name for p in pods}) == 500
    # the draw follows the trace's distribution (whole-GPU pods are 48% there)
    whole = sum(p.shape.num_gpu == 1 and p.shape.gpu_milli == 1000 for p in pods) / len(pods)
    assert 0.40 < whole < 0.56
    assert len(profile.workload().shapes) == 35  # the reference's typical pods at 95%


def test_profile_errors(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(ProfileError, match="not JSON"):
        load_profile(bad)
    bad.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(ProfileError, match="not an accelscope workload profile"):
        load_profile(bad)
    data = json.loads(EMBEDDED_PROFILE.read_text(encoding="utf-8"))
    data["pods"]["shapes"][0][3] = 1500
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"pods.shapes\[0\]"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.json")


def test_embedded_profile_is_the_trace_profile():
    """The committed profile is exactly what the generator computes from the real trace."""
    if not (TRACE / "openb_node_list_gpu_node.csv").is_file() or not (TRACE / "openb_pod_list_default.csv").is_file():
        pytest.skip(f"the Alibaba trace is not at {TRACE} (set ACCELSCOPE_SHARED); cannot regenerate the profile")
    committed = json.loads(EMBEDDED_PROFILE.read_text(encoding="utf-8"))
    assert profile_from_trace(TRACE) == committed
    assert EMBEDDED_PROFILE.stat().st_size < 10_000
