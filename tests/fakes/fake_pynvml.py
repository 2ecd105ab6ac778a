"""A fake ``pynvml`` module whose answers come from an ``nvidia-smi -q -x`` capture.

``FakePynvml(xml_path)`` is a module object (``types.ModuleType`` named
``pynvml``) exposing the NVML functions, constants and exception classes that
:mod:`exporter.sources.nvml` uses, with the real names and hierarchy
(``NVMLError`` with ``.value``; ``NVMLError(15)`` is an ``NVMLError_GpuIsLost``).

How the capture maps onto NVML answers:

* a value the capture prints as ``N/A`` (utilization under MIG, volatile ECC,
  fan, remapped rows...) raises ``NVMLError_NotSupported``; so does anything
  the capture does not hold (energy, violation counters, NUMA node, compute
  capability, PCIe byte counters) unless a test sets it with
  :meth:`FakePynvml.set_value` / :meth:`FakePynvml.set_field`;
* units are converted back to NVML's: W -> mW, MiB -> bytes, MHz stay MHz;
  memory v2 gives ``used``/``reserved`` as printed, v1 gives ``used = total -
  free`` (it includes the reserved memory, as in real NVML);
* MIG devices: the capture has no MIG UUIDs or profile names, so the fake
  derives them: UUID ``MIG-<gi:08x>-<ci:04x>-<last three groups of the GPU
  UUID>`` and name ``"<product> MIG <N>g.<M>gb"`` with N = SMs / SMs per
  slice (14 on Ampere, 16 on Hopper) and M = ceil(memory GiB);
* ``gpus=N`` clones the first GPU into N GPUs (UUID, serial and PCI bus
  differ; index follows).

Fault and event injection:

* ``fail(fname, index=..., mig=..., error=..., times=...)``: the named
  function (``"*"`` for all; ``"nvmlDeviceGetMemoryInfo_v2"`` for the v2
  memory query only) raises ``error`` (a class or code) for that GPU index
  (``None``: any GPU and system calls) and MIG device (``None``: the GPU
  and its MIG devices);
* ``inject_xid(index, code)``: an XID critical-error event for every event
  set the GPU is registered with;
* ``set_processes(index, [(pid, bytes)], mig=...)``; ``disable_mig(index)``.

``calls`` counts every call by function name.
"""

from __future__ import annotations

import math
import queue
import string
import threading
import types
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

MIB = 1024 * 1024

# ---------------------------------------------------------------- constants (nvml.h values)
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_NOT_READY = 27
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_UNKNOWN = 999

NVML_TEMPERATURE_GPU = 0
NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = 0
NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1
NVML_TEMPERATURE_THRESHOLD_MEM_MAX = 2
NVML_TEMPERATURE_THRESHOLD_GPU_MAX = 3
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_CLOCK_VIDEO = 3
NVML_PERF_POLICY_POWER = 0
NVML_PERF_POLICY_THERMAL = 1
NVML_PERF_POLICY_SYNC_BOOST = 2
NVML_PERF_POLICY_BOARD_LIMIT = 3
NVML_PERF_POLICY_LOW_UTILIZATION = 4
NVML_PERF_POLICY_RELIABILITY = 5
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_MEMORY_LOCATION_DRAM = 2
NVML_MEMORY_LOCATION_SRAM = 7
NVML_PCIE_UTIL_TX_BYTES = 0
NVML_PCIE_UTIL_RX_BYTES = 1
NVML_FI_DEV_MEMORY_TEMP = 82
NVML_FI_DEV_PCIE_COUNT_TX_BYTES = 197
NVML_FI_DEV_PCIE_COUNT_RX_BYTES = 198
NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
nvmlEventTypeXidCriticalError = 0x0000000000000008
nvmlMemory_v2 = 0x02000028

_ERROR_STRINGS = {
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


# ---------------------------------------------------------------- exceptions
class NVMLError(Exception):
    """Base class; ``NVMLError(code)`` returns the matching subclass, like pynvml."""

    _valClassMapping: dict[int, type] = {}

    def __new__(cls, value: int):
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)

    def __str__(self) -> str:
        return _ERROR_STRINGS.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]  # as in pynvml (__eq__ without __hash__)


def _make_error_classes() -> None:
    # NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost, the naming pynvml uses
    for const, code in list(globals().items()):
        if not const.startswith("NVML_ERROR_"):
            continue
        name = "NVMLError_" + string.capwords(const[len("NVML_ERROR_"):], "_").replace("_", "")

        def new(cls, *args, _code=code):
            return NVMLError.__new__(cls, _code)

        cls = type(name, (NVMLError,), {"__new__": new, "__module__": __name__})
        globals()[name] = cls
        NVMLError._valClassMapping[code] = cls


_make_error_classes()
# explicit names for readers and linters (created above)
NVMLError_NotSupported: type[NVMLError] = globals()["NVMLError_NotSupported"]
NVMLError_FunctionNotFound: type[NVMLError] = globals()["NVMLError_FunctionNotFound"]
NVMLError_GpuIsLost: type[NVMLError] = globals()["NVMLError_GpuIsLost"]
NVMLError_ResetRequired: type[NVMLError] = globals()["NVMLError_ResetRequired"]
NVMLError_Unknown: type[NVMLError] = globals()["NVMLError_Unknown"]
NVMLError_NoPermission: type[NVMLError] = globals()["NVMLError_NoPermission"]
NVMLError_NotFound: type[NVMLError] = globals()["NVMLError_NotFound"]
NVMLError_Timeout: type[NVMLError] = globals()["NVMLError_Timeout"]
NVMLError_DriverNotLoaded: type[NVMLError] = globals()["NVMLError_DriverNotLoaded"]
NVMLError_Uninitialized: type[NVMLError] = globals()["NVMLError_Uninitialized"]
NVMLError_InvalidArgument: type[NVMLError] = globals()["NVMLError_InvalidArgument"]


def _nv(code: int) -> NVMLError:
    return NVMLError(code)


def _as_exception(error: int | type | BaseException) -> BaseException:
    """An injected fault as an exception: a code, an exception class or instance."""
    if isinstance(error, BaseException):
        return error
    if isinstance(error, int):
        return NVMLError(error)
    if issubclass(error, NVMLError):
        return error()
    return error("injected fault")


# ---------------------------------------------------------------- capture parsing
_SM_PER_SLICE = {"Ampere": 14, "Hopper": 16}
_MAX_MIG_DEVICES = 7


def _num(text: str | None) -> float | None:
    """``"66.92 W"`` -> 66.92; ``N/A`` and missing -> ``None``."""
    if text is None:
        return None
    value = " ".join(text.split())
    if not value or value.upper() in ("N/A", "[N/A]", "NOT SUPPORTED", "[NOT SUPPORTED]"):
        return None
    return float(value.split()[0])


@dataclass
class _Mig:
    gi: int
    ci: int
    sm_count: int
    fb_total_mib: float
    fb_used_mib: float
    fb_reserved_mib: float
    fb_free_mib: float
    uuid: str = ""
    name: str = ""


@dataclass
class _Gpu:
    name: str
    uuid: str
    serial: str | None
    vbios: str | None
    pci_bus_id: str
    arch: str | None
    mig_current: int
    mig_pending: int
    util: dict[str, float | None]
    fb: dict[str, float | None]
    power_mw: int | None
    limit_mw: int | None
    temps: dict[str, float | None]
    thresholds: dict[int, float | None]
    clocks: dict[int, float | None]
    fan: float | None
    ecc: dict[tuple[int, int, int], float | None]  # (type, counter, location) -> count
    pcie_kbps: dict[int, float | None]
    migs: list[_Mig] = field(default_factory=list)


def _parse_gpu(el: ET.Element) -> _Gpu:
    t = el.findtext
    mode = {"Enabled": NVML_DEVICE_MIG_ENABLE}
    gpu = _Gpu(
        name=t("product_name", "").strip(),
        uuid=t("uuid", "").strip(),
        serial=(t("serial") or "").strip() or None,
        vbios=(t("vbios_version") or "").strip() or None,
        pci_bus_id=(t("pci/pci_bus_id") or el.get("id") or "").strip(),
        arch=(t("product_architecture") or "").strip() or None,
        mig_current=mode.get((t("mig_mode/current_mig") or "").strip(), NVML_DEVICE_MIG_DISABLE),
        mig_pending=mode.get((t("mig_mode/pending_mig") or "").strip(), NVML_DEVICE_MIG_DISABLE),
        util={k: _num(t(f"utilization/{k}_util")) for k in ("gpu", "memory", "encoder", "decoder")},
        fb={k: _num(t(f"fb_memory_usage/{k}")) for k in ("total", "reserved", "used", "free")},
        power_mw=None,
        limit_mw=None,
        temps={"gpu": _num(t("temperature/gpu_temp")), "memory": _num(t("temperature/memory_temp"))},
        thresholds={
            NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: _num(t("temperature/gpu_temp_max_threshold")),
            NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: _num(t("temperature/gpu_temp_slow_threshold")),
            NVML_TEMPERATURE_THRESHOLD_MEM_MAX: _num(t("temperature/gpu_temp_max_mem_threshold")),
            NVML_TEMPERATURE_THRESHOLD_GPU_MAX: _num(t("temperature/gpu_temp_max_gpu_threshold")),
        },
        clocks={
            NVML_CLOCK_GRAPHICS: _num(t("clocks/graphics_clock")),
            NVML_CLOCK_SM: _num(t("clocks/sm_clock")),
            NVML_CLOCK_MEM: _num(t("clocks/mem_clock")),
            NVML_CLOCK_VIDEO: _num(t("clocks/video_clock")),
        },
        fan=_num(t("fan_speed")),
        ecc={},
        pcie_kbps={NVML_PCIE_UTIL_TX_BYTES: _num(t("pci/tx_util")), NVML_PCIE_UTIL_RX_BYTES: _num(t("pci/rx_util"))},
    )
    power = _num(t("power_readings/power_draw"))
    limit = _num(t("power_readings/enforced_power_limit"))
    gpu.power_mw = round(power * 1000) if power is not None else None
    gpu.limit_mw = round(limit * 1000) if limit is not None else None
    for counter, block in ((NVML_VOLATILE_ECC, "volatile"), (NVML_AGGREGATE_ECC, "aggregate")):
        for etype, suffix in ((NVML_MEMORY_ERROR_TYPE_CORRECTED, "correctable"),
                              (NVML_MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrectable")):
            for loc, prefix in ((NVML_MEMORY_LOCATION_DRAM, "dram"), (NVML_MEMORY_LOCATION_SRAM, "sram")):
                gpu.ecc[(etype, counter, loc)] = _num(t(f"ecc_errors/{block}/{prefix}_{suffix}"))
    for m in el.findall("mig_devices/mig_device"):
        gpu.migs.append(_Mig(
            gi=int(m.findtext("gpu_instance_id")),
            ci=int(m.findtext("compute_instance_id")),
            sm_count=int(m.findtext("device_attributes/shared/multiprocessor_count") or 0),
            fb_total_mib=_num(m.findtext("fb_memory_usage/total")) or 0.0,
            fb_used_mib=_num(m.findtext("fb_memory_usage/used")) or 0.0,
            fb_reserved_mib=_num(m.findtext("fb_memory_usage/reserved")) or 0.0,
            fb_free_mib=_num(m.findtext("fb_memory_usage/free")) or 0.0,
        ))
    _name_migs(gpu)
    return gpu


def _name_migs(gpu: _Gpu) -> None:
    tail = gpu.uuid.split("-", 3)[3] if gpu.uuid.count("-") >= 3 else "0000-0000-000000000000"
    per_slice = _SM_PER_SLICE.get(gpu.arch or "", 14)
    for m in gpu.migs:
        m.uuid = f"MIG-{m.gi:08x}-{m.ci:04x}-{tail}"
        m.name = f"{gpu.name} MIG {round(m.sm_count / per_slice)}g.{math.ceil(m.fb_total_mib / 1024)}gb"


def _clone(gpu: _Gpu, i: int) -> _Gpu:
    import copy

    c = copy.deepcopy(gpu)
    c.uuid = f"{gpu.uuid[:-4]}{i:04d}"
    if gpu.serial and gpu.serial.isdigit():
        c.serial = f"{int(gpu.serial) + i:0{len(gpu.serial)}d}"
    domain, _bus, rest = gpu.pci_bus_id.split(":", 2)
    c.pci_bus_id = f"{domain}:{i:02X}:{rest}"
    _name_migs(c)
    return c


@dataclass(frozen=True)
class FakeHandle:
    """A device handle: GPU ``gpu``; MIG device ``mig`` (index into its MIG list) when set."""

    gpu: int
    mig: int | None = None


class FakeEventSet:
    def __init__(self) -> None:
        self.registered: dict[int, int] = {}
        self.queue: queue.Queue[Any] = queue.Queue()


@dataclass
class _Fault:
    fname: str
    index: int | None
    mig: int | None
    error: int | type
    times: int | None


# ---------------------------------------------------------------- the module
class FakePynvml(types.ModuleType):
    """Fake ``pynvml`` answering from an ``nvidia-smi -q -x`` capture (see module doc)."""

    def __init__(self, xml_path: str | Path, *, gpus: int = 1) -> None:
        super().__init__("pynvml")
        root = ET.parse(str(xml_path)).getroot()
        self._driver = (root.findtext("driver_version") or "").strip()
        parsed = [_parse_gpu(el) for el in root.findall("gpu")]
        while len(parsed) < gpus:
            parsed.append(_clone(parsed[0], len(parsed)))
        self._gpus = parsed
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self._init_count = 0
        self._faults: list[_Fault] = []
        self._values: dict[tuple[str, int, int | None, tuple], Any] = {}
        self._fields: dict[tuple[int, int], tuple[float | None, int]] = {}
        self._procs: dict[tuple[int, int | None], list[tuple[int, int | None]]] = {}
        self._event_sets: list[FakeEventSet] = []
        for name, value in list(globals().items()):
            if name.startswith(("NVML_", "nvmlEventType", "NVMLError")) or name == "nvmlMemory_v2":
                setattr(self, name, value)

    # ------------------------------------------------------------ test controls
    def fail(self, fname: str = "*", *, index: int | None = None, mig: int | None = None,
             error: int | type = NVMLError_GpuIsLost, times: int | None = None) -> None:
        """Make ``fname`` (or every call, ``"*"``) raise ``error`` for GPU ``index``
        (``None``: all) and MIG device ``mig`` (``None``: GPU and MIG devices),
        ``times`` times (``None``: until :meth:`clear_faults`)."""
        with self._lock:
            self._faults.append(_Fault(fname, index, mig, error, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_value(self, fname: str, value: Any, *, index: int = 0, mig: int | None = None,
                  args: tuple = ()) -> None:
        """Answer ``fname(handle, *args)`` with ``value`` (an exception class or
        instance is raised) for GPU ``index`` / MIG device ``mig``."""
        self._values[(fname, index, mig, tuple(args))] = value

    def set_field(self, index: int, field_id: int, value: float | None,
                  value_type: int = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG) -> None:
        """Value of an ``nvmlDeviceGetFieldValues`` field (``None``: not supported)
        and its ``valueType``."""
        self._fields[(index, field_id)] = (value, value_type)

    def set_processes(self, index: int, procs: list[tuple[int, int | None]], *, mig: int | None = None) -> None:
        """Compute processes ``[(pid, used bytes or None)]`` on a GPU or MIG device."""
        self._procs[(index, mig)] = list(procs)

    def disable_mig(self, index: int) -> None:
        self._gpus[index].mig_current = NVML_DEVICE_MIG_DISABLE
        self._gpus[index].migs = []

    def inject_xid(self, index: int, code: int, *, gi: int = 0xFFFFFFFF, ci: int = 0xFFFFFFFF) -> None:
        """Deliver an XID critical-error event for GPU ``index`` to registered event sets."""
        data = SimpleNamespace(device=FakeHandle(index), eventType=nvmlEventTypeXidCriticalError,
                               eventData=code, gpuInstanceId=gi, computeInstanceId=ci)
        for es in self._event_sets:
            if es.registered.get(index, 0) & nvmlEventTypeXidCriticalError:
                es.queue.put(data)

    @property
    def initialized(self) -> bool:
        return self._init_count > 0

    # ------------------------------------------------------------ plumbing
    def _enter(self, fname: str, handle: FakeHandle | None = None, *args: Any,
               index: int | None = None, needs_init: bool = True) -> Any:
        """Count the call, apply faults and overrides.  Returns an override or ``_DEFAULT``."""
        with self._lock:
            self.calls[fname] += 1
            if needs_init and self._init_count == 0:
                raise _nv(NVML_ERROR_UNINITIALIZED)
            gpu_index = handle.gpu if handle is not None else index
            mig = handle.mig if handle is not None else None
            for f in self._faults:
                if f.fname not in ("*", fname):
                    continue
                if f.index is not None and f.index != gpu_index:
                    continue
                if f.mig is not None and f.mig != mig:
                    continue
                if f.times is not None:
                    if f.times <= 0:
                        continue
                    f.times -= 1
                raise _as_exception(f.error)
        if handle is not None or index is not None:
            key = (fname, gpu_index, mig, tuple(args))
            if key in self._values:
                value = self._values[key]
                if isinstance(value, BaseException) or (isinstance(value, type) and issubclass(value, BaseException)):
                    raise _as_exception(value)
                return value
        return _DEFAULT

    def _gpu(self, handle: FakeHandle) -> _Gpu:
        if not isinstance(handle, FakeHandle) or not 0 <= handle.gpu < len(self._gpus):
            raise _nv(NVML_ERROR_INVALID_ARGUMENT)
        return self._gpus[handle.gpu]

    def _mig(self, handle: FakeHandle) -> _Mig | None:
        gpu = self._gpu(handle)
        if handle.mig is None:
            return None
        if handle.mig >= len(gpu.migs):
            raise _nv(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.migs[handle.mig]

    @staticmethod
    def _have(value: Any) -> Any:
        if value is None:
            raise _nv(NVML_ERROR_NOT_SUPPORTED)
        return value

    def _gpu_only(self, handle: FakeHandle) -> _Gpu:
        """Most queries are not supported on MIG device handles."""
        if handle.mig is not None:
            raise _nv(NVML_ERROR_NOT_SUPPORTED)
        return self._gpu(handle)

    # ------------------------------------------------------------ init / system
    def nvmlInit(self) -> None:
        self._enter("nvmlInit", needs_init=False)
        with self._lock:
            self._init_count += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        with self._lock:
            self._init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        v = self._enter("nvmlSystemGetDriverVersion")
        return self._driver if v is _DEFAULT else v

    def nvmlDeviceGetCount(self) -> int:
        v = self._enter("nvmlDeviceGetCount")
        return len(self._gpus) if v is _DEFAULT else v

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        v = self._enter("nvmlDeviceGetHandleByIndex", None, index=index)
        if v is not _DEFAULT:
            return v
        if not 0 <= index < len(self._gpus):
            raise _nv(NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    # ------------------------------------------------------------ identity
    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        v = self._enter("nvmlDeviceGetName", handle)
        if v is not _DEFAULT:
            return v
        mig = self._mig(handle)
        return mig.name if mig is not None else self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        v = self._enter("nvmlDeviceGetUUID", handle)
        if v is not _DEFAULT:
            return v
        mig = self._mig(handle)
        return mig.uuid if mig is not None else self._gpu(handle).uuid

    def nvmlDeviceGetSerial(self, handle: FakeHandle) -> str:
        v = self._enter("nvmlDeviceGetSerial", handle)
        return self._have(self._gpu_only(handle).serial) if v is _DEFAULT else v

    def nvmlDeviceGetVbiosVersion(self, handle: FakeHandle) -> str:
        v = self._enter("nvmlDeviceGetVbiosVersion", handle)
        return self._have(self._gpu_only(handle).vbios) if v is _DEFAULT else v

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> SimpleNamespace:
        v = self._enter("nvmlDeviceGetPciInfo", handle)
        if v is not _DEFAULT:
            return v
        bus_id = self._gpu_only(handle).pci_bus_id
        return SimpleNamespace(busId=bus_id, busIdLegacy=bus_id[4:])

    def nvmlDeviceGetNumaNodeId(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetNumaNodeId", handle)
        return self._have(None) if v is _DEFAULT else v

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeHandle) -> tuple[int, int]:
        v = self._enter("nvmlDeviceGetCudaComputeCapability", handle)
        return self._have(None) if v is _DEFAULT else v

    # ------------------------------------------------------------ readings
    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> SimpleNamespace:
        v = self._enter("nvmlDeviceGetUtilizationRates", handle)
        if v is not _DEFAULT:
            return v
        util = self._gpu_only(handle).util
        return SimpleNamespace(gpu=int(self._have(util["gpu"])), memory=int(self._have(util["memory"])))

    def nvmlDeviceGetEncoderUtilization(self, handle: FakeHandle) -> list[int]:
        v = self._enter("nvmlDeviceGetEncoderUtilization", handle)
        return [int(self._have(self._gpu_only(handle).util["encoder"])), 167000] if v is _DEFAULT else v

    def nvmlDeviceGetDecoderUtilization(self, handle: FakeHandle) -> list[int]:
        v = self._enter("nvmlDeviceGetDecoderUtilization", handle)
        return [int(self._have(self._gpu_only(handle).util["decoder"])), 167000] if v is _DEFAULT else v

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: int | None = None) -> SimpleNamespace:
        fname = "nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo"
        v = self._enter(fname, handle)
        if v is not _DEFAULT:
            return v
        mig = self._mig(handle)
        if mig is not None:
            total, used, reserved, free = mig.fb_total_mib, mig.fb_used_mib, mig.fb_reserved_mib, mig.fb_free_mib
        else:
            fb = self._gpu(handle).fb
            total, used = self._have(fb["total"]), self._have(fb["used"])
            reserved, free = fb["reserved"] or 0.0, self._have(fb["free"])
        if version:
            return SimpleNamespace(version=version, total=int(total * MIB), reserved=int(reserved * MIB),
                                   free=int(free * MIB), used=int(used * MIB))
        return SimpleNamespace(total=int(total * MIB), free=int(free * MIB), used=int((total - free) * MIB))

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetPowerUsage", handle)
        return self._have(self._gpu_only(handle).power_mw) if v is _DEFAULT else v

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetEnforcedPowerLimit", handle)
        return self._have(self._gpu_only(handle).limit_mw) if v is _DEFAULT else v

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetTotalEnergyConsumption", handle)
        return self._have(None) if v is _DEFAULT else v

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        v = self._enter("nvmlDeviceGetTemperature", handle, sensor)
        if v is not _DEFAULT:
            return v
        if sensor != NVML_TEMPERATURE_GPU:
            raise _nv(NVML_ERROR_INVALID_ARGUMENT)
        return int(self._have(self._gpu_only(handle).temps["gpu"]))

    def nvmlDeviceGetTemperatureThreshold(self, handle: FakeHandle, threshold: int) -> int:
        v = self._enter("nvmlDeviceGetTemperatureThreshold", handle, threshold)
        return int(self._have(self._gpu_only(handle).thresholds.get(threshold))) if v is _DEFAULT else v

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, clock_type: int) -> int:
        v = self._enter("nvmlDeviceGetClockInfo", handle, clock_type)
        return int(self._have(self._gpu_only(handle).clocks.get(clock_type))) if v is _DEFAULT else v

    def nvmlDeviceGetViolationStatus(self, handle: FakeHandle, policy: int) -> SimpleNamespace:
        v = self._enter("nvmlDeviceGetViolationStatus", handle, policy)
        if v is not _DEFAULT:
            return SimpleNamespace(referenceTime=0, violationTime=v) if isinstance(v, int) else v
        self._gpu_only(handle)
        raise _nv(NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetMemoryErrorCounter(self, handle: FakeHandle, error_type: int, counter_type: int,
                                        location: int) -> int:
        v = self._enter("nvmlDeviceGetMemoryErrorCounter", handle, error_type, counter_type, location)
        if v is not _DEFAULT:
            return v
        return int(self._have(self._gpu_only(handle).ecc.get((error_type, counter_type, location))))

    def nvmlDeviceGetTotalEccErrors(self, handle: FakeHandle, error_type: int, counter_type: int) -> int:
        v = self._enter("nvmlDeviceGetTotalEccErrors", handle, error_type, counter_type)
        if v is not _DEFAULT:
            return v
        ecc = self._gpu_only(handle).ecc
        parts = [ecc.get((error_type, counter_type, loc)) for loc in (NVML_MEMORY_LOCATION_DRAM,
                                                                       NVML_MEMORY_LOCATION_SRAM)]
        if any(p is None for p in parts):
            raise _nv(NVML_ERROR_NOT_SUPPORTED)
        return int(sum(parts))

    def nvmlDeviceGetPcieThroughput(self, handle: FakeHandle, counter: int) -> int:
        v = self._enter("nvmlDeviceGetPcieThroughput", handle, counter)
        return int(self._have(self._gpu_only(handle).pcie_kbps.get(counter))) if v is _DEFAULT else v

    def nvmlDeviceGetFieldValues(self, handle: FakeHandle, field_ids: list[int]) -> list[SimpleNamespace]:
        v = self._enter("nvmlDeviceGetFieldValues", handle)
        if v is not _DEFAULT:
            return v
        gpu = self._gpu_only(handle)
        out = []
        for fid in field_ids:
            value_type = NVML_VALUE_TYPE_UNSIGNED_INT
            if (handle.gpu, fid) in self._fields:
                value, value_type = self._fields[(handle.gpu, fid)]
            elif fid == NVML_FI_DEV_MEMORY_TEMP:
                value = gpu.temps["memory"]
            else:
                value = None
            ok = value is not None
            out.append(SimpleNamespace(
                fieldId=fid, scopeId=0, timestamp=0, latencyUsec=0, valueType=value_type,
                nvmlReturn=NVML_SUCCESS if ok else NVML_ERROR_NOT_SUPPORTED,
                value=SimpleNamespace(ullVal=int(value) if ok else 0, uiVal=int(value) if ok else 0,
                                      dVal=float(value) if ok else 0.0)))
        return out

    def nvmlDeviceGetFanSpeed(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetFanSpeed", handle)
        return int(self._have(self._gpu_only(handle).fan)) if v is _DEFAULT else v

    def nvmlDeviceGetRemappedRows(self, handle: FakeHandle) -> tuple[int, int, int, int]:
        v = self._enter("nvmlDeviceGetRemappedRows", handle)
        if v is not _DEFAULT:
            return v
        self._gpu_only(handle)
        raise _nv(NVML_ERROR_NOT_SUPPORTED)  # <remapped_rows>N/A</remapped_rows>

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetRetiredPagesPendingStatus", handle)
        if v is not _DEFAULT:
            return v
        self._gpu_only(handle)
        raise _nv(NVML_ERROR_NOT_SUPPORTED)  # <pending_retirement>N/A</pending_retirement>

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[SimpleNamespace]:
        v = self._enter("nvmlDeviceGetComputeRunningProcesses", handle)
        if v is not _DEFAULT:
            return v
        self._gpu(handle)
        mig = self._mig(handle)
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem,
                                gpuInstanceId=mig.gi if mig else 0xFFFFFFFF,
                                computeInstanceId=mig.ci if mig else 0xFFFFFFFF)
                for pid, mem in self._procs.get((handle.gpu, handle.mig), [])]

    # ------------------------------------------------------------ MIG
    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        v = self._enter("nvmlDeviceGetMigMode", handle)
        if v is not _DEFAULT:
            return v
        gpu = self._gpu_only(handle)
        return [gpu.mig_current, gpu.mig_pending]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetMaxMigDeviceCount", handle)
        if v is not _DEFAULT:
            return v
        self._gpu_only(handle)
        return _MAX_MIG_DEVICES

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeHandle, index: int) -> FakeHandle:
        v = self._enter("nvmlDeviceGetMigDeviceHandleByIndex", handle, index)
        if v is not _DEFAULT:
            return v
        gpu = self._gpu_only(handle)
        if gpu.mig_current != NVML_DEVICE_MIG_ENABLE or not 0 <= index < _MAX_MIG_DEVICES:
            raise _nv(NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(gpu.migs):
            raise _nv(NVML_ERROR_NOT_FOUND)
        return FakeHandle(handle.gpu, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetGpuInstanceId", handle)
        if v is not _DEFAULT:
            return v
        mig = self._mig(handle)
        if mig is None:
            raise _nv(NVML_ERROR_INVALID_ARGUMENT)
        return mig.gi

    def nvmlDeviceGetComputeInstanceId(self, handle: FakeHandle) -> int:
        v = self._enter("nvmlDeviceGetComputeInstanceId", handle)
        if v is not _DEFAULT:
            return v
        mig = self._mig(handle)
        if mig is None:
            raise _nv(NVML_ERROR_INVALID_ARGUMENT)
        return mig.ci

    # ------------------------------------------------------------ events
    def nvmlEventSetCreate(self) -> FakeEventSet:
        self._enter("nvmlEventSetCreate")
        es = FakeEventSet()
        with self._lock:
            self._event_sets.append(es)
        return es

    def nvmlDeviceRegisterEvents(self, handle: FakeHandle, event_types: int, event_set: FakeEventSet) -> None:
        v = self._enter("nvmlDeviceRegisterEvents", handle)
        if v is not _DEFAULT:
            return None
        self._gpu_only(handle)
        event_set.registered[handle.gpu] = event_set.registered.get(handle.gpu, 0) | event_types

    def nvmlEventSetWait(self, event_set: FakeEventSet, timeoutms: int) -> SimpleNamespace:
        self._enter("nvmlEventSetWait")
        try:
            return event_set.queue.get(timeout=timeoutms / 1000.0)
        except queue.Empty:
            raise _nv(NVML_ERROR_TIMEOUT) from None

    def nvmlEventSetFree(self, event_set: FakeEventSet) -> None:
        self._enter("nvmlEventSetFree")
        with self._lock:
            if event_set in self._event_sets:
                self._event_sets.remove(event_set)


_DEFAULT = object()
