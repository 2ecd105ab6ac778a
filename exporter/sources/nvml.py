"""NVIDIA source over NVML (``pynvml``, package ``nvidia-ml-py``).

``start()`` calls ``nvmlInit`` once and records the inventory (identity of
every GPU, read once); ``collect()`` reads each GPU's counters and returns a
:class:`~exporter.model.Snapshot`; ``close()`` stops the XID thread and calls
``nvmlShutdown``.  ``collect()`` blocks (NVML calls are synchronous) and is
meant to run in the runtime's worker thread.

Mapping (all base units, see :mod:`exporter.model`):

* identity (once, at ``start()``): ``nvmlDeviceGetName`` -> ``model``,
  ``nvmlDeviceGetUUID`` -> ``hw_id``, serial, ``nvmlSystemGetDriverVersion``,
  VBIOS -> ``firmware_version``, PCI bus id (normalised ``0000:c1:00.0``),
  NUMA node, CUDA compute capability (``"9.0"``);
* ``nvmlDeviceGetUtilizationRates``: ``.gpu/100`` -> ``utilization["general"]``,
  ``.memory/100`` -> ``memory_bandwidth_utilization`` (memory *controller*
  busy time, never capacity); encoder/decoder utilization ``/100``;
* ``nvmlDeviceGetMemoryInfo`` (v2 when the binding and driver have it, so
  ``used`` excludes driver-reserved memory like ``nvidia-smi``; else v1);
* power (mW -> W), enforced power limit (mW -> W), total energy (mJ -> J);
* temperatures ``gpu`` (``nvmlDeviceGetTemperature``) and ``memory`` (field
  ``NVML_FI_DEV_MEMORY_TEMP``); thresholds slowdown -> ``high.degraded``,
  shutdown -> ``high.critical``;
* clocks graphics/sm/memory/video (MHz -> Hz);
* ``nvmlDeviceGetViolationStatus`` (ns -> s) per reason ``power``, ``thermal``,
  ``sync_boost``, ``board``, ``low_util``, ``reliability``;
* volatile ECC counts per location (``dram``, ``sram``) from
  ``nvmlDeviceGetMemoryErrorCounter``; only when no location is reported,
  ``nvmlDeviceGetTotalEccErrors`` under source ``total``;
* PCIe bytes ``io_bytes[("pcie", "transmit"|"receive")]``: **counted by this
  source since it started**.  Where the driver has 64-bit cumulative byte
  counters (fields ``NVML_FI_DEV_PCIE_COUNT_TX_BYTES``/``RX_BYTES``) their
  increments are summed; otherwise the ``nvmlDeviceGetPcieThroughput`` rate
  (KB/s, a ~20 ms sample) is integrated over the collection interval
  (trapezoids), which is an estimate.  (Driver 580 on an H200 gives those
  fields as 32-bit values, which wrap within a cycle, so they are ignored
  there.)  ``pcie_throughput=False`` skips both;
* fan speed ``/100``; ``nvmlDeviceGetRemappedRows`` pending or failed, or
  retired pages pending -> ``state="predicted_failure"``;
* XID critical errors through the NVML event API, counted per device and
  code in ``xid_counts`` by a daemon thread (``xid_events=True``);
* MIG: when MIG mode is on, one :class:`~exporter.model.Slice` per MIG device
  (``slice_id`` ``gi<N>/ci<M>``, ``hw_id`` its ``MIG-`` UUID, ``profile``
  parsed from the MIG device name ``"... MIG 3g.20gb"``, its memory; NVML has
  no MIG utilization, so ``utilization`` stays ``None`` unless the driver
  answers ``nvmlDeviceGetUtilizationRates`` on the MIG handle);
* per-process memory (``per_process=True``): compute processes of each MIG
  device (or of the GPU without MIG).

Errors: every NVML call is wrapped.  ``NotSupported``/``FunctionNotFound``
(and a binding without the function) -> the value is absent and the call is
not retried for that device.  ``GPU is lost``, ``Unknown``, ``GPU requires
reset``, driver gone... -> that device is reported from the inventory with
``state="failed"``, no readings, and a ``gpu_lost``/``nvml_<reason>``
problem; its handle is re-acquired on the next cycle.  A ``NoPermission`` on
one reading drops that reading only (problem ``nvml_no_permission``, not
retried); on the device handle itself it fails the device.  Other devices
are never affected.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from accelscope.logs import event
from exporter.model import Device, Problem, Process, Slice, Snapshot
from exporter.parsers.nvidia_smi_xml import device_hw_id, normalise_pci_bus_id

VENDOR = "nvidia"

# NVML return codes (nvml.h).  Compared by value, so the classification does
# not depend on which NVMLError_* subclasses a given pynvml release defines.
_E_UNINITIALIZED = 1
_E_INVALID_ARGUMENT = 2
_E_NOT_SUPPORTED = 3
_E_NO_PERMISSION = 4
_E_NOT_FOUND = 6
_E_DRIVER_NOT_LOADED = 9
_E_TIMEOUT = 10
_E_FUNCTION_NOT_FOUND = 13
_E_GPU_IS_LOST = 15
_E_RESET_REQUIRED = 16
_E_LIB_RM_VERSION_MISMATCH = 18
_E_NO_DATA = 21
_E_ARGUMENT_VERSION_MISMATCH = 25
_E_DEPRECATED = 26
_E_NOT_READY = 27
_E_GPU_NOT_FOUND = 28
_E_UNKNOWN = 999

#: Value absent, and the call is not retried for this device.
_UNSUPPORTED = frozenset({_E_NOT_SUPPORTED, _E_FUNCTION_NOT_FOUND, _E_INVALID_ARGUMENT,
                          _E_ARGUMENT_VERSION_MISMATCH, _E_DEPRECATED})
#: Value absent this cycle, silently (no MIG device at that index, no sample yet).
_ABSENT = frozenset({_E_NOT_FOUND, _E_NO_DATA, _E_NOT_READY})
#: The device cannot be read: it becomes ``failed``.
_DEVICE_FATAL = frozenset({_E_UNINITIALIZED, _E_DRIVER_NOT_LOADED, _E_GPU_IS_LOST, _E_RESET_REQUIRED,
                           _E_LIB_RM_VERSION_MISMATCH, _E_GPU_NOT_FOUND, _E_UNKNOWN})

#: NVML return code -> bounded problem kind (``error_type`` label).
_REASONS = {
    1: "nvml_uninitialized", 2: "nvml_invalid_argument", 3: "nvml_not_supported", 4: "nvml_no_permission",
    5: "nvml_already_initialized", 6: "nvml_not_found", 7: "nvml_insufficient_size",
    8: "nvml_insufficient_power", 9: "nvml_driver_not_loaded", 10: "nvml_timeout", 11: "nvml_irq_issue",
    12: "nvml_library_not_found", 13: "nvml_function_not_found", 14: "nvml_corrupted_inforom",
    15: "gpu_lost", 16: "nvml_reset_required", 17: "nvml_operating_system",
    18: "nvml_lib_rm_version_mismatch", 19: "nvml_in_use", 20: "nvml_memory", 21: "nvml_no_data",
    28: "nvml_gpu_not_found", 999: "nvml_unknown",
}

# nvml.h enum values (stable ABI).
_TEMPERATURE_GPU = 0
_THRESHOLD_SHUTDOWN = 0
_THRESHOLD_SLOWDOWN = 1
_CLOCKS = (("graphics", 0), ("sm", 1), ("memory", 2), ("video", 3))
_VIOLATIONS = (("power", 0), ("thermal", 1), ("sync_boost", 2), ("board", 3), ("low_util", 4),
               ("reliability", 5))
_ECC_TYPES = (("corrected", 0), ("uncorrected", 1))
_VOLATILE_ECC = 0
_ECC_LOCATIONS = (("dram", 2), ("sram", 7))
_PCIE_TX, _PCIE_RX = 0, 1
_FI_MEMORY_TEMP = 82
_FI_PCIE_TX_BYTES = 197
_FI_PCIE_RX_BYTES = 198
_PCIE_FIELDS = frozenset({_FI_PCIE_TX_BYTES, _FI_PCIE_RX_BYTES})
_WIDE_TYPES = frozenset({2, 3, 4})  # unsigned long, unsigned long long, signed long long
_MIG_ENABLE = 1
_EVENT_XID = 0x8
_NO_INSTANCE = 0xFFFFFFFF

_MIG_PROFILE = re.compile(r"\bMIG\s+(\S+)\s*$")


class NvmlUnavailableError(RuntimeError):
    """NVML could not be loaded or initialised (no driver, no GPU, no library)."""


class _DeviceFailed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(slots=True)
class _Integrator:
    """Bytes counted since the source started, from a counter or a rate."""

    total: float = 0.0
    last_raw: float | None = None
    last_rate: float | None = None
    last_time: float | None = None

    def add_counter(self, raw: float) -> int:
        if self.last_raw is not None:
            # a smaller value is a wrap or a driver reset: count what is new since
            self.total += raw - self.last_raw if raw >= self.last_raw else raw
        self.last_raw = raw
        return int(self.total)

    def add_rate(self, rate: float, now: float) -> int:
        if self.last_time is not None and self.last_rate is not None and now > self.last_time:
            self.total += (self.last_rate + rate) / 2.0 * (now - self.last_time)
        self.last_rate, self.last_time = rate, now
        return int(self.total)


@dataclass(slots=True)
class _Gpu:
    """One inventory entry: identity read at ``start()`` plus per-device state."""

    index: int
    hw_id: str
    model: str
    handle: Any
    serial: str | None = None
    driver_version: str | None = None
    firmware_version: str | None = None
    pci_bus_id: str | None = None
    numa_node: int | None = None
    compute_capability: str | None = None
    mig_enabled: bool | None = None
    pcie_mode: str | None = None  # "counter", "rate" or "none", decided on first use
    pcie: dict[str, _Integrator] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return f"gpu{self.index}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = str(value).strip()
    return value or None


def _handle_key(handle: Any) -> Any:
    """A hashable key for a device handle (ctypes pointer value, else the object)."""
    try:
        return ("ptr", ctypes.cast(handle, ctypes.c_void_p).value)
    except (TypeError, ctypes.ArgumentError):
        try:
            hash(handle)
            return ("obj", handle)
        except TypeError:
            return ("id", id(handle))


def _field_value(fv: Any) -> float | None:
    value_type = getattr(fv, "valueType", 1)
    attr = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}.get(value_type)
    if attr is None:
        return None
    raw = getattr(fv.value, attr, None)
    return None if raw is None else float(raw)


class NvmlSource:
    """NVIDIA GPUs, MIG devices and (opt-in) processes through NVML.

    ``nvml``: the pynvml module to use (default: ``import pynvml`` at
    ``start()``; tests pass a fake).  ``clock``: Unix seconds for timestamps
    and PCIe integration.  ``per_process``: also report per-process memory.
    ``xid_events``: count XID critical errors with a background thread.
    ``pcie_throughput``: report PCIe bytes (see the module docstring; the
    rate fallback costs ~20 ms per direction per GPU per cycle).
    ``xid_wait_ms``: how long the XID thread blocks in ``nvmlEventSetWait``
    (bounds how long ``close()`` waits for it).
    """

    name = "nvml"

    def __init__(self, *, nvml: Any = None, clock: Callable[[], float] = time.time, per_process: bool = False,
                 xid_events: bool = True, pcie_throughput: bool = True, xid_wait_ms: int = 500) -> None:
        self._nvml = nvml
        self._clock = clock
        self._per_process = per_process
        self._xid_events = xid_events
        self._pcie_throughput = pcie_throughput
        self._xid_wait_ms = xid_wait_ms
        self._started = False
        self._closed = False
        self._inventory: dict[int, _Gpu] = {}
        self._missing: set[int] = set()  # indexes NVML counts but that could not be read yet
        self._driver_version: str | None = None
        self._unsupported: set[tuple[Any, ...]] = set()
        self._problems: list[Problem] = []
        self._carry: list[Problem] = []  # problems met in start(), reported by the first collect
        self._nvml_error: type[BaseException] = Exception
        # XID thread state
        self._lock = threading.Lock()
        self._xid: dict[int, dict[int, int]] = {}
        self._xid_problems: list[Problem] = []
        self._handle_index: dict[Any, int] = {}
        self._uuid_index: dict[str, int] = {}
        self._event_set: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Initialise NVML once, record the inventory, start the XID thread.

        Raises :class:`NvmlUnavailableError` when NVML cannot be initialised.
        Calling it again after a success does nothing.
        """
        if self._started:
            return
        if self._nvml is None:
            try:
                import pynvml  # type: ignore[import-not-found]
            except ImportError as exc:  # pragma: no cover - the dependency is installed
                raise NvmlUnavailableError(f"pynvml (nvidia-ml-py) is not installed: {exc}") from exc
            self._nvml = pynvml
        nv = self._nvml
        self._nvml_error = getattr(nv, "NVMLError", Exception)
        try:
            nv.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError, OSError from a missing library...
            raise NvmlUnavailableError(f"NVML initialisation failed: {exc} ({type(exc).__name__}); "
                                       "is the NVIDIA driver loaded and /dev/nvidia* visible?") from exc
        try:
            count = nv.nvmlDeviceGetCount()
        except Exception as exc:  # noqa: BLE001
            self._shutdown()
            raise NvmlUnavailableError(f"NVML nvmlDeviceGetCount failed: {exc}") from exc
        self._started = True
        self._problems = []
        try:
            self._driver_version = _text(self._call("system", "nvmlSystemGetDriverVersion"))
        except _DeviceFailed as exc:
            self._problems.append(Problem(exc.kind, exc.detail))
        self._missing = set(range(count))
        self._refresh_inventory()
        if self._xid_events:
            self._start_xid_thread()
        self._carry = self._problems
        event("nvml_started", logging.INFO, devices=len(self._inventory), driver_version=self._driver_version,
              unreadable=sorted(self._missing))

    def close(self) -> None:
        """Stop the XID thread and call ``nvmlShutdown`` (once)."""
        if not self._started or self._closed:
            return
        self._closed = True
        self._stop.set()
        thread_done = True
        if self._thread is not None:
            self._thread.join(timeout=self._xid_wait_ms / 1000.0 + 2.0)
            thread_done = not self._thread.is_alive()
        if self._event_set is not None and thread_done:
            try:
                self._nvml.nvmlEventSetFree(self._event_set)
            except Exception:  # noqa: BLE001
                pass
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001
            event("nvml_shutdown_failed", logging.WARNING, detail=str(exc))

    # ------------------------------------------------------------ NVML calls
    def _call(self, scope: str, fname: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``nvml.<fname>(*args)``; return its value or ``None`` when absent.

        Raises :class:`_DeviceFailed` for the device-fatal codes.  ``scope``
        names the device for the "don't retry unsupported" memory.
        """
        key = (scope, fname, tuple(a for a in args if isinstance(a, (int, str))), tuple(sorted(kwargs.items())))
        if key in self._unsupported:
            return None
        fn = getattr(self._nvml, fname, None)
        if fn is None:
            self._unsupported.add(key)
            return None
        try:
            return fn(*args, **kwargs)
        except self._nvml_error as exc:
            code = getattr(exc, "value", None)
            if code in _UNSUPPORTED:
                self._unsupported.add(key)
                return None
            if code in _ABSENT:
                return None
            kind = _REASONS.get(code, "nvml_error")
            if code in _DEVICE_FATAL:
                raise _DeviceFailed(kind, f"{scope}: {fname}: {exc}") from exc
            if code == _E_NO_PERMISSION:
                self._unsupported.add(key)
            self._problems.append(Problem(kind, f"{scope}: {fname}: {exc}"))
            return None
        except (TypeError, AttributeError) as exc:
            # the binding's signature or struct differs from what we expect: it won't change
            self._unsupported.add(key)
            self._problems.append(Problem("nvml_error", f"{scope}: {fname}: {type(exc).__name__}: {exc}"))
            return None
        except Exception as exc:  # noqa: BLE001 - never let one call empty the snapshot
            self._problems.append(Problem("nvml_error", f"{scope}: {fname}: {type(exc).__name__}: {exc}"))
            return None

    def _forget(self, scope: str) -> None:
        """Retry every call for ``scope`` (device recovered, MIG mode changed)."""
        self._unsupported = {k for k in self._unsupported if k[0] != scope and k[0] != f"{scope}/mig"}

    # ------------------------------------------------------------ inventory
    def _refresh_inventory(self) -> None:
        for index in sorted(self._missing):
            gpu = self._read_identity(index)
            if gpu is None:
                continue
            self._missing.discard(index)
            self._inventory[index] = gpu
            with self._lock:
                self._handle_index[_handle_key(gpu.handle)] = index
                self._uuid_index[gpu.hw_id] = index
            if self._event_set is not None:
                self._register_xid(gpu)

    def _read_identity(self, index: int) -> _Gpu | None:
        scope = f"gpu{index}"
        try:
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:  # noqa: BLE001
            code = getattr(exc, "value", None)
            self._problems.append(Problem(_REASONS.get(code, "nvml_error"),
                                          f"{scope}: nvmlDeviceGetHandleByIndex: {exc}"))
            return None
        try:
            c = self._call
            uuid = _text(c(scope, "nvmlDeviceGetUUID", handle))
            serial = _text(c(scope, "nvmlDeviceGetSerial", handle))
            pci_bus_id = None
            pci = c(scope, "nvmlDeviceGetPciInfo", handle)
            if pci is not None:
                raw = _text(getattr(pci, "busId", None)) or _text(getattr(pci, "busIdLegacy", None))
                try:
                    pci_bus_id = normalise_pci_bus_id(raw)
                except ValueError as exc:
                    self._problems.append(Problem("parse", f"{scope}: PCI bus id: {exc}"))
            numa = c(scope, "nvmlDeviceGetNumaNodeId", handle)
            cc = c(scope, "nvmlDeviceGetCudaComputeCapability", handle)
            return _Gpu(
                index=index,
                hw_id=device_hw_id(uuid, serial, pci_bus_id, index),
                model=_text(c(scope, "nvmlDeviceGetName", handle)) or "",
                handle=handle,
                serial=serial,
                driver_version=self._driver_version,
                firmware_version=_text(c(scope, "nvmlDeviceGetVbiosVersion", handle)),
                pci_bus_id=pci_bus_id,
                numa_node=numa if isinstance(numa, int) and numa >= 0 else None,
                compute_capability=f"{cc[0]}.{cc[1]}" if cc is not None else None,
            )
        except _DeviceFailed as exc:
            self._problems.append(Problem(exc.kind, exc.detail))
            return None

    def _device(self, gpu: _Gpu) -> Device:
        """A reading-less device from the inventory."""
        return Device(
            hw_id=gpu.hw_id, vendor=VENDOR, model=gpu.model, kind="gpu", index=gpu.index, name=f"gpu{gpu.index}",
            serial=gpu.serial, driver_version=gpu.driver_version, firmware_version=gpu.firmware_version,
            pci_bus_id=gpu.pci_bus_id, numa_node=gpu.numa_node, compute_capability=gpu.compute_capability,
        )

    # ------------------------------------------------------------ collect
    def collect(self) -> Snapshot:
        """Read every inventoried GPU once; a failing device never empties the snapshot."""
        if not self._started:
            raise RuntimeError("NvmlSource.collect() called before start()")
        self._problems, self._carry = self._carry, []
        if self._missing:
            self._refresh_inventory()
        with self._lock:
            xid = {i: dict(codes) for i, codes in self._xid.items()}
            self._problems.extend(self._xid_problems)
            self._xid_problems.clear()
        snap = Snapshot(source=self.name, timestamp=0.0)
        for index in sorted(self._inventory):
            gpu = self._inventory[index]
            try:
                dev, slices, procs = self._collect_gpu(gpu)
            except _DeviceFailed as exc:
                self._problems.append(Problem(exc.kind, exc.detail))
                gpu.handle = None  # re-acquired next cycle
                for acc in gpu.pcie.values():  # keep the totals; don't integrate over the outage
                    acc.last_raw = acc.last_rate = acc.last_time = None
                dev, slices, procs = self._device(gpu), [], []
                dev.state = "failed"
            except Exception as exc:  # noqa: BLE001 - a bug in the mapping, not the hardware
                self._problems.append(Problem("nvml_error", f"{gpu.scope}: {type(exc).__name__}: {exc}"))
                dev, slices, procs = self._device(gpu), [], []
            dev.xid_counts = xid.get(index, {})
            snap.devices.append(dev)
            snap.slices.extend(slices)
            snap.processes.extend(procs)
        snap.problems = self._problems
        self._problems = []
        snap.timestamp = self._clock()
        return snap

    def _acquire(self, gpu: _Gpu) -> Any:
        if gpu.handle is not None:
            return gpu.handle
        try:
            handle = self._nvml.nvmlDeviceGetHandleByIndex(gpu.index)
        except self._nvml_error as exc:
            code = getattr(exc, "value", None)
            raise _DeviceFailed(_REASONS.get(code, "nvml_error"),
                                f"{gpu.scope}: nvmlDeviceGetHandleByIndex: {exc}") from exc
        uuid = _text(self._call(gpu.scope, "nvmlDeviceGetUUID", handle))
        if uuid is not None and gpu.hw_id.startswith("GPU-") and uuid != gpu.hw_id:
            raise _DeviceFailed("nvml_inventory_changed",
                                f"{gpu.scope}: index now holds {uuid}, inventory has {gpu.hw_id}")
        gpu.handle = handle
        self._forget(gpu.scope)
        with self._lock:
            self._handle_index[_handle_key(handle)] = gpu.index
        return handle

    def _collect_gpu(self, gpu: _Gpu) -> tuple[Device, list[Slice], list[Process]]:
        h = self._acquire(gpu)
        s = gpu.scope

        def c(fname: str, *args: Any, **kwargs: Any) -> Any:
            return self._call(s, fname, h, *args, **kwargs)

        dev = self._device(gpu)
        util = c("nvmlDeviceGetUtilizationRates")
        if util is not None:
            dev.utilization["general"] = util.gpu / 100.0
            dev.memory_bandwidth_utilization = util.memory / 100.0
        for task, fname in (("encoder", "nvmlDeviceGetEncoderUtilization"),
                            ("decoder", "nvmlDeviceGetDecoderUtilization")):
            value = c(fname)
            if value is not None:
                dev.utilization[task] = value[0] / 100.0
        dev.memory_used_bytes, dev.memory_total_bytes = self._memory(s, h)

        power = c("nvmlDeviceGetPowerUsage")
        dev.power_watts = power / 1000.0 if power is not None else None
        limit = c("nvmlDeviceGetEnforcedPowerLimit")
        dev.power_limit_watts = limit / 1000.0 if limit is not None else None
        energy = c("nvmlDeviceGetTotalEnergyConsumption")
        dev.energy_joules = energy / 1000.0 if energy is not None else None

        temp = c("nvmlDeviceGetTemperature", _TEMPERATURE_GPU)
        if temp is not None:
            dev.temperatures["gpu"] = float(temp)
        for limit_type, threshold in (("high.degraded", _THRESHOLD_SLOWDOWN), ("high.critical", _THRESHOLD_SHUTDOWN)):
            value = c("nvmlDeviceGetTemperatureThreshold", threshold)
            if value is not None and value > 0:
                dev.temperature_limits[limit_type] = float(value)
        for clock, clock_type in _CLOCKS:
            mhz = c("nvmlDeviceGetClockInfo", clock_type)
            if mhz is not None:
                dev.clocks_hz[clock] = mhz * 1e6
        for reason, policy in _VIOLATIONS:
            viol = c("nvmlDeviceGetViolationStatus", policy)
            if viol is not None:
                dev.throttle_seconds[reason] = viol.violationTime / 1e9
        for etype, etype_id in _ECC_TYPES:
            found = False
            for location, location_id in _ECC_LOCATIONS:
                count = c("nvmlDeviceGetMemoryErrorCounter", etype_id, _VOLATILE_ECC, location_id)
                if count is not None:
                    dev.errors[(etype, location)] = int(count)
                    found = True
            if not found:
                total = c("nvmlDeviceGetTotalEccErrors", etype_id, _VOLATILE_ECC)
                if total is not None:
                    dev.errors[(etype, "total")] = int(total)

        fields = self._fields(gpu, h)
        if _FI_MEMORY_TEMP in fields:
            dev.temperatures["memory"] = fields[_FI_MEMORY_TEMP]
        if self._pcie_throughput:
            self._pcie(gpu, h, fields, dev)

        fan = c("nvmlDeviceGetFanSpeed")
        dev.fan_speed = fan / 100.0 if fan is not None else None
        rows = c("nvmlDeviceGetRemappedRows")
        if rows is not None and (rows[2] or rows[3]):
            dev.state = "predicted_failure"
        if c("nvmlDeviceGetRetiredPagesPendingStatus"):
            dev.state = "predicted_failure"

        slices, mig_handles = self._mig(gpu, h, dev)
        procs: list[Process] = []
        if self._per_process:
            targets = mig_handles if gpu.mig_enabled and mig_handles else [(h, gpu.hw_id, s)]
            for handle, parent, scope in targets:
                for p in self._call(scope, "nvmlDeviceGetComputeRunningProcesses", handle) or []:
                    procs.append(Process(pid=int(p.pid), parent_id=parent, memory_bytes=(
                        int(p.usedGpuMemory) if getattr(p, "usedGpuMemory", None) is not None else None)))
        return dev, slices, procs

    def _memory(self, scope: str, handle: Any) -> tuple[int | None, int | None]:
        version = getattr(self._nvml, "nvmlMemory_v2", None)
        if version is not None:
            mem = self._call(scope, "nvmlDeviceGetMemoryInfo", handle, version=version)
            if mem is not None:
                return int(mem.used), int(mem.total)
        mem = self._call(scope, "nvmlDeviceGetMemoryInfo", handle)
        if mem is None:
            return None, None
        return int(mem.used), int(mem.total)

    def _fields(self, gpu: _Gpu, handle: Any) -> dict[int, float]:
        wanted = [_FI_MEMORY_TEMP]
        if self._pcie_throughput and gpu.pcie_mode in (None, "counter"):
            wanted += [_FI_PCIE_TX_BYTES, _FI_PCIE_RX_BYTES]
        wanted = [f for f in wanted if (gpu.scope, "field", f) not in self._unsupported]
        if not wanted:
            return {}
        values = self._call(gpu.scope, "nvmlDeviceGetFieldValues", handle, wanted)
        out: dict[int, float] = {}
        for fid, fv in zip(wanted, values or []):
            ret = getattr(fv, "nvmlReturn", 0)
            if ret in _UNSUPPORTED:
                self._unsupported.add((gpu.scope, "field", fid))
            elif ret in _DEVICE_FATAL:
                raise _DeviceFailed(_REASONS.get(ret, "nvml_error"), f"{gpu.scope}: field {fid}: NVML error {ret}")
            elif ret == 0:
                if fid in _PCIE_FIELDS and getattr(fv, "valueType", None) not in _WIDE_TYPES:
                    # a 32-bit byte counter wraps every 4 GiB (< 0.1 s at Gen5 speed): useless per cycle
                    self._unsupported.add((gpu.scope, "field", fid))
                    continue
                value = _field_value(fv)
                if value is not None:
                    out[fid] = value
        return out

    def _pcie(self, gpu: _Gpu, handle: Any, fields: dict[int, float], dev: Device) -> None:
        pairs = (("transmit", _FI_PCIE_TX_BYTES, _PCIE_TX), ("receive", _FI_PCIE_RX_BYTES, _PCIE_RX))
        if gpu.pcie_mode is None:
            gpu.pcie_mode = "counter" if all(fid in fields for _, fid, _ in pairs) else "rate"
        now = self._clock()
        for direction, fid, counter in pairs:
            acc = gpu.pcie.setdefault(direction, _Integrator())
            if gpu.pcie_mode == "counter":
                if fid in fields:
                    dev.io_bytes[("pcie", direction)] = acc.add_counter(fields[fid])
            else:
                kbps = self._call(gpu.scope, "nvmlDeviceGetPcieThroughput", handle, counter)
                if kbps is not None:
                    dev.io_bytes[("pcie", direction)] = acc.add_rate(kbps * 1024.0, now)

    def _mig(self, gpu: _Gpu, h: Any, dev: Device) -> tuple[list[Slice], list[tuple[Any, str, str]]]:
        mode = self._call(gpu.scope, "nvmlDeviceGetMigMode", h)
        enabled = mode is not None and mode[0] == _MIG_ENABLE
        if gpu.mig_enabled is not None and enabled != gpu.mig_enabled:
            self._forget(gpu.scope)  # supported calls differ with and without MIG
        gpu.mig_enabled = enabled
        if not enabled:
            return [], []
        scope = f"{gpu.scope}/mig"
        slices: list[Slice] = []
        handles: list[tuple[Any, str, str]] = []
        count = self._call(gpu.scope, "nvmlDeviceGetMaxMigDeviceCount", h) or 0
        for i in range(count):
            mh = self._call(scope, "nvmlDeviceGetMigDeviceHandleByIndex", h, i)
            if mh is None:
                continue
            gi = self._call(scope, "nvmlDeviceGetGpuInstanceId", mh)
            ci = self._call(scope, "nvmlDeviceGetComputeInstanceId", mh)
            slice_id = f"gi{gi}/ci{ci}" if gi is not None and ci is not None else f"mig{i}"
            uuid = _text(self._call(scope, "nvmlDeviceGetUUID", mh))
            name = _text(self._call(scope, "nvmlDeviceGetName", mh))
            match = _MIG_PROFILE.search(name or "")
            used, total = self._memory(scope, mh)
            util = self._call(scope, "nvmlDeviceGetUtilizationRates", mh)
            sl = Slice(
                hw_id=uuid or f"{gpu.hw_id}/{slice_id}", parent_id=gpu.hw_id, slice_type="mig", slice_id=slice_id,
                vendor=VENDOR, model=dev.model, kind="gpu", parent_index=gpu.index,
                profile=match.group(1) if match else None, memory_used_bytes=used, memory_limit_bytes=total,
                utilization=min(1.0, util.gpu / 100.0) if util is not None else None,
                info={"mig_device_index": str(i)},
            )
            slices.append(sl)
            handles.append((mh, sl.hw_id, scope))
        return slices, handles

    # ------------------------------------------------------------ XID events
    def _start_xid_thread(self) -> None:
        nv = self._nvml
        try:
            self._event_set = nv.nvmlEventSetCreate()
        except Exception as exc:  # noqa: BLE001
            self._problems.append(Problem("xid_unavailable", f"nvmlEventSetCreate: {exc}"))
            return
        for gpu in self._inventory.values():
            self._register_xid(gpu)
        self._thread = threading.Thread(target=self._xid_loop, name="nvml-xid-events", daemon=True)
        self._thread.start()

    def _register_xid(self, gpu: _Gpu) -> None:
        try:
            self._nvml.nvmlDeviceRegisterEvents(gpu.handle, _EVENT_XID, self._event_set)
        except Exception as exc:  # noqa: BLE001 - not supported (vGPU, some MIG setups): no XIDs for it
            code = getattr(exc, "value", None)
            if code not in _UNSUPPORTED:
                self._problems.append(Problem("xid_unavailable", f"{gpu.scope}: nvmlDeviceRegisterEvents: {exc}"))

    def _xid_loop(self) -> None:
        nv = self._nvml
        while not self._stop.is_set():
            try:
                data = nv.nvmlEventSetWait(self._event_set, self._xid_wait_ms)
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "value", None) == _E_TIMEOUT:
                    continue
                with self._lock:
                    if len(self._xid_problems) < 100:
                        code = getattr(exc, "value", None)
                        self._xid_problems.append(Problem(_REASONS.get(code, "nvml_error"),
                                                          f"nvmlEventSetWait: {exc}"))
                self._stop.wait(1.0)
                continue
            if not int(getattr(data, "eventType", 0)) & _EVENT_XID:
                continue
            self._count_xid(data)

    def _count_xid(self, data: Any) -> None:
        code = int(data.eventData)
        with self._lock:
            index = self._handle_index.get(_handle_key(data.device))
        if index is None:
            try:
                uuid = _text(self._nvml.nvmlDeviceGetUUID(data.device))
            except Exception:  # noqa: BLE001
                uuid = None
            with self._lock:
                index = self._uuid_index.get(uuid) if uuid else None
        with self._lock:
            if index is None:
                if len(self._xid_problems) < 100:
                    self._xid_problems.append(Problem("xid_unattributed", f"XID {code} on an unknown device"))
                return
            codes = self._xid.setdefault(index, {})
            codes[code] = seen = codes.get(code, 0) + 1
        if seen == 1:  # the counter carries the rest; XID storms must not flood the log
            event("nvml_xid", logging.WARNING, index=index, xid=code,
                  gpu_instance=getattr(data, "gpuInstanceId", _NO_INSTANCE))
