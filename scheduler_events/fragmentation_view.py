"""The cluster's fragmentation as the collector sees it.

Turns the decision engine's state into :class:`~scheduler_events.fragmentation.NodeState`
values and keeps a :class:`~scheduler_events.fragmentation.ClusterFragmentation`
up to date, recomputing only the nodes the engine marked dirty.

**Where a GPU's free fraction comes from** (in this order):

1. **HAMi allocations** on nodes with a HAMi node register annotation: for each
   registered device, free = the smaller of the free compute share
   (1 − Σ gpucores/100 of the pods holding it, out of the registered share)
   and the free memory share (1 − Σ gpumem / registered memory); 0 when the
   device already runs its ``deviceSplitCount`` tasks or is unhealthy.  The
   smaller share is what the next task can count on: HAMi rejects a pod on
   either (CardInsufficientCore / CardInsufficientMemory).
2. **Whole-device extended resources** (``nvidia.com/gpu`` without HAMi,
   ``amd.com/gpu``, ``huawei.com/Ascend910B3``...): ``allocatable`` devices
   minus those requested by pods bound to the node, each idle device 1000
   milli; the model name comes from the node label
   ``nvidia.com/gpu.product`` when present, else the resource name.
3. MIG instances are not modelled as fractions yet (a MIG profile is a
   fixed-size slice, not a share); nodes with only MIG resources are left out
   of the GPU totals and counted in ``skipped_nodes``.

CPU, memory and pod slots are the node's allocatable minus the requests of all
bound, running pods (accelerator or not), so stranded devices are real.

**The target workload M** is observed: the shapes of the pods the collector
tracks (pending and placed), weighted by how many pods have each shape, the most
frequent covering ``coverage`` (default 60%) of them; with fewer than
``min_pods`` observed pods the configured mix (``fallback``) is used.  A HAMi
sharing request becomes ``gpu_milli`` = the larger of its core share and its
memory share of the median registered device.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scheduler_events.decisions import DecisionEngine
from scheduler_events.fragmentation import (
    ClusterFragmentation,
    NodeState,
    Shape,
    Workload,
    blocked_by_fragmentation,
    largest_placeable,
    stranded_gpus,
    unplaceable_free,
    workload_from_counts,
)
from scheduler_events.model import PlacementDecision

#: The fallback target workload: the GPU-shape shares of Alibaba's
#: cluster-trace-gpu-v2023 default pod list (scheduling-signals.md §5.2:
#: 1x1000 48.0%, CPU-only 13.3%, 1x810 13.2%, 1x470 9.2%, 1x320 4.0%,
#: 1x650 3.1%), with a typical 4-core CPU request; renormalised.
DEFAULT_MIX: tuple[tuple[Shape, float], ...] = (
    (Shape(4000, 1, 1000), 48.0),
    (Shape(4000, 0, 0), 13.3),
    (Shape(4000, 1, 810), 13.2),
    (Shape(4000, 1, 470), 9.2),
    (Shape(4000, 1, 320), 4.0),
    (Shape(4000, 1, 650), 3.1),
)

#: pods x nodes scored by one repack estimate, at most (a few seconds of pure Python)
REPACK_BUDGET = 2_000_000

_WHOLE_DEVICE = ("nvidia.com/gpu", "amd.com/gpu", "hygon.com/dcunum", "kunlunxin.com/xpu", "metax-tech.com/gpu",
                 "cambricon.com/vmlu", "mthreads.com/vgpu", "enflame.com/gcu")


def _model(type_: str) -> str:
    return type_[len("NVIDIA-"):] if type_.startswith("NVIDIA-") else type_


@dataclass(slots=True)
class FragmentationSummary:
    """One computation's answer; GPU amounts in GPUs (milli / 1000)."""

    rate: float
    fragmented_gpus: float
    free_gpus: float
    by_model: dict[str, tuple[float, float]] = field(default_factory=dict)   # model -> (fragmented, free)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    stranded: list[dict[str, Any]] = field(default_factory=list)
    placeable: list[dict[str, Any]] = field(default_factory=list)
    blocked_pods: list[str] = field(default_factory=list)
    workload: list[dict[str, Any]] = field(default_factory=list)
    workload_source: str = "observed"

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": {"fragmentation_rate": self.rate, "fragmented_gpus": self.fragmented_gpus,
                            "free_gpus": self.free_gpus,
                            "by_model": {m: {"fragmented_gpus": f, "free_gpus": fr}
                                         for m, (f, fr) in sorted(self.by_model.items())}},
                "nodes": self.nodes, "stranded": self.stranded, "largest_placeable": self.placeable,
                "blocked_by_fragmentation": self.blocked_pods,
                "workload": {"source": self.workload_source, "shapes": self.workload}}


def shape_label(s: Shape) -> str:
    """A short, bounded label for a shape: ``1x0.47gpu/4cpu``, ``2xgpu/16cpu``, ``cpu-only/4cpu``."""
    cpu = f"{s.cpu_milli / 1000:g}cpu"
    if s.num_gpu == 0:
        return f"cpu-only/{cpu}"
    if s.gpu_milli < 1000:
        return f"1x{s.gpu_milli / 1000:g}gpu/{cpu}"
    return f"{s.num_gpu}xgpu/{cpu}"


class FragmentationView:
    """``refresh()`` then read ``cluster`` / ``summary()``.  Not thread-safe:
    call under the pipeline's lock."""

    def __init__(self, engine: DecisionEngine, *, coverage: float = 0.6, min_pods: int = 20,
                 fallback: Iterable[tuple[Shape, float]] = DEFAULT_MIX, top_n: int = 20) -> None:
        self.engine = engine
        self.coverage = coverage
        self.min_pods = min_pods
        self.fallback = Workload.from_weights(list(fallback))
        self.top_n = top_n
        #: pods x nodes one repack estimate may score (None = no limit, for offline reports)
        self.repack_budget: int | None = REPACK_BUDGET
        self.workload = self.fallback
        self.workload_source = "configured"
        self.cluster = ClusterFragmentation(self.workload)
        self.states: dict[str, NodeState] = {}
        self.skipped_nodes: set[str] = set()
        self._full = True

    # ------------------------------------------------------------ inputs
    def _device_memory_median(self) -> int:
        mems = [d.memory_bytes for n in self.engine.nodes.values() for d in n.devices.values() if d.memory_bytes]
        return int(statistics.median(mems)) if mems else 0

    def shape_of(self, d: PlacementDecision, median_mem: int) -> Shape | None:
        """The FGD shape of one pod (its first accelerator request)."""
        req = d.requests[0] if d.requests else None
        if req is None:
            return None
        cpu = d.cpu_milli
        types = self._acceptable_models(d)
        if req.count > 1 or (req.core_ratio is None and req.memory_bytes is None and req.memory_ratio is None):
            return Shape(cpu, req.count, 1000, types)
        share = max(req.core_ratio or 0.0, req.memory_ratio or 0.0,
                    (req.memory_bytes / median_mem) if (req.memory_bytes and median_mem) else 0.0)
        milli = max(1, min(1000, round(share * 1000))) if share else 1000
        return Shape(cpu, 1, milli, types)

    def _acceptable_models(self, d: PlacementDecision) -> frozenset[str]:
        """Registered models the pod accepts, HAMi-style: ``nvidia.com/use-gputype``
        and ``nouse-gputype`` are comma lists of substrings of the device type.
        Empty = any model."""
        use = [t.strip() for t in d.policies.get("nvidia.com/use-gputype", "").split(",") if t.strip()]
        avoid = [t.strip() for t in d.policies.get("nvidia.com/nouse-gputype", "").split(",") if t.strip()]
        if not use and not avoid:
            return frozenset()
        models = {_model(dev.type) for n in self.engine.nodes.values() for dev in n.devices.values()}
        ok = {m for m in models if (not use or any(u in m for u in use)) and not any(a in m for a in avoid)}
        return frozenset(ok) or frozenset({"(none)"})

    def _observed_workload(self) -> Workload | None:
        median = self._device_memory_median()
        counts: collections.Counter[Shape] = collections.Counter()
        for t in self.engine.pods.values():
            s = self.shape_of(t.decision, median)
            if s is not None:
                counts[s] += 1
        if sum(counts.values()) < self.min_pods:
            return None
        return workload_from_counts(counts, self.coverage)

    def _node_state(self, name: str, exclude: dict[str, PlacementDecision] | None = None) -> NodeState | None:
        info = self.engine.nodes.get(name)
        if info is None or info.cpu_milli is None:
            return None
        used = list(self.engine.node_requests.get(name, [0, 0, 0]))
        for uid, d in (exclude or {}).items():
            if d.node == name and uid in self._cpu_of:
                used[0] -= self._cpu_of[uid][0]
                used[1] -= self._cpu_of[uid][1]
                used[2] -= 1
        gpus: list[int] = []
        gpu_type = ""
        if info.devices:
            usage = self._usage
            for dev in sorted(info.devices.values(), key=lambda d: (d.index if d.index is not None else 0, d.uuid)):
                u = usage.get(dev.uuid, {"memory_allocated": 0, "cores_allocated": 0.0, "shared": 0})
                if dev.healthy is False or (dev.split_count is not None and u["shared"] >= dev.split_count):
                    gpus.append(0)
                    continue
                core_total = dev.core_ratio or 1.0
                core_free = max(0.0, 1.0 - u["cores_allocated"] / core_total)
                mem_free = max(0.0, 1.0 - u["memory_allocated"] / dev.memory_bytes) if dev.memory_bytes else 1.0
                gpus.append(round(min(core_free, mem_free) * 1000))
                gpu_type = gpu_type or _model(dev.type)
        else:
            for res in _WHOLE_DEVICE:
                n = info.allocatable.get(res)
                if n:
                    held = sum(a.count for d in self._placed_on.get(name, []) for a in d.requests if a.resource == res)
                    gpus = [1000] * max(0, n - held) + [0] * min(n, held)
                    gpu_type = info.labels.get("nvidia.com/gpu.product", res)
                    break
            if not gpus and any(k.startswith("nvidia.com/mig-") for k in info.allocatable):
                self.skipped_nodes.add(name)
        return NodeState(name=name, gpu_type=gpu_type or "none", cpu_milli=info.cpu_milli,
                         memory_mib=info.memory_mib or 0,
                         cpu_free_milli=max(0, info.cpu_milli - used[0]),
                         memory_free_mib=max(0, (info.memory_mib or 0) - used[1]), gpu_free_milli=gpus,
                         pods_free=None if info.pods is None else max(0, info.pods - used[2]))

    # ------------------------------------------------------------ refresh
    def refresh(self) -> int:
        """Bring the model up to date; returns the number of nodes recomputed."""
        self._usage = self.engine.device_usage()
        self._cpu_of = {uid: (res[1], res[2]) for uid, res in self.engine._pod_res.items()}  # noqa: SLF001
        self._placed_on: dict[str, list[PlacementDecision]] = collections.defaultdict(list)
        for t in self.engine.pods.values():
            if t.decision.node and not t.terminated and t.decision.outcome in ("placed", "failed"):
                self._placed_on[t.decision.node].append(t.decision)
        observed = self._observed_workload()
        wl, src = (observed, "observed") if observed is not None else (self.fallback, "configured")
        if wl.shapes != self.workload.shapes:
            self.workload, self.workload_source = wl, src
            self.cluster.set_workload(wl)
        dirty = self.engine.take_dirty()
        if self._full:
            dirty = set(self.engine.nodes) | set(self.states)
            self._full = False
        n = 0
        for name in dirty:
            state = self._node_state(name)
            if state is None:
                if name in self.states:
                    del self.states[name]
                    self.cluster.remove_node(name)
                continue
            self.states[name] = state
            self.cluster.set_node(state)
            n += 1
        return n

    def repack_estimate(self) -> dict[str, Any]:
        """What a repack of movable pods by FGD would recover.

        Movable: placed pods with a controller (``ownerReferences``: a
        ReplicaSet, StatefulSet, Job... recreates them elsewhere).  They are
        taken off their nodes and placed again, largest GPU demand first, each
        on the node and GPUs where FGD's Δ is smallest.  Returns
        ``{"movable_pods", "replaced_pods", "unplaced_pods",
        "fragmented_gpus_before", "fragmented_gpus_after", "recovered_gpus"}``
        (GPUs in whole-GPU units).  An estimate: it ignores affinity, taints
        and disruption budgets.
        """
        from scheduler_events.fragmentation import fgd_choice, node_fragmentation_workload, place

        median = self._device_memory_median()
        movable = {t.decision.uid: t.decision for t in self.engine.pods.values()
                   if t.decision.outcome == "placed" and not t.terminated and t.decision.owner_kind
                   and t.decision.node in self.states and t.decision.devices}
        before = self.cluster.total_milli / 1000
        budget = self.repack_budget
        if budget is not None and len(movable) * max(1, len(self.states)) > budget:
            # FGD scores every node for every pod: beyond this the estimate would hold the pipeline for long
            return {"movable_pods": len(movable), "replaced_pods": 0, "unplaced_pods": 0,
                    "fragmented_gpus_before": before, "fragmented_gpus_after": before, "recovered_gpus": 0.0,
                    "skipped": f"{len(movable)} movable pods x {len(self.states)} nodes is over the inline budget "
                               f"({budget:,} placements scored); run the report offline (--from a dump)"}
        saved_usage = self._usage
        try:
            keep = {uuid: dict(u) for uuid, u in saved_usage.items()}
            for d in movable.values():
                for a in d.devices:
                    u = keep.get(a.uuid)
                    if u is not None:
                        u["memory_allocated"] -= a.memory_bytes or 0
                        u["cores_allocated"] -= a.core_ratio or 0.0
                        u["shared"] -= 1
            self._usage = keep
            states = {name: self._node_state(name, movable) for name in self.states}
        finally:
            self._usage = saved_usage
        states = {k: v for k, v in states.items() if v is not None}
        shapes = [(self.shape_of(d, median), d) for d in movable.values()]
        shapes = [(s, d) for s, d in shapes if s is not None]
        shapes.sort(key=lambda x: -x[0].gpu_demand_milli)
        unplaced = 0
        for shape, _ in shapes:
            best = None
            for st in states.values():
                choice = fgd_choice(st, shape, self.workload)
                if choice is not None and (best is None or choice[0] < best[0]):
                    best = (choice[0], st, choice[1])
            if best is None:
                unplaced += 1
                continue
            place(best[1], shape, best[2])
        after = sum(node_fragmentation_workload(st, self.workload) for st in states.values()) / 1000
        return {"movable_pods": len(movable), "replaced_pods": len(shapes) - unplaced, "unplaced_pods": unplaced,
                "fragmented_gpus_before": before, "fragmented_gpus_after": after,
                "recovered_gpus": max(0.0, before - after) if unplaced == 0 else 0.0}

    def summary(self) -> FragmentationSummary:
        """The report: cluster rate and totals, per model, the most
        fragmented nodes, stranded devices, the largest placeable count per
        workload shape and the pending pods blocked by fragmentation."""
        c = self.cluster
        nodes = list(self.states.values())
        summ = FragmentationSummary(rate=c.rate(), fragmented_gpus=c.total_milli / 1000, free_gpus=c.free_milli / 1000)
        summ.by_model = {m: (f / 1000, free / 1000) for m, (f, free) in c.by_gpu_type().items() if m != "none"}
        for name, f in c.top(self.top_n):
            if f <= 0:
                continue
            st = self.states[name]
            summ.nodes.append({"node": name, "fragmented_gpus": f / 1000, "free_gpus": st.gpu_free_total / 1000,
                               "fragmentation": (f / st.gpu_free_total) if st.gpu_free_total else 0.0,
                               "gpu_model": st.gpu_type})
        for name, free, reason in stranded_gpus(nodes):
            summ.stranded.append({"node": name, "free_gpus": free / 1000, "reason": reason})
        shapes = [s for s, _ in self.workload.shapes]
        placeable = largest_placeable(nodes, shapes)
        for s, p in self.workload.shapes:
            summ.placeable.append({"shape": shape_label(s), "popularity": p, "placeable": placeable.get(s, 0),
                                   "unplaceable_free_gpus": unplaceable_free(nodes, s) / 1000})
        median = self._device_memory_median()
        blocked: dict[Shape, bool] = {}  # pending pods share a few shapes: one cluster scan per shape
        for t in self.engine.pods.values():
            d = t.decision
            if d.outcome != "pending":
                continue
            s = self.shape_of(d, median)
            if s is None or s.num_gpu == 0:
                continue
            if s not in blocked:
                blocked[s] = blocked_by_fragmentation(nodes, s)
            if blocked[s]:
                summ.blocked_pods.append(f"{d.namespace}/{d.name}")
        summ.workload = [{"shape": shape_label(s), "popularity": p} for s, p in self.workload.shapes]
        summ.workload_source = self.workload_source
        return summ
