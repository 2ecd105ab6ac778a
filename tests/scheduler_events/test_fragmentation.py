"""FGD fragmentation model (issue 4 part 1): exact hand-computed values for each
case of F_n(m) (scheduling-signals.md §5.1), F_n(M), the rate, FGD's choice,
incremental == full recompute, the cheap signals, and the empty Alibaba cluster.

Units: milli-GPU (1000 = one GPU)."""

from __future__ import annotations

import csv
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_events.fragmentation import (
    ClusterFragmentation,
    NodeState,
    Shape,
    Workload,
    blocked_by_fragmentation,
    fgd_choice,
    fits,
    largest_gpu_request,
    largest_placeable,
    node_fragmentation,
    node_fragmentation_workload,
    place,
    stranded_gpus,
    unplace,
    unplaceable_free,
    workload_from_counts,
)
from tests.conftest import SHARED

TRACE = SHARED / "trace" / "cluster-trace-gpu-v2023"


def node(name="a", gpus=(1000, 1000, 500, 200), cpu=10000, mem=1000, gtype="G2", pods=None) -> NodeState:
    return NodeState(name, gtype, cpu, mem, cpu, mem, list(gpus), pods)


# ---------------------------------------------------------------- F_n(m), §5.1 cases
# node a: 4 GPUs free 1000, 1000, 500, 200 -> 2700 milli free, of which 700 on partly used GPUs


def test_case1_cpu_lack():
    assert node_fragmentation(node(), Shape(20000, 1, 1000)) == 2700
    assert node_fragmentation(node(), Shape(10000, 1, 1000)) == 700  # exactly enough CPU: Case 2


def test_case1_gpu_type_mismatch():
    assert node_fragmentation(node(), Shape(1000, 1, 1000, frozenset({"T4"}))) == 2700
    assert node_fragmentation(node(), Shape(1000, 1, 1000, frozenset({"T4", "G2"}))) == 700


def test_case1_not_enough_gpus():
    assert node_fragmentation(node(), Shape(1000, 3, 1000)) == 2700  # 2 idle GPUs < 3
    assert node_fragmentation(node(), Shape(1000, 2, 1000)) == 700  # fits: partial GPUs 500 + 200
    # sharing task with no GPU of >= 600 free: all free GPU
    assert node_fragmentation(node(gpus=(500, 200)), Shape(1000, 1, 600)) == 700


def test_case2_sharing_vs_whole():
    n = node()
    assert node_fragmentation(n, Shape(1000, 1, 1000)) == 700  # GPUs < 1000 free: 500 + 200
    assert node_fragmentation(n, Shape(1000, 1, 400)) == 200  # GPUs < 400: only 200
    assert node_fragmentation(n, Shape(1000, 1, 600)) == 700  # GPUs < 600: 500 + 200
    assert node_fragmentation(n, Shape(1000, 1, 200)) == 0  # every GPU can take 200
    assert node_fragmentation(node(gpus=(1000, 1000)), Shape(1000, 2, 1000)) == 0


def test_cpu_only_task_counts_all_free_gpu():
    assert node_fragmentation(node(), Shape(1000, 0, 0)) == 2700
    assert fits(node(), Shape(1000, 0, 0)) == []  # although it fits
    assert node_fragmentation(node(gpus=()), Shape(1000, 0, 0)) == 0  # GPU-less node
    assert node_fragmentation(node(gpus=()), Shape(1000, 1, 1000)) == 0


def test_memory_and_pods_do_not_enter_f_but_do_enter_fits():
    n = node(mem=0, pods=0)
    s = Shape(1000, 1, 400, memory_mib=100)
    assert node_fragmentation(n, s) == 200  # reference frag.go: CPU and GPU only
    assert fits(n, s) is None
    assert unplaceable_free([n], s) == 2700  # the signal uses fits' feasibility


# ---------------------------------------------------------------- F_n(M), F_N(M), rate

M = Workload(((Shape(1000, 1, 400), 0.5), (Shape(1000, 2, 1000), 0.25), (Shape(1000, 0, 0), 0.25)))


def test_node_fragmentation_workload():
    # 0.5 * 200 + 0.25 * 700 + 0.25 * 2700 = 100 + 175 + 675
    assert node_fragmentation_workload(node(), M) == pytest.approx(950.0)
    # node b (300, 200): every shape is Case 1 -> all 500
    assert node_fragmentation_workload(node("b", (300, 200)), M) == pytest.approx(500.0)


def test_cluster_total_and_rate():
    cf = ClusterFragmentation(M)
    assert cf.rate() == 0.0 and cf.total_milli == 0.0  # empty: nothing free
    cf.set_node(node())
    cf.set_node(node("b", (300, 200)))
    cf.set_node(node("c", ()))
    assert cf.free_milli == 3200
    assert cf.total_milli == pytest.approx(1450.0)
    assert cf.rate() == pytest.approx(1450 / 3200)  # 0.453125
    assert cf.node("a") == pytest.approx(950.0)
    assert cf.top(5) == [("a", pytest.approx(950.0)), ("b", pytest.approx(500.0))]
    assert cf.top(1)[0][0] == "a"
    assert cf.by_gpu_type() == {"G2": (pytest.approx(1450.0), 3200)}
    cf.remove_node("a")
    assert cf.free_milli == 500 and cf.total_milli == pytest.approx(500.0) and cf.rate() == pytest.approx(1.0)
    # a workload change recomputes: with only 200-milli sharing tasks node b is unfragmented
    cf.set_workload(Workload(((Shape(1000, 1, 200), 1.0),)))
    assert cf.total_milli == 0.0


def test_workload_from_counts():
    a, b, c = Shape(1000, 1, 500), Shape(2000, 1, 1000), Shape(500, 0, 0)
    w = workload_from_counts({a: 50, b: 30, c: 20, Shape(1000, 1, 500, memory_mib=10): 0}, 0.6)
    assert w.shapes == ((a, 50 / 80), (b, 30 / 80))  # 50% < 60% -> add b: 80% >= 60%
    assert workload_from_counts({a: 50, b: 30, c: 20}, 0.5).shapes == ((a, 1.0),)
    assert workload_from_counts({a: 50, b: 30, c: 20}, 1.0).shapes == ((a, 0.5), (b, 0.3), (c, 0.2))
    # CPU-only excluded before shares are computed
    w = workload_from_counts({a: 40, b: 30, c: 50}, 0.6, include_cpu_only=False)  # 40/70 = 57%
    assert w.shapes == ((a, 40 / 70), (b, 30 / 70))
    # memory variants merge (memory does not enter F_n(m)); ties by shape order
    w = workload_from_counts({Shape(1000, 1, 500, memory_mib=1): 1, Shape(1000, 1, 500, memory_mib=2): 1, b: 2}, 0.5)
    assert w.shapes == ((a, 1.0),)  # a (merged, 2) ties b (2); a sorts first (1 GPU of 500 < 1000)
    with pytest.raises(ValueError):
        workload_from_counts({}, 0.6)
    with pytest.raises(ValueError):
        Workload(((a, 0.5),))
    assert Workload.from_weights({a: 3, b: 1}).shapes == ((a, 0.75), (b, 0.25))


def test_shape_validation_and_demand():
    assert Shape(1, 8, 1000).gpu_demand_milli == 8000
    assert Shape(1, 1, 470).gpu_demand_milli == 470
    assert Shape(1, 0, 0).gpu_demand_milli == 0
    assert Shape(1, 1, 1000, "V100M16|V100M32").gpu_types == frozenset({"V100M16", "V100M32"})
    for bad in ((1, 2, 500), (1, 0, 100), (1, 1, 0), (1, 1, 1001), (-1, 1, 1000)):
        with pytest.raises(ValueError):
            Shape(*bad)


# ---------------------------------------------------------------- fits, place, FGD


def test_fits_best_fit_and_whole():
    n = node(gpus=(1000, 300, 600, 1000, 450))
    assert fits(n, Shape(1000, 1, 400)) == [4]  # least free that still fits: 450
    assert fits(n, Shape(1000, 1, 700)) == [0]
    assert fits(n, Shape(1000, 2, 1000)) == [0, 3]
    assert fits(n, Shape(1000, 3, 1000)) is None
    assert fits(n, Shape(1000, 1, 1000, frozenset({"T4"}))) is None
    assert fits(n, Shape(1000, 1, 100, memory_mib=2000)) is None


def test_place_unplace_roundtrip():
    n = node(pods=3)
    s = Shape(4000, 1, 300, memory_mib=100)
    place(n, s, [2])
    assert (n.cpu_free_milli, n.memory_free_mib, n.gpu_free_milli, n.pods_free) == (6000, 900, [1000, 1000, 200, 200], 2)
    w = Shape(1000, 2, 1000)
    place(n, w, [0, 1])
    assert n.gpu_free_milli == [0, 0, 200, 200]
    with pytest.raises(ValueError):
        place(n, s, [3])  # 200 < 300: nothing changes
    assert n.cpu_free_milli == 5000
    unplace(n, w, [0, 1])
    unplace(n, s, [2])
    assert n == node(pods=3)
    with pytest.raises(ValueError):
        unplace(n, s, [0])  # would exceed 1000


def test_fgd_differs_from_best_fit():
    # M: only 600-milli sharing tasks.  Node GPUs free (600, 1000); incoming 100-milli task.
    # best fit -> GPU 0 (600 -> 500): GPU 0 becomes too small for M, F' = 500, Δ = +500.
    # GPU 1 (1000 -> 900): both GPUs still take a 600 task, F' = 0, Δ = 0.  FGD picks GPU 1.
    m = Workload(((Shape(1000, 1, 600), 1.0),))
    n = node(gpus=(600, 1000))
    task = Shape(1000, 1, 100)
    assert fits(n, task) == [0]
    assert fgd_choice(n, task, m) == (0.0, [1])
    # and the Δ of the best-fit choice is the +500 computed above
    after = node(gpus=(500, 1000), cpu=9000)
    assert node_fragmentation_workload(after, m) - node_fragmentation_workload(n, m) == pytest.approx(500.0)


def test_fgd_ties_go_to_best_fit_and_cpu_counts():
    m = Workload(((Shape(1000, 1, 100), 1.0),))
    assert fgd_choice(node(gpus=(1000, 700, 700, 900)), Shape(0, 1, 200), m) == (0.0, [1])
    # CPU-only task that leaves too little CPU for M's GPU task: Δ = all free GPU
    m = Workload(((Shape(1500, 1, 1000), 1.0),))
    assert fgd_choice(node(gpus=(1000,), cpu=2000), Shape(1000, 0, 0), m) == (1000.0, [])
    # whole GPUs: idle GPUs are interchangeable, the first k are used
    assert fgd_choice(node(gpus=(500, 1000, 1000)), Shape(0, 1, 1000), m) == (0.0, [1])
    assert fgd_choice(node(gpus=(500,)), Shape(0, 1, 1000), m) is None


# ---------------------------------------------------------------- incremental == full

TYPES = ("G2", "T4", "P100")
gpu_free = st.sampled_from((0, 100, 200, 300, 470, 500, 810, 1000))
node_st = st.builds(
    lambda t, cpu, gpus: (t, cpu, gpus),
    st.sampled_from(TYPES),
    st.integers(0, 40).map(lambda x: x * 1000),
    st.lists(gpu_free, max_size=8),
)
shape_st = st.one_of(
    st.builds(lambda c: Shape(c, 0, 0), st.sampled_from((1000, 8000))),
    st.builds(lambda c, d: Shape(c, 1, d), st.sampled_from((1000, 8000, 20000)), st.sampled_from((200, 470, 810))),
    st.builds(
        lambda c, k, t: Shape(c, k, 1000, t),
        st.sampled_from((1000, 8000, 20000)),
        st.sampled_from((1, 2, 4, 8)),
        st.sampled_from((frozenset(), frozenset({"G2"}), frozenset({"T4", "P100"}))),
    ),
)


def brute(nd: NodeState, w: Workload) -> Fraction:
    """F_n(M) straight from §5.1, exact."""
    total = sum(nd.gpu_free_milli)
    out = Fraction(0)
    for s, p in w.shapes:
        thr = s.gpu_milli
        ok = (
            s.num_gpu > 0
            and nd.cpu_free_milli >= s.cpu_milli
            and (not s.gpu_types or nd.gpu_type in s.gpu_types)
            and sum(1 for g in nd.gpu_free_milli if g >= thr) >= s.num_gpu
        )
        f = sum(g for g in nd.gpu_free_milli if g < thr) if ok else total
        out += Fraction(p) * f
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(node_st, min_size=1, max_size=12),
    st.lists(st.tuples(shape_st, st.integers(1, 20)), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 20), st.one_of(st.none(), node_st)), max_size=25),
)
def test_incremental_equals_full(nodes, shapes, updates):
    w = workload_from_counts(dict(shapes), 1.0)
    state = {f"n{i}": NodeState(f"n{i}", t, 50000, 1000, c, 1000, list(g)) for i, (t, c, g) in enumerate(nodes)}
    cf = ClusterFragmentation(w)
    for nd in state.values():
        cf.set_node(nd)
    for idx, upd in updates:
        name = f"n{idx}"
        if upd is None:
            cf.remove_node(name)
            state.pop(name, None)
        else:
            t, c, g = upd
            state[name] = NodeState(name, t, 50000, 1000, c, 1000, list(g))
            cf.set_node(state[name])
        cf.total_milli  # noqa: B018 - interleave reads with updates
    full = ClusterFragmentation(Workload(w.shapes))  # a distinct (equal) workload: fresh compile
    for nd in reversed(list(state.values())):
        full.set_node(nd)
    assert cf.total_milli == full.total_milli
    assert cf.free_milli == full.free_milli == sum(sum(nd.gpu_free_milli) for nd in state.values())
    assert sorted(cf.names()) == sorted(state)
    exact = sum((brute(nd, w) for nd in state.values()), Fraction(0))
    assert cf.total_milli == pytest.approx(float(exact), abs=1e-6)
    for name, nd in state.items():
        assert cf.node(name) == node_fragmentation_workload(nd, w)
        assert cf.node(name) == pytest.approx(float(brute(nd, w)), abs=1e-9)
    cf.set_workload(w)
    assert cf.total_milli == full.total_milli


# ---------------------------------------------------------------- cheap signals


def test_stranded_gpus():
    nodes = [
        node("cpu", cpu=0),
        node("mem", mem=0),
        node("pods", pods=0),
        node("ok", pods=5),
        node("full", gpus=(0, 0), cpu=0),
    ]
    assert stranded_gpus(nodes) == [("cpu", 2700, "cpu"), ("mem", 2700, "memory"), ("pods", 2700, "pods")]
    assert stranded_gpus([node("x", cpu=3000)], min_cpu_milli=4000) == [("x", 2700, "cpu")]


def test_largest_placeable():
    a = node(pods=None)  # cpu 10000, mem 1000, GPUs 1000, 1000, 500, 200
    s400 = Shape(1000, 1, 400, memory_mib=100)  # GPU: 2 + 2 + 1 + 0 = 5; CPU 10; memory 10
    s2 = Shape(1000, 2, 1000)  # 2 idle GPUs // 2
    cpu = Shape(4000, 0, 0)  # CPU 10000 // 4000
    t4 = Shape(1000, 1, 100, frozenset({"T4"}))
    got = largest_placeable([a, node("b", gpus=(300,), pods=1)], [s400, s2, cpu, t4])
    assert got == {s400: 5, s2: 1, cpu: 2 + 1, t4: 0}  # b: pods_free 1 limits the CPU task
    assert largest_placeable([node(pods=2)], [s400]) == {s400: 2}
    assert largest_gpu_request([a, node("b", gpus=(900,))]) == (2, 1000)
    assert largest_gpu_request([node("b", gpus=(900, 300))]) == (0, 900)


def test_unplaceable_free():
    nodes = [node(), node("b", (300, 200))]
    assert unplaceable_free(nodes, Shape(1000, 1, 400)) == 200 + 500
    assert unplaceable_free(nodes, Shape(1000, 1, 1000)) == 700 + 500
    assert unplaceable_free(nodes, Shape(1000, 0, 0)) == 3200


def test_blocked_by_fragmentation():
    nodes = [node("a", (500, 500)), node("b", (600, 400))]  # 2000 free, no idle GPU
    assert blocked_by_fragmentation(nodes, Shape(1000, 1, 1000))  # 1000 <= 2000 but no node
    assert not blocked_by_fragmentation(nodes, Shape(1000, 1, 550))  # fits on b
    assert not blocked_by_fragmentation(nodes, Shape(1000, 4, 1000))  # 4000 > 2000: not enough at all
    assert not blocked_by_fragmentation(nodes, Shape(1000, 1, 1000, frozenset({"T4"})))  # no T4 capacity
    # CPU-only: 10000 free on each node, 15000 in total
    assert blocked_by_fragmentation(nodes, Shape(15000, 0, 0))


# ---------------------------------------------------------------- the Alibaba trace, empty cluster


def test_empty_alibaba_cluster():
    node_csv = TRACE / "openb_node_list_gpu_node.csv"
    pod_csv = TRACE / "openb_pod_list_default.csv"
    if not node_csv.is_file() or not pod_csv.is_file():
        pytest.fail(f"trace not found under {TRACE}; set ACCELSCOPE_SHARED to the shared/ folder")
    with node_csv.open(newline="") as fh:
        nodes = [
            NodeState(r["sn"], r["model"], int(r["cpu_milli"]), int(r["memory_mib"]), int(r["cpu_milli"]),
                      int(r["memory_mib"]), [1000] * int(r["gpu"]))
            for r in csv.DictReader(fh)
        ]
    counts: Counter[Shape] = Counter()
    with pod_csv.open(newline="") as fh:
        for r in csv.DictReader(fh):
            counts[Shape(int(r["cpu_milli"]), int(r["num_gpu"]), int(r["gpu_milli"]), r["gpu_spec"],
                         int(r["memory_mib"]))] += 1
    w = workload_from_counts(counts, 0.6)
    # Top shapes of the 8,152 pods by (CPU, GPUs, milli), most frequent first, until >= 60%:
    # 3152m/1x810 1047, 11300m/1x1000 874, 11400m/1x1000 599, 3152m/1x1000 470, 11908m/1x470 388,
    # 12500m CPU-only 366, 8000m/1x470 360, 12000m/1x1000 326, 32000m CPU-only 290,
    # 18708m/1x1000 255: 4,975 pods = 61.0% (after 9 shapes: 57.9%).
    assert len(w.shapes) == 10
    assert sum(p for s, p in w.shapes if s.num_gpu == 0) == pytest.approx(656 / 4975)

    cf = ClusterFragmentation(w)
    for nd in nodes:
        cf.set_node(nd)
    assert len(cf) == 1213
    assert cf.free_milli == 6_212_000  # 6,212 idle GPUs
    # Every GPU is idle and every shape needs one GPU, so F_n(m) is 0 (Case 2) unless m is
    # CPU-only or n has less CPU than m (Case 1, all of n's GPUs).  Node CPU capacities:
    # * 8000m (2x2 P100, 3x1 P100, 19x1 V100M16 = 26 GPUs): lacks CPU for 11300, 11400, 11908,
    #   12000, 18708 -> 874+599+388+326+255 = 2442 pods, + 656 CPU-only = 3098 of 4975;
    # * 16000m (107x2 P100 = 214 GPUs): lacks CPU for 18708 only -> 255 + 656 = 911;
    # * all others (>= 32000m, 5972 GPUs): only the CPU-only shapes -> 656.
    expected = Fraction(26_000 * 3098 + 214_000 * 911 + 5_972_000 * 656, 4975)  # = 842 841.005 milli-GPU
    assert cf.total_milli == pytest.approx(float(expected), abs=1e-4)  # 2**-24 grain per node
    assert cf.total_milli == pytest.approx(842_841.005, abs=1e-3)
    assert cf.rate() == pytest.approx(float(expected) / 6_212_000, abs=1e-10)  # 0.1357
    # the 8000m nodes are the most fragmented per GPU; top() is bounded
    assert len(cf.top(10)) == 10
