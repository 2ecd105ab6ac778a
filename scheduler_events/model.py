"""The collector's model: one :class:`PlacementDecision` per pod scheduling
attempt, and what the collector knows about each node's accelerators.

Units: times are Unix seconds (float), memory is bytes, cores are a ratio of
one device (1.0 = a whole GPU).  ``None`` means "not observed".

Outcomes: ``pending`` (not bound yet), ``placed`` (bound to a node),
``failed`` (bind or allocation failed, or the pod failed before running),
``deleted`` (removed while still pending).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("pending", "placed", "failed", "deleted")
#: phases of a placement, in order; each has a timestamp on the decision
PHASES = ("created", "filtered", "bound", "allocated", "running")


@dataclass(slots=True)
class Request:
    """What one pod asks for, per vendor resource.

    ``resource``: the count resource (``nvidia.com/gpu``, ``huawei.com/Ascend910B3``...).
    ``count``: devices per pod (summed over containers).
    ``memory_bytes``: per device, when the pod asks for a slice of memory.
    ``core_ratio``: per device, 0..1 (HAMi ``gpucores``/100).
    ``memory_ratio``: per device, 0..1 (``gpumem-percentage``/100).
    """

    resource: str
    vendor: str
    count: int
    memory_bytes: int | None = None
    core_ratio: float | None = None
    memory_ratio: float | None = None


@dataclass(slots=True)
class Rejection:
    """Why some nodes were not chosen.

    ``code``: a bounded reason code: a HAMi code (``CardInsufficientMemory``,
    ``NodeUnregistered``...) or a kube-scheduler code
    (``insufficient_resource``, ``untolerated_taint``...), ``other`` when unknown.
    ``source``: ``hami``, ``kube-scheduler``, ``volcano`` or ``dra``.
    ``nodes``: how many nodes gave this reason.
    ``devices``: devices that gave it (HAMi per-node ``cnt/cards``), summed.
    ``detail``: the variable part (resource name, taint), for humans.
    ``node_names``: the nodes, when the source names them (HAMi FilteringFailed).
    """

    code: str
    source: str
    nodes: int
    devices: int | None = None
    detail: str | None = None
    node_names: list[str] = field(default_factory=list)
    raw: str | None = None


@dataclass(slots=True)
class NodeVerdict:
    """One evaluated node: ``fit`` True/False, its ``reasons`` and HAMi ``score``."""

    node: str
    fit: bool
    score: float | None = None
    reasons: list[Rejection] = field(default_factory=list)


@dataclass(slots=True)
class DeviceAllocation:
    """A device given to a container: ``uuid`` (joins ``hw_id`` of the
    exporter), ``memory_bytes`` and ``core_ratio`` as allocated by HAMi."""

    uuid: str
    type: str
    container_index: int
    memory_bytes: int | None = None
    core_ratio: float | None = None
    vendor: str = ""


@dataclass(slots=True)
class PlacementDecision:
    """One pod's placement, rebuilt from the API objects.

    Identity: ``uid``, ``namespace``, ``name``, ``owner_kind``/``owner_name``.
    ``scheduler``: ``spec.schedulerName``.  ``reporter``: who decided
    (``default-scheduler``, ``hami-scheduler``, ``volcano``...).
    ``cpu_milli``/``memory_mib``: the pod's CPU and memory requests.
    ``attempt``: scheduling attempts seen (failed ones plus the final one).
    Timestamps of each phase (Unix seconds): ``created`` (metadata.creationTimestamp),
    ``filtered`` (HAMi ``hami.io/vgpu-time`` or the FilteringSucceed event),
    ``bound`` (``hami.io/bind-time``, the Scheduled event or the PodScheduled
    condition's transition), ``allocated`` (``bind-phase=success`` seen),
    ``running`` (first container start).
    ``nodes_total``/``nodes_fit``: from the scheduler's message or HAMi events.
    ``rejections``: aggregated reasons of the latest failed attempt.
    ``verdicts``: per-node verdicts where known (HAMi scores, FilteringFailed lists).
    ``message``: the best full text (PodScheduled condition over the event note).
    ``primary_reason``: the code of the reason that blocked most nodes.
    ``node``/``devices``: the chosen node and the devices allocated there.
    """

    uid: str
    namespace: str
    name: str
    owner_kind: str | None = None
    owner_name: str | None = None
    scheduler: str = "default-scheduler"
    reporter: str | None = None
    policies: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    cpu_milli: int = 0
    memory_mib: int = 0
    attempt: int = 0
    created: float | None = None
    filtered: float | None = None
    bound: float | None = None
    allocated: float | None = None
    running: float | None = None
    finished: float | None = None
    nodes_total: int | None = None
    nodes_fit: int | None = None
    rejections: list[Rejection] = field(default_factory=list)
    verdicts: dict[str, NodeVerdict] = field(default_factory=dict)
    message: str | None = None
    message_source: str | None = None
    primary_reason: str | None = None
    node: str | None = None
    devices: list[DeviceAllocation] = field(default_factory=list)
    bind_phase: str | None = None
    outcome: str = "pending"
    updated: float = 0.0

    @property
    def trace_id(self) -> str:
        """32 hex digits derived from the pod UID (a UUID is 128 bits), so a
        dashboard can link a UID to its trace without a lookup."""
        return trace_id_for_uid(self.uid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the API and history shape; see docs/collector.md)."""
        d = asdict(self)
        d["trace_id"] = self.trace_id
        d["verdicts"] = list(d["verdicts"].values())
        return d


def trace_id_for_uid(uid: str) -> str:
    """The trace id of a pod's placement: the UID's 32 hex digits when it is
    a UUID (every Kubernetes pod UID is), else a SHA-256-derived id."""
    h = uid.replace("-", "").lower()
    if len(h) == 32 and all(c in "0123456789abcdef" for c in h) and h != "0" * 32:
        return h
    import hashlib

    return hashlib.sha256(uid.encode()).hexdigest()[:32]


@dataclass(slots=True)
class NodeDeviceInfo:
    """One device registered by a node (HAMi node register annotation).

    ``memory_bytes`` registered (after HAMi's memory scaling), ``core_ratio``
    registered (1.0 = whole device), ``split_count`` = how many tasks may share it.
    """

    uuid: str
    vendor: str
    type: str
    index: int | None = None
    memory_bytes: int | None = None
    core_ratio: float | None = None
    split_count: int | None = None
    healthy: bool | None = None
    numa: int | None = None
    mode: str | None = None


@dataclass(slots=True)
class NodeInfo:
    """What the collector knows about one node.

    ``devices``: registered accelerators by UUID; ``handshake``: vendor ->
    (state, Unix seconds) from ``hami.io/node-handshake*``; ``allocatable``:
    extended resources from ``status.allocatable`` (counts); ``cpu_milli``,
    ``memory_mib``, ``pods``: allocatable CPU (milli-cores), memory (MiB) and
    pod slots.
    """

    name: str
    devices: dict[str, NodeDeviceInfo] = field(default_factory=dict)
    handshake: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    allocatable: dict[str, int] = field(default_factory=dict)
    cpu_milli: int | None = None
    memory_mib: int | None = None
    pods: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    ready: bool | None = None
