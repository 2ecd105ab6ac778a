"""The FGD paper's experiment, as the reference simulator runs it.

My reading of hkust-adsl/kubernetes-scheduler-simulator (``pkg/simulator``,
``scripts/generate_config_and_run.py``, ``experiments/run_scripts`` and
``experiments/analysis/merge_*_discrete*.py``), which produced
``fgd-simulator-expected-results/*.csv``:

1. **Target workload M** ("typical pods"): the shapes
   ``(cpu, num_gpu, gpu_milli, gpu model list)`` of the *original* pod list
   (memory is not part of a shape), CPU-only pods included
   (``isInvolvedCpuPods: true``), most frequent first (ties: the larger shape
   first, the reference's reversed sort), added one by one until they cover
   **95%** of the pods (``--pod-popularity-threshold`` defaults to 95 in the
   run scripts; the simulator's own default is 60), renormalised.
   :func:`typical_workload`.  The empty cluster's fragmentation checks it: 95%
   gives F_N(M) = 13.94% of capacity, the CSVs' first column averages 13.9;
   60% would give 13.57%.
2. **Pod order** (``order="tune"``, :func:`pod_sequence`): the pods sorted by
   name are shuffled with the run's seed (``--shuffle-pod=true``); then
   "workload tuning" (``-tune 1.3``) appends copies of pods drawn uniformly
   *with replacement* from the whole list until the total GPU demand reaches
   130% of cluster capacity (or removes random pods while it is above).  The
   default pod list asks for only 98.0% of the 6,212 GPUs, so a plain shuffle
   never reaches the 100% column: the tail comes from the sampled copies.
   (Reference quirk kept: the stop test adds the per-GPU milli of the drawn
   pod, not its total.)  ``order="inflate"`` samples every pod with
   replacement from the start; ``"shuffle"`` is the shuffled list alone;
   ``"trace"`` the file order.
3. **Scheduling**: each pod is scheduled once, in order, or fails; nothing
   departs (the trace's times are seconds, not the RFC 3339 strings the
   reference parses, so its creation/deletion events never fire).  Nodes are
   filtered on CPU, memory and GPUs (kube-scheduler's ``NodeResourcesFit``
   plus ``Open-Gpu-Share``) and scored by the policy; equal scores go to the
   first node in a seeded random node order (``tie_break="first"``,
   ``node_order="shuffle"``).  The reference renames its nodes with a random
   prefix drawn from the seed and runs a fork of kube-scheduler; a
   deterministic choice among equal scores is the only use of such names, and
   it is what reproduces the paper: with random ties (``tie_break="random"``)
   FGD allocates 89.9% instead of 95.2% (its integer scores tie on most nodes).
4. **Measurement** after every pod (placed or failed): arrived GPU demand
   (all pods tried so far, in % of capacity), GPU allocation
   (``100 * allocated milli / (1000 * GPUs)``, rounded to 0.01), the
   fragmented GPU F_N(M) and the fragmentation rate
   ``100 * F_N(M) / free milli`` (rounded to 0.01, as the reference logs it).
5. **Discretisation**: samples go to bucket ``round(arrived %)`` (Python's
   round, half to even, as pandas' ``apply(round)``); each column is the mean
   of its bucket (allocation rounded to 0.01; fragmented GPUs reported as
   ``100 * mean(F_N(M)) / 1000 / GPUs`` in % of capacity, rounded to 0.01;
   frag rate unrounded).  An empty bucket takes the samples within ±1 step.

A simulation stops as soon as a pod pushes the arrived demand past the last
bucket (``until_pct``), so ``run(..., until_pct=100)`` schedules about
8,300 pods of the default trace.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from scheduler_events.fragmentation import ClusterFragmentation, NodeState, Shape, Workload

from .policies import Policy, SimCluster, copy_nodes, make_policy
from .trace import NodeList, PodList, TracePod

DEFAULT_COVERAGE = 0.95
DEFAULT_TUNE_RATIO = 1.3
ORDERS = ("tune", "inflate", "shuffle", "trace")
TIE_BREAKS = ("first", "random")
NODE_ORDERS = ("shuffle", "name", "file")
METRICS = ("allo", "frag", "frag_ratio")


# --------------------------------------------------------------------------- M and the pod order


def typical_workload(
    pods: Iterable[TracePod | Shape], coverage: float = DEFAULT_COVERAGE, *, include_cpu_only: bool = True
) -> Workload:
    """The reference simulator's "typical pods" (``utils.GetTypicalPods``)
    as a :class:`Workload`: see the module docstring, item 1.

    Differs from :func:`~scheduler_events.fragmentation.workload_from_counts`
    only in the order of equally frequent shapes at the coverage boundary
    (the reference takes the larger (CPU, GPU milli, GPU count, model) first).
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1]: {coverage!r}")
    counts: dict[Shape, int] = {}
    for p in pods:
        s = p.shape if isinstance(p, TracePod) else p
        if not include_cpu_only and s.num_gpu == 0:
            continue
        if s.memory_mib:
            s = replace(s, memory_mib=0)
        counts[s] = counts.get(s, 0) + 1
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no pods to build the target workload from")
    ordered = sorted(
        counts.items(),
        key=lambda kv: (kv[1], kv[0].cpu_milli, kv[0].gpu_milli, kv[0].num_gpu, "|".join(sorted(kv[0].gpu_types))),
        reverse=True,
    )
    chosen: list[tuple[Shape, int]] = []
    cum = 0
    for shape, n in ordered:
        if cum >= coverage * total:
            break
        chosen.append((shape, n))
        cum += n
    return Workload(tuple((s, n / cum) for s, n in chosen))


def pod_sequence(
    pods: Sequence[TracePod],
    total_gpu_milli: int,
    rng: random.Random,
    *,
    order: str = "tune",
    tune_ratio: float = DEFAULT_TUNE_RATIO,
) -> list[TracePod]:
    """The order in which pods arrive (module docstring, item 2).  Copies
    drawn with replacement are named ``<name>-tuned-<i>``."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r} (known: {', '.join(ORDERS)})")
    if order == "trace":
        return sorted(pods, key=lambda p: (p.creation_time is None, p.creation_time or 0))
    pool = sorted(pods, key=lambda p: p.name)
    if not pool:
        return []
    target = tune_ratio * total_gpu_milli
    if order == "inflate":
        out: list[TracePod] = []
        demand = 0
        i = 0
        while True:
            p = pool[rng.randrange(len(pool))]
            if demand + p.shape.gpu_demand_milli > target:
                break
            out.append(replace(p, name=f"{p.name}-tuned-{i}"))
            demand += p.shape.gpu_demand_milli
            i += 1
            if i > 100 * len(pool) + 1_000_000:
                raise ValueError("inflation does not converge: does the pod list ask for any GPU?")
        return out
    seq = list(pool)
    rng.shuffle(seq)
    if order == "shuffle" or tune_ratio <= 0:
        return seq
    demand = sum(p.shape.gpu_demand_milli for p in seq)
    if demand > target:  # tune down: drop random pods
        while demand > target and seq:
            p = seq.pop(rng.randrange(len(seq)))
            demand -= p.shape.gpu_demand_milli
        return seq
    if not any(p.shape.num_gpu for p in pool):
        return seq
    i = 0
    while True:  # tune up: copies drawn with replacement, appended
        p = pool[rng.randrange(len(pool))]
        if demand + p.shape.gpu_milli > target:
            break
        seq.append(replace(p, name=f"{p.name}-tuned-{i}"))
        demand += p.shape.gpu_demand_milli
        i += 1
    return seq


# --------------------------------------------------------------------------- the run


@dataclass(slots=True)
class RunResult:
    """One simulation: per-step curves plus counters.

    ``steps``: the arrived-demand columns (%, e.g. 0..100).  ``allo``: % of GPU
    capacity allocated; ``frag``: fragmented GPU F_N(M) in % of capacity;
    ``frag_ratio``: F_N(M) in % of free GPU; one value per step (``None``
    where no sample fell within ±1 step).
    """

    policy: str
    seed: int
    total_gpus: int
    steps: list[int]
    allo: list[float | None]
    frag: list[float | None]
    frag_ratio: list[float | None]
    placed: int = 0
    failed: int = 0
    arrived_pct: float = 0.0
    elapsed_s: float = 0.0
    workload: Workload | None = None
    failed_by_kind: dict[str, int] = field(default_factory=dict)

    def at(self, metric: str, step: int) -> float | None:
        return getattr(self, metric)[self.steps.index(step)]

    def row(self, metric: str, *, workload: str = "", sc_policy: str | None = None, tune: float | str = DEFAULT_TUNE_RATIO) -> dict:
        """One row shaped like the expected-results CSVs (``analysis_<metric>_discrete.csv``):
        ``workload, sc_policy, tune, seed[, total_gpus], <step>...``."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        out = {"workload": workload, "sc_policy": sc_policy or self.policy, "tune": tune, "seed": self.seed}
        if metric == "allo":
            out["total_gpus"] = self.total_gpus
        for s, v in zip(self.steps, getattr(self, metric)):
            out[str(s)] = v
        return out


def _kind(shape: Shape) -> str:
    if shape.num_gpu == 0:
        return "cpu"
    if shape.is_sharing:
        return "share"
    return f"{shape.num_gpu}-gpu"


def run(
    nodes: Sequence[NodeState] | NodeList,
    pods: Sequence[TracePod] | PodList,
    policy: Policy | str,
    seed: int,
    until_pct: float = 100,
    step_pct: float = 1,
    *,
    workload: Workload | None = None,
    coverage: float = DEFAULT_COVERAGE,
    order: str = "tune",
    tune_ratio: float = DEFAULT_TUNE_RATIO,
    check_memory: bool = True,
    tie_break: str = "first",
    node_order: str = "shuffle",
    on_place: Callable[[TracePod, NodeState, list[int]], None] | None = None,
    on_fail: Callable[[TracePod], None] | None = None,
) -> RunResult:
    """Simulate one experiment: ``pods`` arrive on ``nodes`` (copied, not
    changed) in the order of :func:`pod_sequence`, each placed by ``policy``
    or failed, until the arrived GPU demand passes ``until_pct`` % of
    capacity; returns the discretised curves (module docstring).

    ``workload``: the target workload M for the fragmentation measure and for
    FGD; by default :func:`typical_workload` of ``pods`` at ``coverage``.
    ``policy``: a :class:`Policy` or a name for :func:`make_policy`.
    ``order``/``tune_ratio``: see :func:`pod_sequence`.  ``check_memory``:
    filter nodes on memory too.  ``tie_break``: ``"first"`` (equal scores go
    to the first node in node order) or ``"random"``; ``node_order``:
    ``"shuffle"`` (the nodes sorted by name, then shuffled with the seed),
    ``"name"`` or ``"file"`` (as given).
    ``on_place(pod, node, gpus)`` / ``on_fail(pod)``: called after each
    decision, ``node`` being the simulator's node after the placement (do not
    change it); the place to emit Kubernetes objects and events from.
    """
    t0 = time.perf_counter()
    if isinstance(nodes, NodeList):
        nodes = nodes.nodes
    if isinstance(pods, PodList):
        pods = pods.pods
    if step_pct <= 0:
        raise ValueError("step_pct must be > 0")
    if workload is None:
        workload = typical_workload(pods, coverage)
    if isinstance(policy, str):
        policy = make_policy(policy, workload=workload)
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r} (known: {', '.join(TIE_BREAKS)})")
    if node_order not in NODE_ORDERS:
        raise ValueError(f"unknown node_order {node_order!r} (known: {', '.join(NODE_ORDERS)})")
    rng = random.Random(seed)
    total_milli = sum(1000 * len(n.gpu_free_milli) for n in nodes)
    if total_milli <= 0:
        raise ValueError("the cluster has no GPU")
    sequence = pod_sequence(pods, total_milli, rng, order=order, tune_ratio=tune_ratio)
    ordered = sorted(nodes, key=lambda n: n.name)
    if node_order == "shuffle":
        rng.shuffle(ordered)
    elif node_order == "file":
        ordered = list(nodes)
    cluster = SimCluster(
        copy_nodes(ordered), check_memory=check_memory, task_aware=policy.task_aware, tie_first=(tie_break == "first")
    )

    cf = ClusterFragmentation(workload)
    for n in cluster.nodes:
        cf.set_node(n)

    n_steps = int(round(until_pct / step_pct))
    steps = [round(k * step_pct, 6) for k in range(n_steps + 1)]
    steps = [int(s) if float(s).is_integer() else s for s in steps]
    # per bucket: [count, sum alloc, sum frag milli, sum frag ratio]
    buckets: dict[int, list[float]] = {}
    arrived = 0
    placed = failed = 0
    failed_by_kind: dict[str, int] = {}
    scale = 100.0 / total_milli  # milli -> % of capacity
    choose = policy.choose
    for pod in sequence:
        shape = pod.shape
        arrived += shape.gpu_demand_milli
        b = round(arrived * scale / step_pct)
        if b > n_steps:
            break
        got = choose(cluster, shape, rng)
        if got is None:
            failed += 1
            k = _kind(shape)
            failed_by_kind[k] = failed_by_kind.get(k, 0) + 1
            if on_fail is not None:
                on_fail(pod)
        else:
            i, gpus = got
            cluster.place(i, shape, gpus)
            placed += 1
            node = cluster.nodes[i]
            cf.set_node(node)
            if on_place is not None:
                on_place(pod, node, gpus)
        free = cluster.free_gpu_milli
        frag = cf.total_milli
        alloc = round((total_milli - free) * scale, 2)
        ratio = round(100.0 * frag / free, 2) if free > 0 else 0.0
        acc = buckets.get(b)
        if acc is None:
            buckets[b] = [1, alloc, round(frag, 2), ratio]
        else:
            acc[0] += 1
            acc[1] += alloc
            acc[2] += round(frag, 2)
            acc[3] += ratio

    allo: list[float | None] = []
    fragc: list[float | None] = []
    ratio_c: list[float | None] = []
    for k in range(n_steps + 1):
        acc = buckets.get(k)
        if acc is None:  # the reference falls back to the neighbouring buckets
            near = [buckets[j] for j in (k - 1, k, k + 1) if j in buckets]
            if near:
                acc = [sum(a[0] for a in near), sum(a[1] for a in near), sum(a[2] for a in near), sum(a[3] for a in near)]
        if acc is None:
            allo.append(None)
            fragc.append(None)
            ratio_c.append(None)
            continue
        n = acc[0]
        allo.append(round(acc[1] / n, 2))
        fragc.append(round(100.0 * (acc[2] / n) / total_milli, 2))
        ratio_c.append(acc[3] / n)
    return RunResult(
        policy=policy.name,
        seed=seed,
        total_gpus=total_milli // 1000,
        steps=steps,
        allo=allo,
        frag=fragc,
        frag_ratio=ratio_c,
        placed=placed,
        failed=failed,
        arrived_pct=arrived * scale,
        elapsed_s=time.perf_counter() - t0,
        workload=workload,
        failed_by_kind=failed_by_kind,
    )


def mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None
