"""Vendor-neutral snapshot model of one node's accelerators.

Every source (NVML, HAMi-core shared regions, replayed captures, the mock node,
and later the other vendors) produces a :class:`Snapshot`; the renderer turns
snapshots into the metric families declared in :mod:`exporter.schema`.

Rules that every producer follows:

* Values are in base units: bytes, seconds, watts, joules, degrees Celsius,
  hertz, and ratios in 0..1.  Convert at the parser, never later.
* ``None`` (or a missing dict key) means "not reported": N/A, unsupported,
  a vendor sentinel, or a secondary die.  It never becomes 0 in the output.
* Physical devices (:class:`Device`) and virtual slices (:class:`Slice`) are
  separate lists; a slice names its physical device in ``parent_id``.
* A problem with one value, file or device is recorded as a :class:`Problem`
  in the snapshot (it becomes an error counter and one log line) and the rest
  of the snapshot is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: ``hw.state`` values (OTel ``hw.status``).
HW_STATES = ("ok", "degraded", "failed", "predicted_failure")


@dataclass(slots=True)
class Attribution:
    """The Kubernetes workload a device or slice is allocated to.

    Any field may be ``None`` when unknown (for example only the pod UID is
    known from a HAMi-core directory name while the API is unreachable).
    """

    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    pod_uid: str | None = None


@dataclass(slots=True)
class Device:
    """One physical accelerator (a GPU, NPU die, DCU, XPU, MLU...).

    Identity:
      ``hw_id``: vendor UUID, else serial number, else ``<vendor>-<pci bus id>``.
      ``index``: the vendor's ordinal (``nvidia-smi`` index, NVML index).
      ``kind``: ``gpu``, ``npu``, ``dcu``, ``xpu``, ``mlu``... (``accel_kind``).
      ``vendor``: lower-case vendor key: ``nvidia``, ``amd``, ``huawei``...

    Readings (``None`` = not reported; all base units):
      ``utilization``: task -> ratio 0..1; tasks ``general``, ``encoder``,
      ``decoder`` (OTel ``hw.gpu.task``).
      ``memory_used_bytes`` / ``memory_total_bytes``: framebuffer/HBM capacity.
      ``memory_bandwidth_utilization``: ratio 0..1 of time the memory
      controller was busy (NVIDIA ``utilization.memory``), not capacity.
      ``power_watts`` / ``power_limit_watts``: draw and enforced limit.
      ``energy_joules``: monotonic energy counter since driver load.
      ``temperatures``: sensor location (``gpu``, ``memory``, ``hotspot``...) -> Celsius.
      ``temperature_limits``: OTel ``hw.limit_type`` (``high.degraded``,
      ``high.critical``...) -> Celsius.
      ``clocks_hz``: clock type (``sm``, ``graphics``, ``memory``, ``video``) -> Hz.
      ``throttle_seconds``: reason (``power``, ``thermal``, ``sync_boost``,
      ``board``, ``low_util``, ``reliability``...) -> cumulative seconds.
      ``errors``: (error type, source) -> cumulative count, e.g.
      ``("corrected", "dram")``, ``("uncorrected", "sram")``.
      ``xid_counts``: XID code -> number of XID events seen.
      ``io_bytes``: (link type, direction) -> cumulative bytes, link ``pcie``
      or ``nvlink``, direction ``receive``/``transmit``.
      ``fan_speed``: ratio 0..1.
      ``state``: one of :data:`HW_STATES`.
    """

    hw_id: str
    vendor: str
    model: str
    kind: str = "gpu"
    index: int | None = None
    name: str | None = None
    # descriptive attributes: only on accel_device_info
    serial: str | None = None
    driver_version: str | None = None
    firmware_version: str | None = None
    pci_bus_id: str | None = None
    numa_node: int | None = None
    compute_capability: str | None = None
    # readings
    state: str = "ok"
    utilization: dict[str, float] = field(default_factory=dict)
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    #: capacity ratio 0..1 when the tool prints only a percentage (Hygon VRAM%); used for
    #: hw_gpu_memory_utilization_ratio only when the byte counts are missing
    memory_utilization: float | None = None
    memory_bandwidth_utilization: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    energy_joules: float | None = None
    temperatures: dict[str, float] = field(default_factory=dict)
    temperature_limits: dict[str, float] = field(default_factory=dict)
    clocks_hz: dict[str, float] = field(default_factory=dict)
    throttle_seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[tuple[str, str], int] = field(default_factory=dict)
    xid_counts: dict[int, int] = field(default_factory=dict)
    io_bytes: dict[tuple[str, str], int] = field(default_factory=dict)
    fan_speed: float | None = None
    attribution: Attribution | None = None

    @property
    def display_name(self) -> str:
        """``hw.name``: the explicit name, else ``<kind><index>``."""
        if self.name:
            return self.name
        return f"{self.kind}{self.index if self.index is not None else ''}"


@dataclass(slots=True)
class Slice:
    """One virtual slice carved from a physical device.

    ``slice_type``: ``mig``, ``hami_vgpu``, ``partition``, ``vnpu``,
    ``vdcu``, ``mim``, ``smlu``, ``sriov_vf``, ``sgpu``, ``timeslice``.
    ``slice_id``: the type's own identifier (MIG ``gi1/ci0``; HAMi vGPU
    ``<podUID>/<container>/<vdevice index>``).
    ``profile``: MIG profile (``3g.20gb``) or template name; info only.
    ``parent_id``: the physical device's ``hw_id`` (``hw.parent``).
    ``memory_used_bytes`` / ``memory_limit_bytes``: bytes; the limit is the
    slice's own (MIG instance size, HAMi software limit).
    ``core_limit``: ratio 0..1 of the parent's compute the slice may use.
    ``utilization``: ratio 0..1 (clamped by the producer; see ``clamped``).
    ``clamped``: True when the raw utilization exceeded 1 and was clamped.
    ``last_kernel_time``: Unix seconds of the last kernel launch, if known.
    """

    hw_id: str
    parent_id: str
    slice_type: str
    slice_id: str
    vendor: str
    model: str = ""
    kind: str = "gpu"
    parent_index: int | None = None
    name: str | None = None
    profile: str | None = None
    memory_used_bytes: int | None = None
    memory_limit_bytes: int | None = None
    core_limit: float | None = None
    utilization: float | None = None
    clamped: bool = False
    last_kernel_time: float | None = None
    attribution: Attribution | None = None
    # extra descriptive attributes for accel_slice_info (e.g. MIG placement)
    info: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Process:
    """A process using device memory (opt-in family).

    ``parent_id``: ``hw_id`` of the device or slice it runs on; ``memory_bytes``
    in bytes; ``pid`` as seen by the host.
    """

    pid: int
    parent_id: str
    memory_bytes: int | None = None
    name: str | None = None
    attribution: Attribution | None = None


@dataclass(slots=True)
class Problem:
    """A counted skip: something could not be read, and was left out.

    ``kind`` is a short, bounded reason code used as the ``error_type``
    label (``parse``, ``not_supported``, ``gpu_lost``, ``truncated``,
    ``bad_magic``, ``unknown_version``, ``timeout``, ``io``...).
    ``detail`` is free text for the log line only (never a label).
    """

    kind: str
    detail: str = ""


@dataclass(slots=True)
class Snapshot:
    """Everything one source saw in one collection cycle.

    ``timestamp``: Unix seconds when the collection finished.
    ``problems``: counted skips found during this cycle.
    """

    source: str
    timestamp: float
    devices: list[Device] = field(default_factory=list)
    slices: list[Slice] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


MIB = 1024 * 1024
KIB = 1024


@dataclass(slots=True)
class Parsed:
    """What a pure parser returns: devices, slices, processes and the
    problems (counted skips) met while parsing.  Sources wrap it into a
    :class:`Snapshot`."""

    devices: list[Device] = field(default_factory=list)
    slices: list[Slice] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

#: bytes in one GiB (mock inventories and docs speak GiB)
GIB_ = 1024 * 1024 * 1024
