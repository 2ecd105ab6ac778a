"""GPU fragmentation model: FGD's node and cluster fragmentation, plus cheap signals.

Pure model, no I/O.  Units: GPU capacity is in **milli-GPU** (1000 = one whole
GPU), CPU in milli-cores, memory in MiB.

Definitions (``../shared/reference/scheduling-signals.md`` §5.1, from Weng et
al., "Beware of Fragmentation", USENIX ATC'23, and the authors' reference
implementation hkust-adsl/kubernetes-scheduler-simulator ``pkg/utils/frag.go``
and ``pkg/simulator/plugin/fgd_score.go``):

* A task shape m asks for CPU, a GPU demand D_m (0 for CPU-only, a fraction
  for a GPU-sharing task, k >= 1 whole GPUs) and optionally a set of GPU models.
* **F_n(m)**, the free GPU on node n that m cannot use:

  - *Case 1*, m cannot run on n at all (n lacks CPU for m; n's GPU model is not
    acceptable; n has fewer than k GPUs with free >= min(D_m, 1); or m is
    CPU-only): all free GPU of n, ``sum(R_g)``.
  - *Case 2*, m can run on n: the free GPU on the GPUs too small for m,
    ``sum(R_g for R_g < min(D_m, 1))``.

  As in the reference implementation, memory and pod slots play no part in
  F_n(m) (its node/pod resource model has CPU and GPU only).  :func:`fits`,
  which decides where a task can actually be placed, does check them.
* **F_n(M) = sum_m p_m * F_n(m)** over the target workload M (shapes with
  popularities p_m summing to 1); **F_N(M) = sum_n F_n(M)**; the
  **fragmentation rate** is F_N(M) / (total free GPU).
* **FGD** places a task where ``Δ = F_n'(M) - F_n(M)`` is smallest, n' being n
  after the hypothetical placement.

Performance: a workload is compiled once (per distinct GPU threshold and per
GPU model) and F_n(M) is memoised on the node's fragmentation-relevant state
(GPU model, the CPU "level" between the workload's distinct CPU requests, and
the sorted per-GPU free list), so identical nodes cost one dictionary lookup.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "ClusterFragmentation",
    "NodeState",
    "Shape",
    "Workload",
    "blocked_by_fragmentation",
    "fgd_choice",
    "fits",
    "largest_gpu_request",
    "largest_placeable",
    "node_fragmentation",
    "node_fragmentation_workload",
    "place",
    "stranded_gpus",
    "unplace",
    "unplaceable_free",
    "workload_from_counts",
]

GPU_MILLI = 1000  #: one whole GPU in milli-GPU


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True, slots=True)
class Shape:
    """One task shape m.

    ``cpu_milli``: CPU request (milli-cores).  ``num_gpu``: 0 for a CPU-only
    task, k >= 1 otherwise.  ``gpu_milli``: per-GPU demand in milli-GPU, 1..1000;
    below 1000 means GPU sharing, which requires ``num_gpu == 1``; 0 for
    CPU-only.  ``gpu_types``: acceptable GPU models (node ``gpu_type``), empty =
    any.  ``memory_mib``: memory request (used by :func:`fits`, not by F_n(m)).
    """

    cpu_milli: int
    num_gpu: int
    gpu_milli: int
    gpu_types: frozenset[str] = frozenset()
    memory_mib: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.gpu_types, frozenset):
            types = self.gpu_types
            if isinstance(types, str):
                types = [t for t in types.split("|") if t]
            object.__setattr__(self, "gpu_types", frozenset(types))
        if self.cpu_milli < 0 or self.memory_mib < 0:
            raise ValueError(f"negative request in {self!r}")
        if self.num_gpu < 0:
            raise ValueError(f"num_gpu must be >= 0: {self!r}")
        if self.num_gpu == 0:
            if self.gpu_milli != 0:
                raise ValueError(f"CPU-only shape with gpu_milli != 0: {self!r}")
        elif not 1 <= self.gpu_milli <= GPU_MILLI:
            raise ValueError(f"gpu_milli must be 1..1000: {self!r}")
        elif self.gpu_milli < GPU_MILLI and self.num_gpu != 1:
            raise ValueError(f"GPU sharing (gpu_milli < 1000) needs num_gpu == 1: {self!r}")

    @property
    def gpu_demand_milli(self) -> int:
        """Total GPU demand in milli-GPU: num_gpu*1000 (whole), gpu_milli (sharing), 0 (CPU-only)."""
        if self.num_gpu == 0:
            return 0
        if self.gpu_milli < GPU_MILLI:
            return self.gpu_milli
        return self.num_gpu * GPU_MILLI

    @property
    def is_sharing(self) -> bool:
        return self.num_gpu == 1 and self.gpu_milli < GPU_MILLI

    @property
    def per_gpu_milli(self) -> int:
        """What one placement takes from each GPU it uses (1000 for whole GPUs)."""
        return self.gpu_milli if self.num_gpu else 0

    def accepts(self, gpu_type: str) -> bool:
        """Whether a node of model ``gpu_type`` is acceptable (always for CPU-only tasks)."""
        return self.num_gpu == 0 or not self.gpu_types or gpu_type in self.gpu_types

    def sort_key(self) -> tuple:
        return (self.num_gpu, self.gpu_milli, self.cpu_milli, tuple(sorted(self.gpu_types)), self.memory_mib)


@dataclass(frozen=True, slots=True)
class Workload:
    """The target workload M: ``(shape, popularity p_m)`` pairs, popularities summing to 1."""

    shapes: tuple[tuple[Shape, float], ...]

    def __post_init__(self) -> None:
        shapes = tuple((s, float(p)) for s, p in self.shapes)
        object.__setattr__(self, "shapes", shapes)
        total = 0.0
        for s, p in shapes:
            if not isinstance(s, Shape):
                raise TypeError(f"not a Shape: {s!r}")
            if not (p >= 0.0 and math.isfinite(p)):
                raise ValueError(f"popularity must be finite and >= 0: {p!r}")
            total += p
        if shapes and abs(total - 1.0) > 1e-6:
            raise ValueError(f"popularities sum to {total}, not 1 (use Workload.from_weights)")

    @classmethod
    def from_weights(cls, weights: Mapping[Shape, float] | Iterable[tuple[Shape, float]]) -> Workload:
        """A workload from non-negative weights (a configured mix), renormalised to sum to 1."""
        items = list(weights.items() if isinstance(weights, Mapping) else weights)
        total = math.fsum(w for _, w in items)
        if not total > 0:
            raise ValueError("workload weights sum to 0")
        return cls(tuple((s, w / total) for s, w in items))


def workload_from_counts(
    counts: Mapping[Shape, int],
    coverage: float = 0.6,
    *,
    include_cpu_only: bool = True,
    ignore_memory: bool = True,
) -> Workload:
    """The target workload M from observed shape counts (the reference simulator's "typical pods").

    Shapes are taken most frequent first (ties: smaller :meth:`Shape.sort_key`
    first, so the result is deterministic) until their cumulative share of all
    counted pods is >= ``coverage``; their popularities are then renormalised to
    sum to 1.  ``include_cpu_only=False`` drops CPU-only shapes before counting
    (the simulator's ``isInvolvedCpuPods``).  ``ignore_memory=True`` (default)
    merges shapes that differ only in memory and sets ``memory_mib=0``, because
    a typical pod is a (CPU, GPU count, GPU milli, GPU type) shape in §5.1 and
    memory does not enter F_n(m).
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1]: {coverage!r}")
    merged: dict[Shape, int] = {}
    for shape, n in counts.items():
        if n < 0:
            raise ValueError(f"negative count for {shape!r}")
        if n == 0 or (not include_cpu_only and shape.num_gpu == 0):
            continue
        if ignore_memory and shape.memory_mib:
            shape = replace(shape, memory_mib=0)
        merged[shape] = merged.get(shape, 0) + n
    total = sum(merged.values())
    if total == 0:
        raise ValueError("no shapes to build a workload from")
    ordered = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0].sort_key()))
    chosen: list[tuple[Shape, int]] = []
    cum = 0
    for shape, n in ordered:
        chosen.append((shape, n))
        cum += n
        if cum >= coverage * total:
            break
    return Workload(tuple((s, n / cum) for s, n in chosen))


# --------------------------------------------------------------------------- nodes


@dataclass(slots=True)
class NodeState:
    """A node's capacity and what is free on it.

    ``gpu_free_milli``: one entry per GPU, 0..1000 milli-GPU free (1000 = idle).
    ``pods_free``: pod slots left, ``None`` = unknown (not limiting).
    """

    name: str
    gpu_type: str
    cpu_milli: int
    memory_mib: int
    cpu_free_milli: int
    memory_free_mib: int
    gpu_free_milli: list[int]
    pods_free: int | None = None

    @property
    def gpu_free_total(self) -> int:
        return sum(self.gpu_free_milli)


def _gpu_choice(gpus: Sequence[int], shape: Shape) -> list[int] | None:
    """GPU indices for ``shape`` considering GPUs only (no CPU/memory/type check)."""
    k = shape.num_gpu
    if k == 0:
        return []
    if shape.gpu_milli >= GPU_MILLI:
        idle = [i for i, g in enumerate(gpus) if g >= GPU_MILLI]
        return idle[:k] if len(idle) >= k else None
    d = shape.gpu_milli
    best = -1
    best_free = GPU_MILLI + 1
    for i, g in enumerate(gpus):
        if d <= g < best_free:
            best, best_free = i, g
    return [best] if best >= 0 else None


def fits(node: NodeState, shape: Shape) -> list[int] | None:
    """GPU indices a placement of ``shape`` on ``node`` would use, or ``None`` if it cannot run there.

    Checks CPU, memory, pod slots, GPU model and GPUs.  Whole GPUs: the first k
    idle GPUs (idle GPUs are interchangeable).  Sharing: best fit, the GPU with
    the least free milli-GPU that still fits (lowest index on ties).  CPU-only: ``[]``.
    """
    if node.cpu_free_milli < shape.cpu_milli or node.memory_free_mib < shape.memory_mib:
        return None
    if node.pods_free is not None and node.pods_free < 1:
        return None
    if not shape.accepts(node.gpu_type):
        return None
    return _gpu_choice(node.gpu_free_milli, shape)


def _frag_one(gpus: Sequence[int], cpu_free: int, gpu_type: str, shape: Shape) -> int:
    """F_n(m) (§5.1 Case 1 / Case 2) from raw node state, milli-GPU."""
    total = sum(gpus)
    if total == 0 or shape.num_gpu == 0:
        return total  # CPU-only task: all free GPU is fragment (0 on a GPU-less node)
    if cpu_free < shape.cpu_milli or not shape.accepts(gpu_type):
        return total
    thr = shape.gpu_milli  # min(D_m, 1) in milli: 1000 for whole GPUs
    count = 0
    small = 0
    for g in gpus:
        if g >= thr:
            count += 1
        else:
            small += g
    return small if count >= shape.num_gpu else total


def node_fragmentation(node: NodeState, shape: Shape) -> int:
    """F_n(m) in milli-GPU: the free GPU on ``node`` that task ``shape`` cannot use (§5.1).

    Case 1 (all free GPU): the node lacks CPU, its GPU model is not accepted,
    it has fewer than k GPUs with free >= min(D_m, 1), or the task is CPU-only.
    Case 2 (the task fits): the free GPU on GPUs with free < min(D_m, 1).
    Memory and pod slots are not considered, as in the reference ``frag.go``.
    """
    return _frag_one(node.gpu_free_milli, node.cpu_free_milli, node.gpu_type, shape)


# --------------------------------------------------------------------------- compiled workload


class _Compiled:
    """A workload prepared for fast F_n(M): per GPU model, one entry
    ``(cpu_level_needed, threshold_index, k, p)`` per GPU shape, the level being
    unreachable for shapes that do not accept the model; plus a memo of F_n(M)
    keyed by ``(gpu_type, cpu_level, sorted free GPU tuple)``."""

    __slots__ = ("workload", "w_cpu_only", "thresholds", "cpu_reqs", "_by_type", "memo", "gpu_shapes")

    MEMO_MAX = 1 << 17

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.w_cpu_only = 0.0
        gpu_shapes: list[tuple[Shape, float]] = []
        for s, p in workload.shapes:
            if s.num_gpu == 0:
                self.w_cpu_only += p
            elif p > 0:
                gpu_shapes.append((s, p))
        self.gpu_shapes = gpu_shapes
        self.thresholds = sorted({s.gpu_milli for s, _ in gpu_shapes})
        # CPU level of a node = number of distinct CPU requests it can satisfy
        self.cpu_reqs = sorted({s.cpu_milli for s, _ in gpu_shapes})
        self._by_type: dict[str, tuple] = {}
        self.memo: dict[tuple, float] = {}

    def entries(self, gpu_type: str) -> tuple:
        e = self._by_type.get(gpu_type)
        if e is None:
            ti = {t: i for i, t in enumerate(self.thresholds)}
            # level needed: node level L satisfies cpu_reqs[:L]; shape ok iff L > index(cpu)
            never = len(self.cpu_reqs) + 1  # a level no node reaches: model not accepted
            e = tuple(
                (
                    self.cpu_reqs.index(s.cpu_milli) + 1 if not s.gpu_types or gpu_type in s.gpu_types else never,
                    ti[s.gpu_milli],
                    s.num_gpu,
                    p,
                )
                for s, p in self.gpu_shapes
            )
            self._by_type[gpu_type] = e
        return e

    def key(self, gpu_type: str, cpu_free: int, gpus: Iterable[int]) -> tuple:
        return (gpu_type, bisect_right(self.cpu_reqs, cpu_free), tuple(sorted(gpus)))

    def frag(self, key: tuple) -> float:
        """F_n(M) for a memo key (milli-GPU)."""
        f = self.memo.get(key)
        if f is not None:
            return f
        f = self.compute(key)
        if len(self.memo) >= self.MEMO_MAX:
            self.memo.clear()
        self.memo[key] = f
        return f

    def compute(self, key: tuple) -> float:
        """F_n(M) for a memo key, not memoised."""
        gpu_type, level, gpus = key
        total = sum(gpus)
        if total == 0:
            f = 0.0
        else:
            # per threshold: number of GPUs with free >= thr and their free sum
            stats = []
            for thr in self.thresholds:
                c = 0
                s = 0
                for g in gpus:
                    if g >= thr:
                        c += 1
                        s += g
                stats.append((c, total - s))
            # CPU-only shapes, then GPU shapes in workload order: Case 2 where the
            # CPU level, the model and the GPU count allow, Case 1 otherwise
            f = self.w_cpu_only * total
            for need, ti, k, p in self.entries(gpu_type):
                if level >= need:
                    c, small = stats[ti]
                    f += p * (small if c >= k else total)
                else:
                    f += p * total
        return f


_COMPILED: dict[int, _Compiled] = {}
_COMPILED_MAX = 16


def _compiled(workload: Workload) -> _Compiled:
    c = _COMPILED.get(id(workload))
    if c is not None and c.workload is workload:
        return c
    c = _Compiled(workload)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[id(workload)] = c  # holds a strong reference, so the id is not reused meanwhile
    return c


def node_fragmentation_workload(node: NodeState, workload: Workload) -> float:
    """F_n(M) = sum_m p_m * F_n(m), milli-GPU (§5.1)."""
    c = _compiled(workload)
    return c.frag(c.key(node.gpu_type, node.cpu_free_milli, node.gpu_free_milli))


# --------------------------------------------------------------------------- FGD and placement


def fgd_choice(node: NodeState, shape: Shape, workload: Workload) -> tuple[float, list[int]] | None:
    """FGD on one node: the feasible placement with the smallest Δ = F_n'(M) - F_n(M) (milli-GPU).

    Candidates: for a sharing task each GPU with enough free (GPUs with equal
    free milli are equivalent, the lowest index stands for them); for k whole
    GPUs the first k idle GPUs (idle GPUs are interchangeable); for a CPU-only
    task ``[]``.  Ties on Δ go to the GPU with the least free (best fit), then
    the lowest index.  ``None`` when :func:`fits` says the task cannot run here.
    Reference: ``pkg/simulator/plugin/fgd_score.go`` (§5.1).
    """
    choice = fits(node, shape)
    if choice is None:
        return None
    c = _compiled(workload)
    gpus = node.gpu_free_milli
    gtype = node.gpu_type
    before = c.frag(c.key(gtype, node.cpu_free_milli, gpus))
    cpu_after = node.cpu_free_milli - shape.cpu_milli
    if not shape.is_sharing:
        after = list(gpus)
        for i in choice:
            after[i] -= GPU_MILLI
        return c.frag(c.key(gtype, cpu_after, after)) - before, choice
    d = shape.gpu_milli
    best: tuple[float, int, int] | None = None
    seen: set[int] = set()
    after = list(gpus)
    for i, g in enumerate(gpus):
        if g < d or g in seen:
            continue
        seen.add(g)
        after[i] = g - d
        delta = c.frag(c.key(gtype, cpu_after, after)) - before
        after[i] = g
        cand = (delta, g, i)
        if best is None or cand < best:
            best = cand
    assert best is not None
    return best[0], [best[2]]


def _check_gpus(node: NodeState, shape: Shape, gpus: Sequence[int]) -> int:
    want = shape.num_gpu
    if len(gpus) != want or len(set(gpus)) != want:
        raise ValueError(f"{shape!r} needs {want} distinct GPU indices, got {list(gpus)!r}")
    n = len(node.gpu_free_milli)
    for i in gpus:
        if not 0 <= i < n:
            raise ValueError(f"GPU index {i} out of range on node {node.name!r} ({n} GPUs)")
    return shape.per_gpu_milli


def place(node: NodeState, shape: Shape, gpus: list[int]) -> None:
    """Apply a placement: subtract CPU, memory, per-GPU milli and one pod slot.

    Raises ``ValueError`` (and changes nothing) if a GPU, the CPU, the memory or
    the pod slots would go negative, or ``gpus`` does not match the shape.
    """
    per = _check_gpus(node, shape, gpus)
    for i in gpus:
        if node.gpu_free_milli[i] < per:
            raise ValueError(f"GPU {i} on {node.name!r} has {node.gpu_free_milli[i]} milli free, {per} needed")
    if node.cpu_free_milli < shape.cpu_milli or node.memory_free_mib < shape.memory_mib:
        raise ValueError(f"{node.name!r} lacks CPU or memory for {shape!r}")
    if node.pods_free is not None and node.pods_free < 1:
        raise ValueError(f"{node.name!r} has no pod slot left")
    for i in gpus:
        node.gpu_free_milli[i] -= per
    node.cpu_free_milli -= shape.cpu_milli
    node.memory_free_mib -= shape.memory_mib
    if node.pods_free is not None:
        node.pods_free -= 1


def unplace(node: NodeState, shape: Shape, gpus: list[int]) -> None:
    """Undo :func:`place` (add back CPU, memory, per-GPU milli and the pod slot).

    Raises ``ValueError`` (and changes nothing) if a GPU would exceed 1000 milli.
    """
    per = _check_gpus(node, shape, gpus)
    for i in gpus:
        if node.gpu_free_milli[i] + per > GPU_MILLI:
            raise ValueError(f"GPU {i} on {node.name!r} would exceed 1000 milli free")
    for i in gpus:
        node.gpu_free_milli[i] += per
    node.cpu_free_milli += shape.cpu_milli
    node.memory_free_mib += shape.memory_mib
    if node.pods_free is not None:
        node.pods_free += 1


# --------------------------------------------------------------------------- cluster view


class ClusterFragmentation:
    """Incremental cluster view of FGD fragmentation (milli-GPU).

    Keeps, per node, a snapshot of the fragmentation-relevant state (model, CPU
    free, free GPU list), F_n(M) and its free GPU; :meth:`set_node` recomputes
    only that node, in O(#GPUs x #shapes) or one memo lookup.  ``total_milli``
    (F_N(M)) is kept as an integer count of 2**-24 milli-GPU (each node's F_n(M)
    rounded to that grain, < 6e-8 milli), so it is O(1) to read and exactly the
    same number whichever order of updates led to the same node states.
    """

    __slots__ = ("_c", "_nodes", "_total_q", "free_milli")

    _Q = float(1 << 24)  #: total_milli grain: 2**-24 milli-GPU

    def __init__(self, workload: Workload) -> None:
        self._c = _compiled(workload)
        # name -> (gpu_type, cpu_free, gpus in index order, F_n(M), free milli, F_n(M) in grains)
        self._nodes: dict[str, tuple[str, int, tuple[int, ...], float, int, int]] = {}
        self._total_q = 0
        self.free_milli = 0

    @property
    def workload(self) -> Workload:
        return self._c.workload

    def set_node(self, node: NodeState) -> None:
        """Add or replace a node (a snapshot of its state is taken); recomputes only this node."""
        c = self._c
        gpus = tuple(node.gpu_free_milli)
        f = c.frag((node.gpu_type, bisect_right(c.cpu_reqs, node.cpu_free_milli), tuple(sorted(gpus))))
        fq = round(f * self._Q)
        free = sum(gpus)
        old = self._nodes.get(node.name)
        if old is not None:
            self.free_milli -= old[4]
            self._total_q -= old[5]
        self._nodes[node.name] = (node.gpu_type, node.cpu_free_milli, gpus, f, free, fq)
        self.free_milli += free
        self._total_q += fq

    def remove_node(self, name: str) -> None:
        """Forget a node (no-op if unknown)."""
        old = self._nodes.pop(name, None)
        if old is not None:
            self.free_milli -= old[4]
            self._total_q -= old[5]

    def set_workload(self, workload: Workload) -> None:
        """Change M and recompute every node."""
        self._c = _compiled(workload)
        self.recompute()

    def recompute(self, *, clear_memo: bool = False) -> None:
        """Recompute F_n(M) for every node (``clear_memo`` also drops memoised node states)."""
        c = self._c
        if clear_memo:
            c.memo.clear()
        reqs = c.cpu_reqs
        frag = c.frag
        q = self._Q
        nodes = self._nodes
        total = 0
        for name, (gtype, cpu, gpus, _f, free, _fq) in nodes.items():
            f = frag((gtype, bisect_right(reqs, cpu), tuple(sorted(gpus))))
            fq = round(f * q)
            total += fq
            nodes[name] = (gtype, cpu, gpus, f, free, fq)
        self._total_q = total

    @property
    def total_milli(self) -> float:
        """F_N(M) = sum_n F_n(M), milli-GPU."""
        return self._total_q / self._Q

    def rate(self) -> float:
        """Fragmentation rate F_N(M) / free GPU, 0..1 (0 when nothing is free)."""
        free = self.free_milli
        return self.total_milli / free if free > 0 else 0.0

    def node(self, name: str) -> float:
        """F_n(M) of one node, milli-GPU (KeyError if unknown)."""
        return self._nodes[name][3]

    def node_free(self, name: str) -> int:
        return self._nodes[name][4]

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def names(self) -> list[str]:
        return list(self._nodes)

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` most fragmented nodes (F_n(M) > 0), largest first, ties by name."""
        if n <= 0:
            return []
        items = ((name, v[3]) for name, v in self._nodes.items() if v[3] > 0)
        return heapq.nsmallest(n, items, key=lambda kv: (-kv[1], kv[0]))

    def by_gpu_type(self) -> dict[str, tuple[float, int]]:
        """Per GPU model: (sum of F_n(M), free milli-GPU)."""
        out: dict[str, list] = {}
        for gtype, _cpu, _gpus, f, free, _fq in self._nodes.values():
            acc = out.get(gtype)
            if acc is None:
                out[gtype] = [[f], free]
            else:
                acc[0].append(f)
                acc[1] += free
        return {t: (math.fsum(fs), free) for t, (fs, free) in out.items()}


# --------------------------------------------------------------------------- cheap signals


def stranded_gpus(
    nodes: Iterable[NodeState], *, min_cpu_milli: int = 1, min_memory_mib: int = 1
) -> list[tuple[str, int, str]]:
    """Free GPU on nodes where another resource is exhausted (Borg's "stranded", §5.3).

    Returns ``(node name, free milli-GPU, reason)`` for each node with free GPU
    whose CPU (free < ``min_cpu_milli``), memory (free < ``min_memory_mib``) or
    pod slots (0 left) are exhausted; ``reason`` is the first of ``cpu``,
    ``memory``, ``pods`` that applies.  Pass the smallest GPU task's requests as
    the minimums to count nodes that can no longer take any GPU task.
    """
    out = []
    for n in nodes:
        free = sum(n.gpu_free_milli)
        if free <= 0:
            continue
        if n.cpu_free_milli < min_cpu_milli:
            reason = "cpu"
        elif n.memory_free_mib < min_memory_mib:
            reason = "memory"
        elif n.pods_free is not None and n.pods_free < 1:
            reason = "pods"
        else:
            continue
        out.append((n.name, free, reason))
    return out


def _copies_on_node(node: NodeState, shape: Shape) -> int:
    if not shape.accepts(node.gpu_type):
        return 0
    limits = []
    if shape.cpu_milli > 0:
        limits.append(node.cpu_free_milli // shape.cpu_milli)
    if shape.memory_mib > 0:
        limits.append(node.memory_free_mib // shape.memory_mib)
    if node.pods_free is not None:
        limits.append(node.pods_free)
    if shape.num_gpu:
        if shape.is_sharing:
            limits.append(sum(g // shape.gpu_milli for g in node.gpu_free_milli))
        else:
            limits.append(sum(1 for g in node.gpu_free_milli if g >= GPU_MILLI) // shape.num_gpu)
    if not limits:
        raise ValueError(f"{shape!r} requests nothing: unbounded on {node.name!r}")
    return max(0, min(limits))


def largest_placeable(nodes: Iterable[NodeState], shapes: Iterable[Shape]) -> dict[Shape, int]:
    """How many more copies of each shape fit on the cluster as it is.

    Each shape is counted on its own (as if it were the only one placed), not
    jointly.  Per node the count is exact: ``min`` over CPU, memory and pod
    slots of ``free // request``, and for GPUs ``sum(free_g // d)`` for a sharing
    task (every copy takes d from one GPU) or ``idle GPUs // k`` for whole GPUs.
    Summed over nodes.  Raises ``ValueError`` for a shape that requests nothing
    on a node with unknown pod slots (unbounded).
    """
    nodes = list(nodes)
    return {s: sum(_copies_on_node(n, s) for n in nodes) for s in shapes}


def largest_gpu_request(nodes: Iterable[NodeState]) -> tuple[int, int]:
    """(most idle GPUs on one node, most free milli-GPU on one GPU): the largest
    whole-GPU and sharing requests the cluster could serve, GPU-wise (§5.3 signal 1)."""
    whole = 0
    part = 0
    for n in nodes:
        idle = 0
        for g in n.gpu_free_milli:
            if g >= GPU_MILLI:
                idle += 1
            if g > part:
                part = g
        if idle > whole:
            whole = idle
    return whole, part


def unplaceable_free(nodes: Iterable[NodeState], shape: Shape) -> int:
    """Free milli-GPU that cannot serve ``shape``: sum over nodes of F_n(m), with
    Case 1 (all free GPU) also applying where :func:`fits` fails for memory or pod
    slots.  Equals ``sum(node_fragmentation(n, shape))`` when memory and pod slots
    are not binding.  Divide by the cluster's free GPU for the §5.3 ratio."""
    out = 0
    for n in nodes:
        if n.memory_free_mib < shape.memory_mib or (n.pods_free is not None and n.pods_free < 1):
            out += sum(n.gpu_free_milli)
        else:
            out += _frag_one(n.gpu_free_milli, n.cpu_free_milli, n.gpu_type, shape)
    return out


def blocked_by_fragmentation(nodes: Iterable[NodeState], shape: Shape) -> bool:
    """True when ``shape`` fits the cluster's total free capacity but no single node.

    Totals: CPU, memory, and free milli-GPU (on nodes of an acceptable model)
    >= the task's GPU demand (:attr:`Shape.gpu_demand_milli`).  No node: :func:`fits`
    is ``None`` everywhere.  This is the pending pod that reads "Insufficient
    nvidia.com/gpu" while the cluster has enough free GPU in total (§5.3 signal 4).
    """
    cpu = mem = gpu = 0
    for n in nodes:
        if fits(n, shape) is not None:
            return False
        cpu += n.cpu_free_milli
        mem += n.memory_free_mib
        if shape.accepts(n.gpu_type):
            gpu += sum(n.gpu_free_milli)
    return cpu >= shape.cpu_milli and mem >= shape.memory_mib and gpu >= shape.gpu_demand_milli
