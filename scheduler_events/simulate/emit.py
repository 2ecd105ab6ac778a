"""Turn a simulation into the Kubernetes objects and events that HAMi and
kube-scheduler write, so the collector can replay it.

:class:`Emitter` runs the trace-driven simulator (a :class:`~.policies.SimCluster`
and a placement policy, as :func:`~.experiment.run` does) pod by pod and yields
:class:`~scheduler_events.stream.ObjectEvent` values on an accelerated clock:
pod ``j`` arrives at ``start + j * seconds_per_pod`` (Unix seconds), each step
of its life a tenth of ``seconds_per_pod`` later.  :func:`write_jsonl` writes
them in the collector's recorded-stream format (one
``{"kind", "type", "received", "object"}`` per line), which
:class:`~scheduler_events.sources.replay.ReplayStream` reads back.

What is emitted (formats: ``../shared/reference/hami-formats.md`` §2-4,
``scheduling-signals.md`` §1.2):

* **Nodes** (``SYNC``, at ``start``): allocatable ``cpu``, ``memory``,
  ``pods`` (110) and ``nvidia.com/gpu`` (devices x split count, as HAMi's
  device plugin advertises), labels (``gpu: on``, ``nvidia.com/gpu.product``,
  ``accelscope.io/sim-model``), the HAMi **JSON register annotation**
  ``hami.io/node-nvidia-register`` (v2.8+: ``id, index, count, devmem,
  devcore, type, numa, mode, health``, zero ``index``/``numa`` omitted) and the
  handshake ``hami.io/node-handshake: Requesting_<time>`` (what the scheduler
  writes since v2.8).  Device UUIDs are derived from the node name and index
  (:func:`device_uuid`); ``devmem`` is the model's memory (:data:`GPU_MODELS`),
  ``devcore`` 100, ``count`` the split count.
* **A pod** (``ADDED``, Pending): one container, requests ``cpu``/``memory``,
  limits ``nvidia.com/gpu: k`` and, for a GPU-sharing pod (``gpu_milli <
  1000``), ``nvidia.com/gpumem`` (MiB) and ``nvidia.com/gpucores``
  (``gpu_milli / 10`` percent); ``schedulerName: hami-scheduler``; an owner
  (a ReplicaSet named after the shape); ``nvidia.com/use-gputype`` when the
  trace restricts the GPU model (the NVML names; HAMi matches them as
  substrings, so a model they would also match, an A100 for ``NVIDIA A10``,
  is excluded with ``nvidia.com/nouse-gputype``).
* **Placed** (GPU pod): ``MODIFIED`` with HAMi's filter annotations
  (``hami.io/vgpu-node``, ``vgpu-time``, ``vgpu-devices-to-allocate`` and
  ``vgpu-devices-allocated`` in the container-device encoding
  ``UUID,NVIDIA,<MiB>,<cores>:…;``), ``FilteringSucceed``; ``MODIFIED`` with
  ``bind-phase: allocating`` and ``bind-time``; ``MODIFIED`` with
  ``spec.nodeName`` and PodScheduled=True; ``BindingSucceed`` and
  kube-scheduler's ``Scheduled``; ``MODIFIED`` with ``bind-phase: success``
  (the device plugin's Allocate: to-allocate becomes ``;``); ``MODIFIED``
  Running with a started container.  A CPU-only pod skips everything HAMi
  writes (the extender only sees pods that ask for its resources).
* **Failed**: HAMi's ``FilteringFailed`` summary (``no available node, N nodes
  do not meet``, N = nodes that passed kube-scheduler's own filters) and one
  ``FilteringFailed`` per reason code (``<k> nodes <Code>(<nodes…>)``, names
  sorted, the list cut so the message stays within 1 KiB; ``k`` stays the full
  count); kube-scheduler's ``FailedScheduling`` (``0/N nodes are available:
  <count> <reason>, … . preemption: 0/N nodes are available: N No preemption
  victims found for incoming pod.``; the per-node HAMi reason string
  ``<cnt>/<cards> <Code>, …`` is one REASON, entries sorted as strings; the
  note cut at 1024 bytes with `` ...`` as kube-scheduler does) and
  ``MODIFIED`` with PodScheduled=False, reason ``Unschedulable`` and the full
  text.  No FilteringFailed when no node passed kube-scheduler's filters (the
  extender is not called).
* **Departures** (optional, ``depart_fraction``): a placed pod is ``DELETED``
  after an exponentially distributed lifetime (mean ``mean_lifetime_pods``
  arrivals); the pods still pending that now fit on the freed node are
  retried (kube-scheduler requeues unschedulable pods on a pod deletion) and
  placed with the same events.

**Per-node reasons are computed, not invented**: for every node, in
kube-scheduler's order then HAMi's (``pkg/device/nvidia/device.go`` ``Fit``,
``pkg/scheduler/score.go`` ``fitInDevices``), from the simulated state:
``Too many pods`` / ``Insufficient cpu`` / ``Insufficient memory`` /
``Insufficient nvidia.com/gpu`` (NodeResourcesFit), then
``NodeInsufficientDevice`` (more devices asked than the node has; a bare
string, which HAMi's ``ParseReason`` drops, so it never appears in the
per-reason FilteringFailed events, only in FailedScheduling), and per device
``CardTypeMismatch``, ``CardTimeSlicingExhausted``, ``CardInsufficientMemory``,
``CardInsufficientCore``, ``ExclusiveDeviceAllocateConflict``,
``CardComputeUnitsExhausted``, plus ``AllocatedCardsInsufficientRequest``
(the cards that did fit) when some but too few fit.  The emitter checks that
this HAMi model agrees with the policy (a placement passes, a failure finds
no node); disagreements are counted in ``result.mismatches`` (none expected).

**How a trace task becomes a HAMi request.**  The simulator charges
``gpu_milli`` to a GPU; HAMi charges memory (MiB) and cores (percent).  A
sharing pod asks for ``gpucores = gpu_milli / 10`` and ``gpumem = gpu_milli x
M / 1000`` MiB, ``M`` being the smallest device memory among the models the
pod accepts that are in the cluster: its memory share is then at most its
core share on every device it may land on, so the binding share is the core
share, exactly ``gpu_milli`` (on the smallest model HAMi checks memory first
and reports ``CardInsufficientMemory``; on larger ones ``CardInsufficientCore``).
A whole-GPU pod asks for ``nvidia.com/gpu`` only (HAMi's defaults: 100% of the
memory, 0 cores), so it needs idle devices (``UUID,NVIDIA,<devmem>,0``).  The
trace's ``gpu_milli`` are multiples of 10; another value is rounded up to a
whole percent (and the simulator and HAMi may then disagree, counted).

The **split count** (``deviceSplitCount``) is the HAMi policy's; for the other
policies (which do not model it) it is the smallest count that never binds:
``max(10, ceil(1000 / smallest gpu_milli))`` (20 for the trace).

Public API::

    Emitter(nodes, pods, policy, seed=..., ...)   iterate -> ObjectEvent; .result (EmitResult:
        placed, pending, departed, devices, inventory, events, mismatches, summary())
    emit(nodes, pods, policy, ...) -> (list[ObjectEvent], EmitResult)
    write_jsonl(events, path) -> int
    GPU_MODELS, gpu_model(code), device_uuid(node, index)
"""

from __future__ import annotations

import heapq
import json
import math
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scheduler_events.fragmentation import ClusterFragmentation, NodeState, Shape, Workload
from scheduler_events.stream import ObjectEvent

from .experiment import DEFAULT_COVERAGE, NODE_ORDERS, TIE_BREAKS, typical_workload
from .policies import FGD, HAMI_DEFAULT_SPLIT, BestFit, HAMi, Policy, SimCluster, bestfit_score, copy_nodes, make_policy
from .trace import MILLI, NodeList, PodList, TracePod

# --------------------------------------------------------------------------- GPU models


@dataclass(frozen=True, slots=True)
class GpuModel:
    """A trace GPU model as HAMi registers it: ``type`` is ``NVIDIA-`` + the
    NVML name; ``memory_mib`` the device memory NVML reports (HAMi's
    ``devmem`` with ``deviceMemoryScaling`` 1)."""

    code: str
    nvml_name: str
    memory_mib: int
    note: str = ""

    @property
    def type(self) -> str:
        return f"NVIDIA-{self.nvml_name}"

    @property
    def product_label(self) -> str:
        """``nvidia.com/gpu.product`` as GPU feature discovery writes it (spaces -> ``-``)."""
        return self.nvml_name.replace(" ", "-")


#: The trace's models (``openb_node_list_*.csv``) and a few it may name.  Memory
#: is what ``nvidia-smi`` / NVML reports for the usual board (MiB): T4 15360
#: and V100 32 GB 32768 as in HAMi's own register examples (hami-formats.md
#: §2.3), P100-PCIE-16GB 16280, V100-SXM2-16GB 16160, A10 23028.  G1/G2/G3 are
#: Alibaba's undisclosed codes: their names stay the codes and their memory is
#: an assumption (16 GiB class for G1/G2, 32 GiB class for G3, whose nodes have
#: twice the host memory).
GPU_MODELS: dict[str, GpuModel] = {m.code: m for m in (
    GpuModel("G1", "G1", 16384, "undisclosed Alibaba model; memory assumed"),
    GpuModel("G2", "G2", 16384, "undisclosed Alibaba model; memory assumed (16 GiB class)"),
    GpuModel("G3", "G3", 32768, "undisclosed Alibaba model; memory assumed (32 GiB class)"),
    GpuModel("T4", "Tesla T4", 15360),
    GpuModel("P100", "Tesla P100-PCIE-16GB", 16280),
    GpuModel("V100M16", "Tesla V100-SXM2-16GB", 16160),
    GpuModel("V100M32", "Tesla V100-SXM2-32GB", 32768),
    GpuModel("A10", "NVIDIA A10", 23028),
    GpuModel("A100", "NVIDIA A100-SXM4-40GB", 40960),
    GpuModel("P4", "Tesla P4", 7680),
    GpuModel("M40", "Tesla M40 24GB", 22945),
    GpuModel("1080", "NVIDIA GeForce GTX 1080 Ti", 11264),
    GpuModel("2080", "NVIDIA GeForce RTX 2080 Ti", 11264),
    GpuModel("3090", "NVIDIA GeForce RTX 3090", 24576),
)}

#: memory of a model missing from :data:`GPU_MODELS` (its name stays its code)
DEFAULT_GPU_MEMORY_MIB = 16384


def gpu_model(code: str) -> GpuModel:
    """The :class:`GpuModel` of a trace model code (unknown codes: the code
    as name, :data:`DEFAULT_GPU_MEMORY_MIB`)."""
    m = GPU_MODELS.get(code)
    return m if m is not None else GpuModel(code, code or "unknown", DEFAULT_GPU_MEMORY_MIB, "unknown model")


_UUID_NS = uuid.UUID("6f1c0a52-2c7e-4d0e-9b8a-5d1f3f6a9c21")


def device_uuid(node: str, index: int) -> str:
    """A stable NVML-style UUID (``GPU-xxxxxxxx-xxxx-…``) for device ``index`` of ``node``."""
    return f"GPU-{uuid.uuid5(_UUID_NS, f'device/{node}/{index}')}"


def _uid(kind: str, *parts: object) -> str:
    return str(uuid.uuid5(_UUID_NS, "/".join([kind, *map(str, parts)])))


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu_quantity(milli: int) -> str:
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


#: kube-scheduler's Event note limit and cut suffix (``truncateMessage``)
NOTE_LIMIT = 1024
NOTE_CUT = " ..."
#: allocatable pod slots of every simulated node (kubelet's default max-pods)
MAX_PODS = 110
PREEMPTION_NO_VICTIMS = "No preemption victims found for incoming pod"


def _cut_note(message: str) -> str:
    if len(message.encode()) <= NOTE_LIMIT:
        return message
    return message.encode()[: NOTE_LIMIT - len(NOTE_CUT)].decode(errors="ignore") + NOTE_CUT


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Placement:
    """A pod's placement as emitted: node, device UUIDs and indices, and per
    device the memory (MiB) and cores (percent) HAMi's annotation says."""

    pod: str
    node: str
    gpus: list[int]
    devices: list[str]
    memory_mib: list[int]
    cores: list[int]
    time: float
    retried: bool = False


@dataclass(slots=True)
class Failure:
    """A pod left pending: the primary reason code (as the collector ranks
    reasons), per code the nodes that gave it, the full FailedScheduling text."""

    pod: str
    primary_reason: str | None
    reasons: dict[str, int]
    message: str
    nodes_total: int
    candidate_nodes: int
    time: float


@dataclass(slots=True)
class EmitResult:
    """What the emitter did; filled while its events are consumed."""

    policy: str
    seed: int
    nodes: int
    gpus: int
    split_count: int
    workload: Workload
    placed: dict[str, Placement] = field(default_factory=dict)
    pending: dict[str, Failure] = field(default_factory=dict)
    departed: list[str] = field(default_factory=list)
    arrived: int = 0
    placements: int = 0
    failures: int = 0
    retried_placements: int = 0
    events: Counter = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0
    elapsed_s: float = 0.0
    cluster: SimCluster | None = None
    #: device UUID -> {"node", "index", "memory_mib", "cores", "tasks", "devmem_mib"}: every
    #: device that ever held a pod, as HAMi's allocations say now (memory MiB, cores percent)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: every registered device: {"node", "index", "uuid", "model", "type", "memory_mib", "split_count"}
    inventory: list[dict[str, Any]] = field(default_factory=list)

    @property
    def event_count(self) -> int:
        return sum(self.events.values())

    def nodes_state(self) -> list[NodeState]:
        """The simulator's node states now (copies)."""
        return copy_nodes(self.cluster.nodes) if self.cluster is not None else []

    def gpu_allocated_pct(self) -> float:
        c = self.cluster
        if c is None or not c.total_gpu_milli:
            return 0.0
        return 100.0 * (c.total_gpu_milli - c.free_gpu_milli) / c.total_gpu_milli

    def fragmentation(self, workload: Workload | None = None) -> ClusterFragmentation:
        """The simulator's :class:`ClusterFragmentation` of the current nodes (default M: ``self.workload``)."""
        cf = ClusterFragmentation(workload or self.workload)
        for n in self.cluster.nodes if self.cluster is not None else ():
            cf.set_node(n)
        return cf

    def summary(self) -> str:
        """One line: placed, failed, GPUs allocated, fragmentation rate."""
        cf = self.fragmentation()
        retried = f" ({self.retried_placements} after a retry)" if self.retried_placements else ""
        return (f"{self.policy} seed {self.seed}: {self.nodes} nodes / {self.gpus} GPUs, {self.arrived} pods: "
                f"placed {self.placements}{retried}, failed attempts {self.failures}, still pending "
                f"{len(self.pending)}, "
                f"departed {len(self.departed)}; GPUs allocated {self.gpu_allocated_pct():.1f}%, "
                f"fragmentation rate {100 * cf.rate():.1f}% ({cf.total_milli / 1000:.2f} of "
                f"{cf.free_milli / 1000:.2f} free GPUs); {self.event_count} events, "
                f"{self.end - self.start:.0f} simulated s, {self.elapsed_s:.2f} s")


# --------------------------------------------------------------------------- the emitter


@dataclass(slots=True)
class _Req:
    """A pod's request as HAMi sees it (per device: ``mem`` MiB, 0 = the
    default 100% of the device; ``cores`` percent)."""

    cpu: int
    memory: int
    k: int
    mem: int
    cores: int
    types: frozenset[str]
    key: int = -1
    #: ``nvidia.com/use-gputype`` / ``nouse-gputype`` values (empty: any model)
    use: tuple[str, ...] = ()
    nouse: tuple[str, ...] = ()


@dataclass(slots=True)
class _PodRun:
    pod: TracePod
    name: str
    uid: str
    created: float
    req: _Req
    owner: str
    tag: str
    seq: int
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    node: int | None = None
    gpus: list[int] = field(default_factory=list)
    mems: list[int] = field(default_factory=list)
    cores: list[int] = field(default_factory=list)
    phase: str = "Pending"
    condition: dict[str, Any] | None = None
    started: float | None = None
    attempts: int = 0


class Emitter:
    """Simulate ``pods`` arriving on ``nodes`` and yield the Kubernetes object
    events HAMi and kube-scheduler would write (module docstring).

    ``nodes``: :class:`NodeState` values or a :class:`~.trace.NodeList`
    (copied, not changed).  ``pods``: :class:`~.trace.TracePod` values in
    arrival order (or a :class:`~.trace.PodList`).  ``policy``: a
    :class:`~.policies.Policy` or a name for :func:`~.policies.make_policy`
    (``fgd``, ``bestfit``, ``random``, ``hami``, ``hami-<node>-<gpu>``...).
    ``workload``: M for FGD and the fragmentation measure (default: the
    typical pods of ``pods`` at 95% coverage).  ``seed``: the run's RNG (node
    order, policy ties and choices); departures use their own seeded RNG.
    ``start``: Unix time of the first event (default: now).
    ``seconds_per_pod``: simulated seconds between arrivals.
    ``tie_break`` / ``node_order``: as :func:`~.experiment.run`.
    ``split_count``: HAMi's ``deviceSplitCount`` (see module docstring).
    ``depart_fraction``: share of placed pods deleted later;
    ``mean_lifetime_pods``: their mean lifetime in arrivals;
    ``retry_pending``: retry pending pods when capacity is freed.
    ``namespace`` / ``scheduler_name``: of the emitted pods.

    Iterate the emitter (once) for the events; ``result`` fills as they are
    consumed.
    """

    def __init__(
        self,
        nodes: Sequence[NodeState] | NodeList,
        pods: Sequence[TracePod] | PodList,
        policy: Policy | str = "hami-binpack-spread",
        *,
        seed: int = 0,
        workload: Workload | None = None,
        start: float | None = None,
        seconds_per_pod: float = 1.0,
        tie_break: str = "first",
        node_order: str = "shuffle",
        check_memory: bool = True,
        split_count: int | None = None,
        depart_fraction: float = 0.0,
        mean_lifetime_pods: float = 100.0,
        retry_pending: bool = True,
        namespace: str = "sim",
        scheduler_name: str = "hami-scheduler",
        score_list: int = 8,
    ) -> None:
        if isinstance(nodes, NodeList):
            nodes = nodes.nodes
        if isinstance(pods, PodList):
            pods = pods.pods
        if not nodes:
            raise ValueError("no nodes to simulate")
        if seconds_per_pod <= 0:
            raise ValueError(f"seconds_per_pod must be > 0, got {seconds_per_pod}")
        if not 0.0 <= depart_fraction <= 1.0:
            raise ValueError(f"depart_fraction must be in [0, 1], got {depart_fraction}")
        if mean_lifetime_pods <= 0:
            raise ValueError(f"mean_lifetime_pods must be > 0, got {mean_lifetime_pods}")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {tie_break!r} (known: {', '.join(TIE_BREAKS)})")
        if node_order not in NODE_ORDERS:
            raise ValueError(f"unknown node_order {node_order!r} (known: {', '.join(NODE_ORDERS)})")
        self.pods = list(pods)
        if workload is None:
            workload = typical_workload(self.pods, DEFAULT_COVERAGE) if self.pods else Workload(((Shape(0, 0, 0), 1.0),))
        self.workload = workload
        self.policy = make_policy(policy, workload=workload) if isinstance(policy, str) else policy
        self.seed = seed
        self.rng = random.Random(seed)
        self.drng = random.Random(f"departures/{seed}")
        self.start = time.time() if start is None else float(start)
        self.spp = float(seconds_per_pod)
        self.depart_fraction = depart_fraction
        self.mean_lifetime = mean_lifetime_pods
        self.retry_pending = retry_pending
        self.namespace = namespace
        self.scheduler = scheduler_name
        self.score_list = max(1, score_list)
        self.check_memory = check_memory

        if isinstance(self.policy, HAMi):
            split = self.policy.split
        else:
            smallest = min((p.shape.gpu_milli for p in self.pods if p.shape.is_sharing), default=MILLI)
            split = max(HAMI_DEFAULT_SPLIT, math.ceil(MILLI / smallest))
        self.split = split if split_count is None else int(split_count)
        if self.split < 1:
            raise ValueError(f"split_count must be >= 1, got {self.split}")

        ordered = sorted(nodes, key=lambda n: n.name)
        if node_order == "shuffle":
            self.rng.shuffle(ordered)
        elif node_order == "file":
            ordered = list(nodes)
        self.cluster = SimCluster(copy_nodes(ordered), check_memory=check_memory,
                                  task_aware=self.policy.task_aware, tie_first=(tie_break == "first"))
        cn = self.cluster.nodes
        self.names = [n.name for n in cn]
        self.index = {n: i for i, n in enumerate(self.names)}
        if len(self.index) != len(cn):
            raise ValueError("duplicate node names")
        self.models = [gpu_model(n.gpu_type) for n in cn]
        self.uuids = [[device_uuid(n.name, g) for g in range(len(n.gpu_free_milli))] for n in cn]
        self.used_mem = [[0] * len(n.gpu_free_milli) for n in cn]
        self.used_cores = [[0] * len(n.gpu_free_milli) for n in cn]
        self.pods_on = [0] * len(cn)
        present = {n.gpu_type for n in cn if n.gpu_free_milli}
        self._min_mem_all = min((gpu_model(m).memory_mib for m in present), default=DEFAULT_GPU_MEMORY_MIB)
        self._present = present
        # node states grouped by signature (what the reason model depends on)
        self._sig_ids: dict[tuple, int] = {}
        self._sigs: list[tuple] = []
        self._node_sig: list[int] = []
        self.groups: dict[int, list[int]] = {}
        for i in range(len(cn)):
            s = self._sig_id(self._signature(i))
            self._node_sig.append(s)
            self.groups.setdefault(s, []).append(i)
        self._verdicts: dict[tuple[int, int], tuple] = {}
        self._req_ids: dict[tuple, int] = {}

        self._rv = 1000
        self._eseq = 0
        self._now = self.start
        self._heap: list[tuple[float, int, _PodRun]] = []
        self._pending: list[_PodRun] = []
        self._runs: dict[str, _PodRun] = {}
        self._used = False
        total = self.cluster.total_gpu_milli // MILLI
        self.result = EmitResult(self.policy.name, seed, len(cn), total, self.split, workload,
                                 start=self.start, end=self.start, cluster=self.cluster)
        self.result.inventory = [
            {"node": self.names[i], "index": g, "uuid": self.uuids[i][g], "model": self.models[i].code,
             "type": self.models[i].type, "memory_mib": self.models[i].memory_mib, "split_count": self.split}
            for i in sorted(range(len(cn)), key=lambda j: self.names[j]) for g in range(len(self.uuids[i]))]

    # ------------------------------------------------------------------ state
    def _signature(self, i: int) -> tuple:
        n = self.cluster.nodes[i]
        devs = tuple(sorted(zip(self.cluster.tasks[i], self.used_mem[i], self.used_cores[i])))
        return (n.gpu_type, n.cpu_free_milli, n.memory_free_mib, self.pods_on[i], devs)

    def _sig_id(self, sig: tuple) -> int:
        s = self._sig_ids.get(sig)
        if s is None:
            s = self._sig_ids[sig] = len(self._sigs)
            self._sigs.append(sig)
        return s

    def _resig(self, i: int) -> None:
        old = self._node_sig[i]
        members = self.groups[old]
        members.remove(i)
        if not members:
            del self.groups[old]
        s = self._sig_id(self._signature(i))
        self._node_sig[i] = s
        members = self.groups.setdefault(s, [])
        members.append(i)
        members.sort()

    def _type_filter(self, types: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
        """HAMi's model filter for a trace ``gpu_spec``: ``use-gputype`` = the
        accepted models' NVML names; HAMi matches them as case-insensitive
        substrings of the device type, so ``NVIDIA A10`` also matches an
        ``NVIDIA A100``: such models of the cluster go to ``nouse-gputype``.
        Returns (use, nouse, models of the cluster HAMi then accepts)."""
        if not types:
            return (), (), frozenset()
        use = tuple(sorted(gpu_model(m).nvml_name for m in types))

        def hits(values: tuple[str, ...], model: str) -> bool:
            t = gpu_model(model).type.upper()
            return any(v.upper() in t for v in values)

        nouse = tuple(sorted(gpu_model(m).nvml_name for m in self._present if m not in types and hits(use, m)))
        accepted = frozenset(m for m in self._present if hits(use, m) and not hits(nouse, m))
        return use, nouse, accepted

    def _request(self, shape: Shape) -> _Req:
        k = shape.num_gpu
        use, nouse, accepted = self._type_filter(shape.gpu_types if k else frozenset())
        types = accepted if use else frozenset()
        if k == 0:
            req = _Req(shape.cpu_milli, shape.memory_mib, 0, 0, 0, frozenset())
        elif shape.is_sharing:
            acceptable = types if use else self._present
            mmin = min((gpu_model(m).memory_mib for m in acceptable), default=self._min_mem_all)
            req = _Req(shape.cpu_milli, shape.memory_mib, 1, shape.gpu_milli * mmin // MILLI,
                       math.ceil(shape.gpu_milli / 10), types)
        else:
            req = _Req(shape.cpu_milli, shape.memory_mib, k, 0, 0, types)
        req.use, req.nouse = use, nouse
        if use and not types:
            req.types = frozenset({""})  # no model of the cluster is accepted
        full = (req.cpu, req.memory, req.k, req.mem, req.cores, req.types)
        rid = self._req_ids.get(full)
        if rid is None:
            rid = self._req_ids[full] = len(self._req_ids)
        req.key = rid
        return req

    # ------------------------------------------------------------------ the reason model
    def _kube_reasons(self, sig: tuple, req: _Req) -> tuple[str, ...]:
        _model, cpu_free, mem_free, pods_on, devs = sig
        out = []
        if pods_on + 1 > MAX_PODS:
            out.append("Too many pods")
        if cpu_free < req.cpu:
            out.append("Insufficient cpu")
        if self.check_memory and mem_free < req.memory:
            out.append("Insufficient memory")
        if req.k and sum(t for t, _, _ in devs) + req.k > len(devs) * self.split:
            out.append("Insufficient nvidia.com/gpu")
        return tuple(out)

    def _device_reason(self, model: str, devmem: int, dev: tuple[int, int, int], req: _Req) -> str | None:
        """HAMi's per-device check (``Fit``), in its order; None = the device fits."""
        tasks, used_mem, used_cores = dev
        if req.types and model not in req.types:
            return "CardTypeMismatch"
        if tasks >= self.split:
            return "CardTimeSlicingExhausted"
        memreq = req.mem if req.mem > 0 else devmem  # no gpumem: HAMi's default 100% of the device
        if devmem - used_mem < memreq:
            return "CardInsufficientMemory"
        if 100 - used_cores < req.cores:
            return "CardInsufficientCore"
        if req.cores == 100 and tasks > 0:
            return "ExclusiveDeviceAllocateConflict"
        if req.cores == 0 and used_cores == 100:
            return "CardComputeUnitsExhausted"
        return None

    def _verdict(self, sid: int, req: _Req) -> tuple[tuple[str, ...], str | None, dict[str, int], bool]:
        """(kube reasons, HAMi reason string, HAMi code -> devices, fits) of
        a node state for a request; memoised."""
        key = (sid, req.key)
        v = self._verdicts.get(key)
        if v is not None:
            return v
        sig = self._sigs[sid]
        kube = self._kube_reasons(sig, req)
        hami: str | None = None
        codes: dict[str, int] = {}
        fits = not kube
        if not kube and req.k:
            model, devs = sig[0], sig[4]
            n = len(devs)
            if req.k > n:
                hami, codes, fits = "NodeInsufficientDevice", {"NodeInsufficientDevice": 0}, False
            else:
                devmem = gpu_model(model).memory_mib
                counts: Counter[str] = Counter()
                ok = 0
                for dev in devs:
                    r = self._device_reason(model, devmem, dev, req)
                    if r is None:
                        ok += 1
                    else:
                        counts[r] += 1
                if ok < req.k:
                    if ok:
                        counts["AllocatedCardsInsufficientRequest"] = ok
                    codes = dict(counts)
                    hami = ", ".join(sorted(f"{c}/{n} {code}" for code, c in counts.items()))
                    fits = False
        v = (kube, hami, codes, fits)
        if len(self._verdicts) > 500_000:
            self._verdicts.clear()
        self._verdicts[key] = v
        return v

    # ------------------------------------------------------------------ objects
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _tick(self, steps: float = 1.0) -> float:
        self._now += steps * self.spp / 10.0
        return self._now

    def _emit(self, kind: str, type_: str, obj: dict[str, Any], t: float) -> ObjectEvent:
        label = f"{kind}/{obj['reason']}" if kind == "Event" else f"{kind}/{type_}"
        self.result.events[label] += 1
        self.result.end = max(self.result.end, t)
        return ObjectEvent(kind, type_, obj, t)

    def _node_object(self, i: int) -> dict[str, Any]:
        n = self.cluster.nodes[i]
        name = self.names[i]
        model = self.models[i]
        ngpu = len(n.gpu_free_milli)
        devices = []
        for g in range(ngpu):
            d: dict[str, Any] = {"id": self.uuids[i][g]}
            if g:
                d["index"] = g
            d.update({"count": self.split, "devmem": model.memory_mib, "devcore": 100, "type": model.type})
            numa = g * 2 // ngpu if ngpu >= 4 else 0
            if numa:
                d["numa"] = numa
            d.update({"mode": "hami-core", "health": True})
            devices.append(d)
        alloc = {"cpu": _cpu_quantity(n.cpu_milli), "memory": f"{n.memory_mib}Mi", "pods": str(MAX_PODS)}
        annotations = {}
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "accelscope.io/sim-model": n.gpu_type}
        if ngpu:
            alloc["nvidia.com/gpu"] = str(ngpu * self.split)
            annotations["hami.io/node-nvidia-register"] = json.dumps(devices, separators=(",", ":"))
            annotations["hami.io/node-handshake"] = "Requesting_" + datetime.fromtimestamp(
                int(self.start), timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            labels.update({"gpu": "on", "nvidia.com/gpu.product": model.product_label,
                           "nvidia.com/gpu.count": str(ngpu), "nvidia.com/gpu.memory": str(model.memory_mib)})
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": _uid("node", name), "resourceVersion": self._next_rv(),
                         "creationTimestamp": rfc3339(self.start - 86400), "labels": labels,
                         "annotations": annotations},
            "spec": {},
            "status": {"capacity": dict(alloc), "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastTransitionTime": rfc3339(self.start - 86400)}]},
        }

    def _pod_object(self, pr: _PodRun, *, deleted: float | None = None) -> dict[str, Any]:
        shape = pr.pod.shape
        requests: dict[str, str] = {}
        if shape.cpu_milli:
            requests["cpu"] = _cpu_quantity(shape.cpu_milli)
        if shape.memory_mib:
            requests["memory"] = f"{shape.memory_mib}Mi"
        limits: dict[str, str] = {}
        if pr.req.k:
            limits["nvidia.com/gpu"] = str(pr.req.k)
            if pr.req.mem:
                limits["nvidia.com/gpumem"] = str(pr.req.mem)
            if pr.req.cores:
                limits["nvidia.com/gpucores"] = str(pr.req.cores)
        resources: dict[str, Any] = {"requests": requests}
        if limits:
            resources["limits"] = limits
        meta: dict[str, Any] = {
            "name": pr.name, "namespace": self.namespace, "uid": pr.uid, "resourceVersion": self._next_rv(),
            "creationTimestamp": rfc3339(pr.created), "labels": dict(pr.labels),
            "annotations": dict(pr.annotations),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": pr.owner,
                                 "uid": _uid("replicaset", self.namespace, pr.owner), "controller": True,
                                 "blockOwnerDeletion": True}],
        }
        if deleted is not None:
            meta["deletionTimestamp"] = rfc3339(deleted)
            meta["deletionGracePeriodSeconds"] = 30
        spec: dict[str, Any] = {"schedulerName": self.scheduler, "priority": 0,
                                "containers": [{"name": "main", "image": "registry.example.invalid/sim-workload:1",
                                                "resources": resources}]}
        status: dict[str, Any] = {"phase": pr.phase, "qosClass": "Burstable"}
        if pr.node is not None:
            spec["nodeName"] = self.names[pr.node]
        if pr.condition is not None:
            status["conditions"] = [dict(pr.condition)]
        if pr.started is not None:
            status["startTime"] = rfc3339(pr.started)
            status["containerStatuses"] = [{"name": "main", "ready": True, "restartCount": 0, "started": True,
                                            "image": "registry.example.invalid/sim-workload:1",
                                            "state": {"running": {"startedAt": rfc3339(pr.started)}}}]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}

    def _pod_event(self, pr: _PodRun, type_: str, t: float, *, deleted: float | None = None) -> ObjectEvent:
        return self._emit("Pod", type_, self._pod_object(pr, deleted=deleted), t)

    def _event(self, pr: _PodRun, reason: str, message: str, t: float, *, warning: bool = False) -> ObjectEvent:
        self._eseq += 1
        ts = rfc3339(t)
        obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pr.name}.{self._eseq:016x}", "namespace": self.namespace,
                         "uid": _uid("event", self.seed, self._eseq), "resourceVersion": self._next_rv(),
                         "creationTimestamp": ts},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pr.name, "namespace": self.namespace,
                               "uid": pr.uid},
            "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
            "source": {"component": self.scheduler},
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
            "reportingComponent": "", "reportingInstance": "",
        }
        return self._emit("Event", "ADDED", obj, t)

    # ------------------------------------------------------------------ scores (FilteringSucceed)
    def _score(self, i: int, shape: Shape) -> float:
        """The node's score as the scheduler in use would print it."""
        p = self.policy
        n = self.cluster.nodes[i]
        if isinstance(p, HAMi):
            tasks = self.cluster.tasks[i]
            ng = len(tasks)
            if not ng:
                return 0.0
            used = MILLI * ng - sum(n.gpu_free_milli)
            return sum(tasks) / (ng * p.split) + 2.0 * used / (MILLI * ng)
        if isinstance(p, FGD):
            frees = tuple(sorted(n.gpu_free_milli, reverse=True))
            delta = p.min_delta(n.gpu_type, n.cpu_free_milli, frees, self.cluster.effective(shape))
            return 100.0 / (1.0 + math.exp(max(-700.0, min(700.0, delta / 1000.0))))
        if isinstance(p, BestFit):
            return float(bestfit_score(n.cpu_free_milli, sum(n.gpu_free_milli), shape))
        return 0.0

    # ------------------------------------------------------------------ lifecycle
    def _new_run(self, pod: TracePod, t: float) -> _PodRun:
        seq = self.result.arrived
        name = pod.name if pod.name not in self._runs else f"{pod.name}-{seq}"
        shape = pod.shape
        if shape.num_gpu == 0:
            tag = "cpu"
        elif shape.is_sharing:
            tag = f"share{shape.gpu_milli}"
        else:
            tag = f"gpu{shape.num_gpu}"
        pr = _PodRun(pod, name, _uid("pod", self.seed, seq, name), t, self._request(shape), f"sim-{tag}", tag, seq)
        pr.labels = {"app": pr.owner, "accelscope.io/sim-shape": tag}
        if pr.req.use:
            pr.annotations["nvidia.com/use-gputype"] = ",".join(pr.req.use)
        if pr.req.nouse:
            pr.annotations["nvidia.com/nouse-gputype"] = ",".join(pr.req.nouse)
        if shape.num_gpu and isinstance(self.policy, HAMi):
            pr.annotations["hami.io/node-scheduler-policy"] = self.policy.node_policy
            pr.annotations["hami.io/gpu-scheduler-policy"] = self.policy.gpu_policy
        self._runs[name] = pr
        return pr

    def _arrive(self, pod: TracePod, t: float) -> Iterator[ObjectEvent]:
        self._now = max(self._now, t)
        pr = self._new_run(pod, self._now)
        self.result.arrived += 1
        yield self._pod_event(pr, "ADDED", self._now)
        yield from self._schedule(pr, retry=False)

    def _schedule(self, pr: _PodRun, *, retry: bool) -> Iterator[ObjectEvent]:
        shape = pr.pod.shape
        pr.attempts += 1
        got = self.policy.choose(self.cluster, shape, self.rng)
        if got is None:
            if retry:
                self.result.mismatches.append(f"{pr.name}: fits node by the HAMi model on retry, policy found none")
                return
            yield from self._fail(pr)
            return
        i, gpus = got
        yield from self._place(pr, i, list(gpus), retry=retry)

    def _place(self, pr: _PodRun, i: int, gpus: list[int], *, retry: bool) -> Iterator[ObjectEvent]:
        shape, req = pr.pod.shape, pr.req
        name = self.names[i]
        model = self.models[i]
        # the HAMi model must agree: the node fits and so does each chosen device
        sid = self._node_sig[i]
        kube, hami, _codes, fits = self._verdict(sid, req)
        if not fits:
            self.result.mismatches.append(f"{pr.name}: policy placed it on {name}, the HAMi model says {kube or hami}")
        for g in gpus:
            dev = (self.cluster.tasks[i][g], self.used_mem[i][g], self.used_cores[i][g])
            r = self._device_reason(model.code, model.memory_mib, dev, req)
            if r is not None:
                self.result.mismatches.append(f"{pr.name}: device {g} of {name}: {r}")
        # fitting nodes (HAMi's FilteringSucceed counts them among the nodes
        # that passed kube-scheduler's filters)
        candidates = fit_nodes = 0
        fit_members: list[int] = []
        if req.k:
            for s, members in self.groups.items():
                k_r, _h, _c, f = self._verdict(s, req)
                if not k_r:
                    candidates += len(members)
                if f:
                    fit_nodes += len(members)
                    if len(fit_members) < self.score_list:
                        fit_members.extend(members[: self.score_list])
            listed = [i] + [m for m in sorted(fit_members) if m != i][: self.score_list - 1]
            scores = [(self.names[m], self._score(m, shape)) for m in listed]
        # apply
        self.cluster.place(i, shape, gpus)
        mems, cores = [], []
        for g in gpus:
            if req.mem or req.cores:
                mem, core = req.mem, req.cores
            else:
                mem, core = model.memory_mib, 0
            self.used_mem[i][g] += mem
            self.used_cores[i][g] += core
            mems.append(mem)
            cores.append(core)
        self.pods_on[i] += 1
        self._resig(i)
        pr.node, pr.gpus, pr.mems, pr.cores = i, gpus, mems, cores
        self.result.pending.pop(pr.name, None)
        self.result.placements += 1
        if retry:
            self.result.retried_placements += 1

        t = self._tick()
        if req.k:
            devices = "".join(f"{self.uuids[i][g]},NVIDIA,{m},{c}:" for g, m, c in zip(gpus, mems, cores)) + ";"
            pr.annotations.update({"hami.io/vgpu-node": name, "hami.io/vgpu-time": str(int(t)),
                                   "hami.io/vgpu-devices-to-allocate": devices,
                                   "hami.io/vgpu-devices-allocated": devices})
            pr.labels["hami.io/vgpu-node"] = name
            yield self._pod_event(pr, "MODIFIED", t)
            text = ",".join(f"{n}:{s:.2f}" for n, s in scores)
            yield self._event(pr, "FilteringSucceed",
                              f"find fit node({name}), {candidates - fit_nodes} nodes not fit, {fit_nodes} nodes fit({text})", t)
            t = self._tick()
            pr.annotations.update({"hami.io/bind-phase": "allocating", "hami.io/bind-time": str(int(t))})
            yield self._pod_event(pr, "MODIFIED", t)
        t = self._tick()
        pr.condition = {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                        "lastTransitionTime": rfc3339(t)}
        yield self._pod_event(pr, "MODIFIED", t)
        if req.k:
            yield self._event(pr, "BindingSucceed", f"Successfully binding node [{name}] to {self.namespace}/{pr.name}", t)
        yield self._event(pr, "Scheduled", f"Successfully assigned {self.namespace}/{pr.name} to {name}", t)
        if req.k:
            t = self._tick()
            pr.annotations.update({"hami.io/vgpu-devices-to-allocate": ";", "hami.io/bind-phase": "success"})
            yield self._pod_event(pr, "MODIFIED", t)
        t = self._tick()
        pr.phase, pr.started = "Running", t
        yield self._pod_event(pr, "MODIFIED", t)

        self.result.placed[pr.name] = Placement(pr.name, name, list(gpus), [self.uuids[i][g] for g in gpus],
                                                list(mems), list(cores), t, retry)
        for g in gpus:
            self._device_record(i, g)
        if self.depart_fraction and self.drng.random() < self.depart_fraction:
            life = max(1.0, self.drng.expovariate(1.0 / self.mean_lifetime)) * self.spp
            heapq.heappush(self._heap, (t + life, pr.seq, pr))

    def _device_record(self, i: int, g: int) -> None:
        self.result.devices[self.uuids[i][g]] = {
            "node": self.names[i], "index": g, "memory_mib": self.used_mem[i][g], "cores": self.used_cores[i][g],
            "tasks": self.cluster.tasks[i][g], "devmem_mib": self.models[i].memory_mib}

    def _fail(self, pr: _PodRun) -> Iterator[ObjectEvent]:
        req = pr.req
        total = len(self.names)
        hist: Counter[str] = Counter()
        by_code_nodes: dict[str, list[str]] = {}
        candidates = 0
        for s, members in self.groups.items():
            kube, hami, codes, fits = self._verdict(s, req)
            if fits:
                self.result.mismatches.append(
                    f"{pr.name}: policy found no node, the HAMi model says {self.names[members[0]]} fits")
                continue
            if kube:
                for r in kube:
                    hist[r] += len(members)
                continue
            candidates += len(members)
            if hami is not None:
                hist[hami] += len(members)
                for code in codes:
                    if code != "NodeInsufficientDevice":
                        by_code_nodes.setdefault(code, []).extend(self.names[m] for m in members)
        entries = ", ".join(sorted(f"{c} {r}" for r, c in hist.items()))
        message = (f"0/{total} nodes are available: {entries}. preemption: 0/{total} nodes are available: "
                   f"{total} {PREEMPTION_NO_VICTIMS}.")
        t = self._tick()
        if req.k and candidates:
            yield self._event(pr, "FilteringFailed", f"no available node, {candidates} nodes do not meet", t,
                              warning=True)
            for code in sorted(by_code_nodes):
                names = sorted(by_code_nodes[code])
                head = f"{len(names)} nodes {code}("
                kept: list[str] = []
                size = len(head) + 1
                for n in names:
                    extra = len(n) + (1 if kept else 0)
                    if size + extra > NOTE_LIMIT:
                        break
                    kept.append(n)
                    size += extra
                yield self._event(pr, "FilteringFailed", head + ",".join(kept) + ")", t, warning=True)
        t = self._tick()
        yield self._event(pr, "FailedScheduling", _cut_note(message), t, warning=True)
        pr.condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                        "lastProbeTime": None, "lastTransitionTime": rfc3339(t)}
        yield self._pod_event(pr, "MODIFIED", t)
        reasons, primary = self._primary(hist)
        self.result.pending[pr.name] = Failure(pr.name, primary, reasons, message, total, candidates, t)
        self.result.failures += 1
        self._pending.append(pr)

    @staticmethod
    def _primary(hist: Counter[str]) -> tuple[dict[str, int], str | None]:
        """Per code the nodes that gave it, and the primary reason, ranked as
        the collector ranks them (most nodes, then most devices, HAMi first)."""
        merged: dict[tuple[str, str, str | None], list] = {}

        def add(code: str, source: str, detail: str | None, nodes: int, devices: int | None) -> None:
            m = merged.setdefault((code, source, detail), [0, None])
            m[0] += nodes
            if devices is not None:
                m[1] = (m[1] or 0) + devices

        for reason, c in hist.items():
            if reason.startswith("Insufficient "):
                add("insufficient_resource", "kube-scheduler", reason[len("Insufficient "):], c, None)
            elif reason == "Too many pods":
                add("too_many_pods", "kube-scheduler", None, c, None)
            elif reason == "NodeInsufficientDevice":
                add("NodeInsufficientDevice", "hami", None, c, None)
            else:
                for part in reason.split(", "):
                    cnt, code = part.split(" ", 1)
                    add(code, "hami", None, c, int(cnt.split("/")[0]) * c)
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1][0], -(kv[1][1] or 0), kv[0][0]))
        per_code: Counter[str] = Counter()
        for (code, _s, _d), (nodes, _dev) in ranked:
            per_code[code] += nodes
        if not ranked:
            return {}, None
        best = max(ranked, key=lambda kv: (kv[1][0], kv[1][1] or 0, kv[0][1] == "hami"))
        return dict(per_code), best[0][0]

    def _depart(self, pr: _PodRun) -> Iterator[ObjectEvent]:
        i = pr.node
        assert i is not None
        t = self._tick()
        yield self._pod_event(pr, "DELETED", t, deleted=t)
        shape = pr.pod.shape
        self.cluster.unplace(i, shape, pr.gpus)
        for g, m, c in zip(pr.gpus, pr.mems, pr.cores):
            self.used_mem[i][g] -= m
            self.used_cores[i][g] -= c
            self._device_record(i, g)
        self.pods_on[i] -= 1
        self._resig(i)
        self.result.placed.pop(pr.name, None)
        self.result.departed.append(pr.name)
        if self.retry_pending and self._pending:
            still: list[_PodRun] = []
            for p in self._pending:
                if self._verdict(self._node_sig[i], p.req)[3]:
                    yield from self._schedule(p, retry=True)
                    if p.node is None:
                        still.append(p)
                else:
                    still.append(p)
            self._pending = still

    # ------------------------------------------------------------------ driver
    def events(self) -> Iterator[ObjectEvent]:
        """The whole stream: the nodes, then the pods as they arrive (and
        depart).  Single use."""
        if self._used:
            raise RuntimeError("an Emitter can be iterated only once")
        self._used = True
        t0 = time.perf_counter()
        for i in sorted(range(len(self.names)), key=lambda j: self.names[j]):
            yield self._emit("Node", "SYNC", self._node_object(i), self.start)
        for j, pod in enumerate(self.pods):
            t = self.start + j * self.spp
            while self._heap and self._heap[0][0] <= t:
                due, _, pr = heapq.heappop(self._heap)
                self._now = max(self._now, due)
                yield from self._depart(pr)
            yield from self._arrive(pod, t)
            self.result.elapsed_s = time.perf_counter() - t0
        self.result.elapsed_s = time.perf_counter() - t0

    __iter__ = events


def emit(nodes: Sequence[NodeState] | NodeList, pods: Sequence[TracePod] | PodList,
         policy: Policy | str = "hami-binpack-spread", **options: Any) -> tuple[list[ObjectEvent], EmitResult]:
    """Run an :class:`Emitter` to the end: ``(events, result)``."""
    em = Emitter(nodes, pods, policy, **options)
    events = list(em.events())
    return events, em.result


def write_jsonl(events: Iterable[ObjectEvent], path: str | Path) -> int:
    """Write ``events`` as JSON lines (``{"kind","type","received","object"}``,
    the collector's recorded-stream format) to ``path`` (``-`` = stdout);
    returns the number of lines.  Streams: the events are not kept."""
    n = 0
    out = sys.stdout if str(path) == "-" else open(path, "w", encoding="utf-8")
    try:
        for ev in events:
            out.write(json.dumps(ev.to_json(), separators=(",", ":")))
            out.write("\n")
            n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    return n
