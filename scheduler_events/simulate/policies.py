"""Node and GPU selection policies for the trace-driven simulator.

A policy answers one question: where does this task go?
``policy.choose(cluster, shape, rng) -> (node index, GPU indices) | None``.
The cluster is a :class:`SimCluster` (a list of
:class:`~scheduler_events.fragmentation.NodeState` plus an index of identical
node states); ``rng`` is the run's seeded :class:`random.Random`, used for
every random choice (ties included), so a run is a function of its seed.

Feasibility is the same for all policies except ``hami`` and mirrors what the
reference simulator's kube-scheduler filters do (``NodeResourcesFit`` plus the
``Open-Gpu-Share`` filter): free CPU >= request, free memory >= request
(``check_memory``), an acceptable GPU model, and ``num_gpu`` GPUs with free
milli-GPU >= the per-GPU demand (1000 = an idle GPU for whole-GPU tasks).

Policies
--------
``fgd``
    Fragmentation gradient descent: the node (and GPU) with the smallest
    Δ = F_n'(M) - F_n(M).  With ``quantize=True`` (default, as the reference
    simulator's ``FGDScore`` plugin) the node score is
    ``int(100 * sigmoid(-Δ / 1000))``; nodes with equal integer scores are tied
    and kube-scheduler picks one of the tied nodes at random; on the chosen
    node a sharing task goes to the first GPU index with the best integer
    score.  With ``quantize=False`` the minimum Δ wins (Δ rounded to 1e-6
    milli-GPU, so float noise does not break ties; ties as above) and the GPU
    is :func:`~scheduler_events.fragmentation.fgd_choice`'s.
``bestfit``
    The reference simulator's ``BestFitScore`` (see :func:`bestfit_score`).
``random``
    A feasible node chosen uniformly at random (the reference ``RandomScore``
    prescore picks one filtered node uniformly); a sharing task goes to a
    random GPU with enough free, whole-GPU tasks to the first idle GPUs.
``hami``
    HAMi's scheduler extender model (see :class:`HAMi`).

Performance: nodes in exactly the same state (model, capacity, free CPU,
memory and per-GPU free) form one group; a policy scores each feasible group
once per task (memoised per state and shape), then picks a node of the best
groups.  With 1,213 nodes there are a few hundred distinct states at any time.
"""

from __future__ import annotations

import math
import random
from bisect import insort
from collections.abc import Iterable, Sequence
from dataclasses import replace

from scheduler_events.fragmentation import (
    GPU_MILLI,
    NodeState,
    Shape,
    Workload,
    fgd_choice,
    fits,
    node_fragmentation_workload,
    place,
    unplace,
)

#: kube-scheduler's node score range
MAX_NODE_SCORE = 100
#: the reference simulator's normalisers for BestFit (``open-gpu-share/utils/const.go``)
MAX_SPEC_CPU = 128_000
MAX_SPEC_GPU = 8_000
#: HAMi's default ``deviceSplitCount``: at most this many tasks share one GPU
HAMI_DEFAULT_SPLIT = 10

#: exact FGD compares Δ (milli-GPU) rounded to this many decimals
DELTA_DECIMALS = 6

Placement = tuple[int, list[int]]


# --------------------------------------------------------------------------- cluster state


class SimCluster:
    """The simulated cluster: nodes, per-GPU task counts, and the groups of
    nodes whose states are identical.

    A group key is ``(gpu_type, cpu_milli, memory_mib, n_gpus, cpu_free,
    memory_free, frees, pairs)`` with ``frees`` the per-GPU free milli sorted
    in descending order; with ``task_aware=True`` (HAMi) ``pairs`` holds the
    sorted ``(free, tasks)`` per GPU, because HAMi's split count makes the
    number of tasks on a GPU matter (otherwise ``None``).  ``tie_first``:
    among equally good nodes, take the lowest index (the node order is the
    tie-break order) instead of a random one.  The nodes passed in are used as they are (and changed by
    :meth:`place`); pass copies to keep the originals.
    """

    __slots__ = ("nodes", "tasks", "groups", "check_memory", "task_aware", "tie_first", "_key",
                 "total_gpu_milli", "free_gpu_milli", "_no_mem")

    def __init__(
        self,
        nodes: Sequence[NodeState],
        *,
        check_memory: bool = True,
        task_aware: bool = False,
        tie_first: bool = False,
    ):
        self.nodes: list[NodeState] = list(nodes)
        self.check_memory = check_memory
        self.task_aware = task_aware
        self.tie_first = tie_first
        self.tasks: list[list[int]] = [[0] * len(n.gpu_free_milli) for n in self.nodes]
        self.groups: dict[tuple, list[int]] = {}
        self._key: list[tuple] = []
        for i in range(len(self.nodes)):
            key = self.state_key(i)
            self._key.append(key)
            self.groups.setdefault(key, []).append(i)
        self.total_gpu_milli = sum(GPU_MILLI * len(n.gpu_free_milli) for n in self.nodes)
        self.free_gpu_milli = sum(sum(n.gpu_free_milli) for n in self.nodes)
        self._no_mem: dict[Shape, Shape] = {}

    def state_key(self, i: int) -> tuple:
        n = self.nodes[i]
        if self.task_aware:
            pairs = tuple(sorted(zip(n.gpu_free_milli, self.tasks[i]), reverse=True))
            frees = tuple(f for f, _ in pairs)
        else:
            pairs = None
            frees = tuple(sorted(n.gpu_free_milli, reverse=True))
        return (n.gpu_type, n.cpu_milli, n.memory_mib, len(frees), n.cpu_free_milli, n.memory_free_mib, frees, pairs)

    def key_of(self, i: int) -> tuple:
        return self._key[i]

    @property
    def total_gpus(self) -> int:
        return self.total_gpu_milli // GPU_MILLI

    def feasible(self, key: tuple, shape: Shape) -> bool:
        """Whether a node in state ``key`` passes the filters for ``shape``."""
        gtype, _cc, _mc, ngpu, cpu_free, mem_free, frees, _ = key
        if cpu_free < shape.cpu_milli:
            return False
        if self.check_memory and mem_free < shape.memory_mib:
            return False
        k = shape.num_gpu
        if k == 0:
            return True
        if k > ngpu or (shape.gpu_types and gtype not in shape.gpu_types):
            return False
        return frees[k - 1] >= shape.gpu_milli

    def feasible_groups(self, shape: Shape) -> Iterable[tuple[tuple, list[int]]]:
        feasible = self.feasible
        for key, members in self.groups.items():
            if feasible(key, shape):
                yield key, members

    def effective(self, shape: Shape) -> Shape:
        """``shape`` as it is charged to a node: without memory when memory is not checked."""
        if self.check_memory or not shape.memory_mib:
            return shape
        s = self._no_mem.get(shape)
        if s is None:
            s = self._no_mem[shape] = replace(shape, memory_mib=0)
        return s

    def _move(self, i: int) -> None:
        old = self._key[i]
        members = self.groups[old]
        members.remove(i)
        if not members:
            del self.groups[old]
        key = self.state_key(i)
        self._key[i] = key
        members = self.groups.get(key)
        if members is None:
            self.groups[key] = [i]
        else:
            insort(members, i)

    def place(self, i: int, shape: Shape, gpus: list[int]) -> None:
        node = self.nodes[i]
        place(node, self.effective(shape), gpus)
        t = self.tasks[i]
        for g in gpus:
            t[g] += 1
        self.free_gpu_milli -= shape.per_gpu_milli * len(gpus)
        self._move(i)

    def unplace(self, i: int, shape: Shape, gpus: list[int]) -> None:
        node = self.nodes[i]
        unplace(node, self.effective(shape), gpus)
        t = self.tasks[i]
        for g in gpus:
            t[g] -= 1
        self.free_gpu_milli += shape.per_gpu_milli * len(gpus)
        self._move(i)


def copy_nodes(nodes: Iterable[NodeState]) -> list[NodeState]:
    """Independent copies of ``nodes`` (their GPU lists included)."""
    return [replace(n, gpu_free_milli=list(n.gpu_free_milli)) for n in nodes]


def _pick(rng: random.Random, best: list[list[int]], first: bool = False) -> int:
    """A node among the members of the ``best`` groups: the first in node
    order (``first``), or one uniformly at random."""
    if first:
        return min(members[0] for members in best)
    if len(best) == 1:
        members = best[0]
        return members[rng.randrange(len(members))] if len(members) > 1 else members[0]
    r = rng.randrange(sum(len(m) for m in best))
    for members in best:
        if r < len(members):
            return members[r]
        r -= len(members)
    raise AssertionError("unreachable")


def _argmax_groups(scored: Iterable[tuple[float, list[int]]]) -> list[list[int]]:
    best_score = None
    best: list[list[int]] = []
    for score, members in scored:
        if best_score is None or score > best_score:
            best_score, best = score, [members]
        elif score == best_score:
            best.append(members)
    return best


def _first_idle(frees: Sequence[int], k: int) -> list[int]:
    """The first ``k`` idle GPUs in index order (the reference ``AllocateExclusiveGpuId``)."""
    out = [i for i, f in enumerate(frees) if f >= GPU_MILLI][:k]
    if len(out) < k:
        raise AssertionError("not enough idle GPUs on a feasible node")
    return out


# --------------------------------------------------------------------------- policies


class Policy:
    """Base class: ``choose`` returns ``(node index, GPU indices)`` or ``None``."""

    name = "policy"
    #: whether the cluster must key groups on per-GPU task counts
    task_aware = False

    def choose(self, cluster: SimCluster, shape: Shape, rng: random.Random) -> Placement | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _sigmoid_score(delta: float) -> int:
    """The reference ``FGDScore``: ``int64(sigmoid((F_before - F_after) / 1000) * 100)``."""
    return int(1.0 / (1.0 + math.exp(delta / 1000.0)) * MAX_NODE_SCORE)


class FGD(Policy):
    """Fragmentation gradient descent over the target workload ``workload``."""

    name = "fgd"

    def __init__(self, workload: Workload, *, quantize: bool = True):
        self.workload = workload
        self.quantize = quantize
        self._frag: dict[tuple, float] = {}
        self._score: dict[tuple, float] = {}
        self._exact: dict[tuple, float] = {}

    # F_n(M) of a (model, free CPU, free GPUs) state, via fragmentation.node_fragmentation_workload
    def frag(self, gpu_type: str, cpu_free: int, frees: Sequence[int]) -> float:
        key = (gpu_type, cpu_free, tuple(frees))
        f = self._frag.get(key)
        if f is None:
            probe = NodeState("probe", gpu_type, 0, 0, cpu_free, 0, list(frees))
            f = self._frag[key] = node_fragmentation_workload(probe, self.workload)
            if len(self._frag) > 2_000_000:
                self._frag.clear()
        return f

    def min_delta(self, gpu_type: str, cpu_free: int, frees: tuple[int, ...], shape: Shape) -> float:
        """min over this node's candidate placements of Δ (the node is known to fit)."""
        before = self.frag(gpu_type, cpu_free, frees)
        cpu_after = cpu_free - shape.cpu_milli
        k = shape.num_gpu
        if k == 0:
            return self.frag(gpu_type, cpu_after, frees) - before
        if not shape.is_sharing:  # frees sorted descending: the first k are idle
            after = (0,) * k + frees[k:]
            return self.frag(gpu_type, cpu_after, tuple(sorted(after, reverse=True))) - before
        d = shape.gpu_milli
        best = None
        prev = None
        for j, g in enumerate(frees):
            if g < d:
                break
            if g == prev:
                continue
            prev = g
            after = list(frees)
            after[j] = g - d
            after.sort(reverse=True)
            delta = self.frag(gpu_type, cpu_after, after) - before
            if best is None or delta < best:
                best = delta
        return best

    def _group_score(self, key: tuple, shape: Shape, rep: NodeState) -> float:
        gtype, _cc, _mc, _ng, cpu_free, _mf, frees, _ = key
        if self.quantize:
            mkey = (gtype, cpu_free, frees, shape.cpu_milli, shape.num_gpu, shape.gpu_milli)
            s = self._score.get(mkey)
            if s is None:
                s = self._score[mkey] = _sigmoid_score(self.min_delta(gtype, cpu_free, frees, shape))
                if len(self._score) > 2_000_000:
                    self._score.clear()
            return s
        # exact: fgd_choice on a node of the group (memory as the group's)
        mkey = (key, shape.cpu_milli, shape.num_gpu, shape.gpu_milli, shape.memory_mib)
        s = self._exact.get(mkey)
        if s is None:
            got = fgd_choice(rep, shape, self.workload)
            # Δ equal in exact arithmetic can differ in the last bits (F is a float
            # sum taken in different orders); rounding keeps such placements tied
            s = self._exact[mkey] = -math.inf if got is None else -round(got[0], DELTA_DECIMALS)
            if len(self._exact) > 2_000_000:
                self._exact.clear()
        return s

    def choose(self, cluster: SimCluster, shape: Shape, rng: random.Random) -> Placement | None:
        nodes = cluster.nodes
        fshape = cluster.effective(shape)
        best = _argmax_groups(
            (self._group_score(key, fshape, nodes[members[0]]), members)
            for key, members in cluster.feasible_groups(shape)
        )
        if not best:
            return None
        i = _pick(rng, best, cluster.tie_first)
        return i, self.gpus_on(nodes[i], fshape)

    def gpus_on(self, node: NodeState, shape: Shape) -> list[int]:
        """The GPUs FGD uses on ``node`` (which fits ``shape``)."""
        if shape.num_gpu == 0:
            return []
        if not shape.is_sharing:
            return _first_idle(node.gpu_free_milli, shape.num_gpu)
        if not self.quantize:
            got = fgd_choice(node, shape, self.workload)
            assert got is not None
            return got[1]
        gtype, cpu_free, frees = node.gpu_type, node.cpu_free_milli, node.gpu_free_milli
        before = self.frag(gtype, cpu_free, sorted(frees, reverse=True))
        cpu_after = cpu_free - shape.cpu_milli
        d = shape.gpu_milli
        best_i, best_s = -1, None
        for i, g in enumerate(frees):
            if g < d:
                continue
            after = list(frees)
            after[i] = g - d
            after.sort(reverse=True)
            s = _sigmoid_score(self.frag(gtype, cpu_after, after) - before)
            if best_s is None or s > best_s:  # first index wins ties, as the reference
                best_i, best_s = i, s
        return [best_i]


def bestfit_score(cpu_free: int, gpu_free: int, shape: Shape) -> int:
    """The reference simulator's ``BestFitScore`` for one node (0..100, higher is better).

    My reading of ``pkg/simulator/plugin/best_fit_score.go``: BestFit is the
    node with the *least remaining resources after the placement*, remaining
    resources being the weighted sum of what is left of CPU and GPU, each
    normalised by the largest node's capacity::

        left  = 0.5 * (cpu_free - cpu_req) / 128000 + 0.5 * (gpu_free - gpu_req) / 8000
        score = int((1 - left) * 100)

    ``gpu_free`` is the node's total free milli-GPU (all GPUs summed, not the
    GPU the task lands on) and ``gpu_req`` the task's total demand; memory is
    not part of it.  The float is truncated to an integer, so nodes whose
    remaining resources differ by less than 1% of the normaliser tie, and the
    scheduler picks one of the tied nodes at random.  The plugin's min-max
    normalisation over the candidate nodes keeps the arg-max, so it is left
    out.  The GPU is then chosen by the reference ``best`` GPU selection: for
    a sharing task the GPU with the least free milli that fits (lowest index
    on ties), for whole GPUs the first idle ones (exactly
    :func:`~scheduler_events.fragmentation.fits`).
    """
    left = 0.0
    left += (cpu_free - shape.cpu_milli) / MAX_SPEC_CPU * 0.5
    left += (gpu_free - shape.gpu_demand_milli) / MAX_SPEC_GPU * 0.5
    return int((1.0 - left) * MAX_NODE_SCORE)


class BestFit(Policy):
    """See :func:`bestfit_score`."""

    name = "bestfit"

    def choose(self, cluster: SimCluster, shape: Shape, rng: random.Random) -> Placement | None:
        best = _argmax_groups(
            (bestfit_score(key[4], sum(key[6]), shape), members)
            for key, members in cluster.feasible_groups(shape)
        )
        if not best:
            return None
        i = _pick(rng, best, cluster.tie_first)
        gpus = fits(cluster.nodes[i], cluster.effective(shape))
        assert gpus is not None
        return i, gpus


class Random(Policy):
    """A feasible node uniformly at random; a random fitting GPU for sharing tasks."""

    name = "random"

    def choose(self, cluster: SimCluster, shape: Shape, rng: random.Random) -> Placement | None:
        groups = [members for _, members in cluster.feasible_groups(shape)]
        if not groups:
            return None
        i = _pick(rng, groups)
        frees = cluster.nodes[i].gpu_free_milli
        if shape.num_gpu == 0:
            return i, []
        if not shape.is_sharing:
            return i, _first_idle(frees, shape.num_gpu)
        cands = [g for g, f in enumerate(frees) if f >= shape.gpu_milli]
        return i, [cands[rng.randrange(len(cands))]]


class HAMi(Policy):
    """HAMi's scheduler (``Project-HAMi/HAMi``, ``pkg/scheduler``): node policy
    ``binpack`` or ``spread`` and GPU policy ``binpack`` or ``spread``.

    How a trace task maps to a HAMi request: one container asking for
    ``nvidia.com/gpu = num_gpu`` devices, each with ``gpumem-percentage`` and
    ``gpucores`` equal to ``gpu_milli / 10`` (so a 460-milli task asks for 46%
    of a device's memory and 46% of its cores; a whole-GPU task for 100% of
    both).  Per device HAMi keeps used tasks, used memory and used cores;
    with memory and cores both derived from milli-GPU, "free memory and free
    cores >= request" is "free milli >= gpu_milli".

    Device fit (``fitInCertainDevice``): tasks on the device < split count
    (``split_count``, HAMi's ``deviceSplitCount``, default 10); enough free
    memory and cores; a 100%-cores request needs a device with no task at all
    (whole-GPU requests need idle GPUs).
    Device score (``DeviceListsScore.ComputeScore``):
    ``(tasks + 1) / split + 2 * (used_milli + gpu_milli) / 1000`` (the
    request included); ``binpack`` takes the highest-scoring fitting devices,
    ``spread`` the lowest.
    Node score (``NodeScore.ComputeScore``): ``tasks / (n_gpus * split) +
    2 * used_milli / (1000 * n_gpus)`` over the node's devices (the current
    usage, without the request); ``binpack`` picks the highest node,
    ``spread`` the lowest.

    Simplified: memory and cores are one quantity (milli-GPU), not MiB and
    percent rounded separately; no NUMA or topology preference; no absolute
    ``gpumem`` requests (the trace has none); HAMi sorts with an unstable sort,
    so its ties have no defined order: here equal nodes are chosen at random
    (seeded) and equal devices by lowest index.  CPU-only tasks and host
    CPU/memory go through the same filters as the other policies
    (kube-scheduler's ``NodeResourcesFit``) and are placed on the best node by
    the node policy (HAMi itself does not score them).
    """

    name = "hami"
    task_aware = True

    def __init__(self, node_policy: str = "binpack", gpu_policy: str = "spread", split_count: int = HAMI_DEFAULT_SPLIT):
        if node_policy not in ("binpack", "spread") or gpu_policy not in ("binpack", "spread"):
            raise ValueError(f"HAMi policies are binpack|spread, got node={node_policy!r} gpu={gpu_policy!r}")
        if split_count < 1:
            raise ValueError(f"split_count must be >= 1, got {split_count}")
        self.node_policy = node_policy
        self.gpu_policy = gpu_policy
        self.split = split_count
        self.name = f"hami-{node_policy}-{gpu_policy}"

    def _device_ok(self, free: int, tasks: int, shape: Shape) -> bool:
        if tasks >= self.split or free < shape.gpu_milli:
            return False
        return not (shape.gpu_milli >= GPU_MILLI and tasks > 0)

    def _node_ok(self, key: tuple, shape: Shape) -> bool:
        k = shape.num_gpu
        if k == 0:
            return True
        ok = 0
        for free, tasks in key[7]:
            if self._device_ok(free, tasks, shape):
                ok += 1
                if ok >= k:
                    return True
        return False

    def _node_score(self, key: tuple) -> float:
        pairs = key[7]
        n = len(pairs)
        if n == 0:
            return 0.0
        tasks = sum(t for _, t in pairs)
        used = GPU_MILLI * n - sum(f for f, _ in pairs)
        return tasks / (n * self.split) + 2.0 * used / (GPU_MILLI * n)

    def choose(self, cluster: SimCluster, shape: Shape, rng: random.Random) -> Placement | None:
        if not cluster.task_aware:
            raise ValueError("the hami policy needs SimCluster(task_aware=True)")
        sign = 1.0 if self.node_policy == "binpack" else -1.0
        best = _argmax_groups(
            (sign * self._node_score(key), members)
            for key, members in cluster.feasible_groups(shape)
            if self._node_ok(key, shape)
        )
        if not best:
            return None
        i = _pick(rng, best, cluster.tie_first)
        return i, self.devices_on(cluster, i, shape)

    def devices_on(self, cluster: SimCluster, i: int, shape: Shape) -> list[int]:
        if shape.num_gpu == 0:
            return []
        frees = cluster.nodes[i].gpu_free_milli
        tasks = cluster.tasks[i]
        d = shape.gpu_milli
        scored = []
        for g, (free, t) in enumerate(zip(frees, tasks)):
            if self._device_ok(free, t, shape):
                score = (t + 1) / self.split + 2.0 * (GPU_MILLI - free + d) / GPU_MILLI
                scored.append((score, g))
        if self.gpu_policy == "binpack":
            scored.sort(key=lambda sg: (-sg[0], sg[1]))
        else:
            scored.sort()
        out = [g for _, g in scored[: shape.num_gpu]]
        assert len(out) == shape.num_gpu
        return sorted(out)


POLICY_NAMES = ("fgd", "fgd-exact", "bestfit", "random", "hami")


def make_policy(name: str, *, workload: Workload | None = None, **options) -> Policy:
    """A policy by name: ``fgd`` (quantized like the reference), ``fgd-exact``,
    ``bestfit``, ``random``, ``hami`` (options ``node_policy``, ``gpu_policy``,
    ``split_count``; also spelled ``hami-<node>-<gpu>``, e.g.
    ``hami-binpack-spread``)."""
    if name in ("fgd", "fgd-exact"):
        if workload is None:
            raise ValueError("the fgd policy needs the target workload M")
        return FGD(workload, quantize=(name == "fgd"), **options)
    if name == "bestfit":
        return BestFit()
    if name == "random":
        return Random()
    if name == "hami" or name.startswith("hami-"):
        parts = name.split("-")
        if len(parts) == 3:
            options.setdefault("node_policy", parts[1])
            options.setdefault("gpu_policy", parts[2])
        elif len(parts) != 1:
            raise ValueError(f"unknown policy {name!r}: use hami-<binpack|spread>-<binpack|spread>")
        return HAMi(**options)
    raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICY_NAMES)}, hami-<node>-<gpu>)")
