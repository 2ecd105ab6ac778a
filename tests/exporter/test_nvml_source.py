"""NvmlSource against a fake pynvml built from the A100 MIG capture
(``nvidia-smi-q-x_a100-sxm4-40gb_mig_510.xml``), plus one test on the real
driver, skipped where ``nvmlInit`` fails."""

from __future__ import annotations

import time

import pytest

from exporter.model import MIB
from exporter.sources.nvml import NvmlSource, NvmlUnavailableError
from tests.fakes import fake_pynvml as fp

CAPTURE = "nvidia-smi-q-x_a100-sxm4-40gb_mig_510.xml"
GPU0 = "GPU-00000000-1111-2222-3333-444444444444"
GPU1 = "GPU-00000000-1111-2222-3333-444444440001"


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def make(vendor_smi):
    """``make(gpus=1, **source_kwargs) -> (fake, source)``; sources are closed afterwards."""
    made: list[NvmlSource] = []

    def _make(gpus: int = 1, start: bool = True, **kwargs):
        fake = fp.FakePynvml(vendor_smi / CAPTURE, gpus=gpus)
        kwargs.setdefault("xid_events", False)
        kwargs.setdefault("xid_wait_ms", 20)
        src = NvmlSource(nvml=fake, **kwargs)
        made.append(src)
        if start:
            src.start()
        return fake, src

    yield _make
    for src in made:
        src.close()


def _kinds(snap) -> list[str]:
    return [p.kind for p in snap.problems]


# ---------------------------------------------------------------- values from the capture
def test_identity_from_inventory(make):
    fake, src = make()
    (dev,) = src.collect().devices
    assert dev.hw_id == GPU0
    assert (dev.vendor, dev.kind, dev.index, dev.name) == ("nvidia", "gpu", 0, "gpu0")
    assert dev.model == "NVIDIA A100-SXM4-40GB"
    assert dev.serial == "0000000000001"
    assert dev.driver_version == "510.47.03"
    assert dev.firmware_version == "92.00.45.00.03"
    assert dev.pci_bus_id == "0000:00:04.0"
    assert dev.numa_node is None and dev.compute_capability is None  # not in the capture
    assert dev.state == "ok"


def test_compute_capability_and_numa_when_reported(make):
    fake, src = make(start=False)
    fake.set_value("nvmlDeviceGetCudaComputeCapability", (8, 0))
    fake.set_value("nvmlDeviceGetNumaNodeId", 1)
    src.start()
    (dev,) = src.collect().devices
    assert dev.compute_capability == "8.0"
    assert dev.numa_node == 1


def test_readings_in_base_units(make):
    fake, src = make()
    (dev,) = src.collect().devices
    assert dev.memory_total_bytes == 40960 * MIB
    assert dev.memory_used_bytes == 38 * MIB  # v2: reserved (605 MiB) not counted as used
    assert dev.power_watts == pytest.approx(66.92)
    assert dev.power_limit_watts == 400.0
    assert dev.temperatures == {"gpu": 36.0, "memory": 44.0}
    assert dev.temperature_limits == {"high.degraded": 89.0, "high.critical": 92.0}
    assert dev.clocks_hz == {"graphics": 1410e6, "sm": 1410e6, "memory": 1215e6, "video": 1275e6}
    assert dev.io_bytes == {("pcie", "transmit"): 0, ("pcie", "receive"): 0}  # 0 KB/s in the capture


def test_memory_v1_fallback_counts_reserved(make):
    fake, src = make(start=False)
    fake.fail("nvmlDeviceGetMemoryInfo_v2", error=fp.NVMLError_FunctionNotFound)
    src.start()
    (dev,) = src.collect().devices
    assert dev.memory_total_bytes == 40960 * MIB
    assert dev.memory_used_bytes == (40960 - 40315) * MIB  # v1 used = total - free


def test_not_supported_is_absent_not_zero_and_not_retried(make):
    fake, src = make()
    for _ in range(3):
        (dev,) = src.collect().devices
        # N/A under MIG / not in the capture
        assert dev.utilization == {}
        assert dev.memory_bandwidth_utilization is None
        assert dev.fan_speed is None
        assert dev.energy_joules is None
        assert dev.throttle_seconds == {}
        assert dev.errors == {}  # volatile ECC is N/A in the capture
        assert dev.state == "ok"
    # once on the GPU, once for its MIG devices (they share one memo)
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 2
    assert fake.calls["nvmlDeviceGetFanSpeed"] == 1
    assert fake.calls["nvmlDeviceGetViolationStatus"] == 6  # once per reason
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 3


def test_utilization_memory_is_bandwidth_not_capacity(make):
    fake, src = make()
    fake.set_value("nvmlDeviceGetUtilizationRates", fp.SimpleNamespace(gpu=87, memory=42))
    fake.set_value("nvmlDeviceGetEncoderUtilization", [5, 167000])
    (dev,) = src.collect().devices
    assert dev.utilization == {"general": 0.87, "encoder": 0.05}  # decoder N/A: absent
    assert dev.memory_bandwidth_utilization == pytest.approx(0.42)


def test_energy_throttle_ecc_fan_when_reported(make):
    fake, src = make()
    fake.set_value("nvmlDeviceGetTotalEnergyConsumption", 123_456_789)
    fake.set_value("nvmlDeviceGetViolationStatus", 2_500_000_000, args=(fp.NVML_PERF_POLICY_POWER,))
    fake.set_value("nvmlDeviceGetViolationStatus", 1_000_000, args=(fp.NVML_PERF_POLICY_THERMAL,))
    fake.set_value("nvmlDeviceGetMemoryErrorCounter", 3,
                   args=(fp.NVML_MEMORY_ERROR_TYPE_CORRECTED, fp.NVML_VOLATILE_ECC, fp.NVML_MEMORY_LOCATION_DRAM))
    fake.set_value("nvmlDeviceGetMemoryErrorCounter", 1,
                   args=(fp.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, fp.NVML_VOLATILE_ECC,
                         fp.NVML_MEMORY_LOCATION_SRAM))
    fake.set_value("nvmlDeviceGetFanSpeed", 45)
    (dev,) = src.collect().devices
    assert dev.energy_joules == pytest.approx(123_456.789)
    assert dev.throttle_seconds == {"power": 2.5, "thermal": 0.001}
    assert dev.errors == {("corrected", "dram"): 3, ("uncorrected", "sram"): 1}
    assert dev.fan_speed == pytest.approx(0.45)


def test_ecc_total_when_no_location_is_reported(make):
    fake, src = make()
    fake.set_value("nvmlDeviceGetTotalEccErrors", 7,
                   args=(fp.NVML_MEMORY_ERROR_TYPE_CORRECTED, fp.NVML_VOLATILE_ECC))
    (dev,) = src.collect().devices
    assert dev.errors == {("corrected", "total"): 7}


@pytest.mark.parametrize("rows", [(0, 1, 1, 0), (0, 0, 0, 1)])
def test_row_remap_pending_or_failed_is_predicted_failure(make, rows):
    fake, src = make()
    fake.set_value("nvmlDeviceGetRemappedRows", rows)
    assert src.collect().devices[0].state == "predicted_failure"


# ---------------------------------------------------------------- PCIe
def test_pcie_rate_is_integrated(make):
    clock = Clock()
    fake, src = make(clock=clock)
    assert src.collect().devices[0].io_bytes[("pcie", "transmit")] == 0  # first sample: 0 KB/s
    fake.set_value("nvmlDeviceGetPcieThroughput", 1000, args=(fp.NVML_PCIE_UTIL_TX_BYTES,))
    clock.t += 10
    dev = src.collect().devices[0]
    assert dev.io_bytes[("pcie", "transmit")] == 500 * 1024 * 10  # trapezoid 0 -> 1000 KB/s over 10 s
    clock.t += 10
    dev = src.collect().devices[0]
    assert dev.io_bytes[("pcie", "transmit")] == 1500 * 1024 * 10
    assert dev.io_bytes[("pcie", "receive")] == 0


def test_pcie_driver_counters_preferred(make):
    fake, src = make(start=False)
    fake.set_field(0, fp.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, 1_000_000_000)
    fake.set_field(0, fp.NVML_FI_DEV_PCIE_COUNT_RX_BYTES, 50)
    src.start()
    assert src.collect().devices[0].io_bytes == {("pcie", "transmit"): 0, ("pcie", "receive"): 0}
    fake.set_field(0, fp.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, 1_500_000_000)
    fake.set_field(0, fp.NVML_FI_DEV_PCIE_COUNT_RX_BYTES, 20)  # wrapped / reset: count what is new
    assert src.collect().devices[0].io_bytes == {("pcie", "transmit"): 500_000_000, ("pcie", "receive"): 20}
    assert fake.calls["nvmlDeviceGetPcieThroughput"] == 0


def test_pcie_32bit_driver_counters_ignored(make):
    # driver 580 on an H200 reports these fields as 32-bit values; they wrap every 4 GiB
    clock = Clock()
    fake, src = make(start=False, clock=clock)
    for fid in (fp.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, fp.NVML_FI_DEV_PCIE_COUNT_RX_BYTES):
        fake.set_field(0, fid, 4_186_634_744, value_type=fp.NVML_VALUE_TYPE_UNSIGNED_INT)
    src.start()
    fake.set_value("nvmlDeviceGetPcieThroughput", 2, args=(fp.NVML_PCIE_UTIL_RX_BYTES,))
    src.collect()
    clock.t += 1
    assert src.collect().devices[0].io_bytes == {("pcie", "transmit"): 0, ("pcie", "receive"): 2048}
    assert fake.calls["nvmlDeviceGetFieldValues"] == 2


def test_pcie_can_be_switched_off(make):
    fake, src = make(pcie_throughput=False)
    assert src.collect().devices[0].io_bytes == {}
    assert fake.calls["nvmlDeviceGetPcieThroughput"] == 0


# ---------------------------------------------------------------- MIG
def test_mig_slices(make):
    fake, src = make()
    snap = src.collect()
    assert [s.slice_id for s in snap.slices] == ["gi1/ci0", "gi2/ci0"]
    for sl, gi in zip(snap.slices, (1, 2)):
        assert sl.slice_type == "mig"
        assert sl.hw_id == f"MIG-{gi:08x}-0000-2222-3333-444444444444"
        assert sl.parent_id == GPU0
        assert sl.parent_index == 0
        assert sl.vendor == "nvidia" and sl.model == "NVIDIA A100-SXM4-40GB"
        assert sl.profile == "3g.20gb"
        assert sl.memory_used_bytes == 19 * MIB
        assert sl.memory_limit_bytes == 19968 * MIB
        assert sl.utilization is None  # NVML has no MIG utilization
    assert [s.info["mig_device_index"] for s in snap.slices] == ["0", "1"]


def test_mig_disabled_gives_no_slices(make):
    fake, src = make()
    fake.disable_mig(0)
    assert src.collect().slices == []
    assert fake.calls["nvmlDeviceGetMigDeviceHandleByIndex"] == 0


# ---------------------------------------------------------------- failures
def test_gpu_lost_mid_run_keeps_device_failed_and_others_intact(make):
    fake, src = make(gpus=2)
    before = src.collect()
    assert [d.state for d in before.devices] == ["ok", "ok"]
    fake.fail("*", index=0, error=fp.NVMLError_GpuIsLost)
    for _ in range(2):
        snap = src.collect()
        lost, other = snap.devices
        assert (lost.hw_id, lost.model, lost.index, lost.serial) == (GPU0, "NVIDIA A100-SXM4-40GB", 0,
                                                                     "0000000000001")
        assert lost.state == "failed"
        assert lost.memory_total_bytes is None and lost.power_watts is None
        assert lost.temperatures == {} and lost.clocks_hz == {} and lost.io_bytes == {}
        assert "gpu_lost" in _kinds(snap)
        assert other.hw_id == GPU1 and other.state == "ok"
        assert other.memory_total_bytes == 40960 * MIB and other.power_watts == pytest.approx(66.92)
        assert [s.parent_id for s in snap.slices] == [GPU1, GPU1]
    fake.clear_faults()  # the GPU comes back (reset): the handle is re-acquired
    snap = src.collect()
    assert [d.state for d in snap.devices] == ["ok", "ok"]
    assert snap.devices[0].power_watts == pytest.approx(66.92)
    assert len(snap.slices) == 4


def test_one_call_losing_the_gpu_fails_only_that_device(make):
    fake, src = make(gpus=2)
    fake.fail("nvmlDeviceGetPowerUsage", index=0, error=fp.NVMLError_GpuIsLost, times=1)
    snap = src.collect()
    assert [d.state for d in snap.devices] == ["failed", "ok"]
    assert snap.devices[1].power_watts == pytest.approx(66.92)


@pytest.mark.parametrize("error, kind", [
    (fp.NVMLError_ResetRequired, "nvml_reset_required"),
    (fp.NVMLError_Unknown, "nvml_unknown"),
    (fp.NVMLError_GpuIsLost, "gpu_lost"),
])
def test_fatal_errors_fail_the_device(make, error, kind):
    fake, src = make()
    fake.fail("nvmlDeviceGetTemperature", error=error)
    snap = src.collect()
    assert snap.devices[0].state == "failed"
    assert snap.devices[0].hw_id == GPU0
    assert kind in _kinds(snap)
    assert snap.slices == []


def test_handle_lost_after_start_fails_device(make):
    fake, src = make(gpus=2)
    fake.fail("*", index=1, error=fp.NVMLError_GpuIsLost)
    snap = src.collect()
    assert [d.state for d in snap.devices] == ["ok", "failed"]
    fake.fail("nvmlDeviceGetHandleByIndex", index=1, error=fp.NVMLError_NoPermission)
    snap = src.collect()
    assert snap.devices[1].state == "failed" and snap.devices[1].hw_id == GPU1


def test_no_permission_on_one_reading_drops_only_that_reading(make):
    fake, src = make()
    fake.fail("nvmlDeviceGetPowerUsage", error=fp.NVMLError_NoPermission)
    snap = src.collect()
    (dev,) = snap.devices
    assert dev.state == "ok" and dev.power_watts is None and dev.memory_total_bytes == 40960 * MIB
    assert _kinds(snap) == ["nvml_no_permission"]
    assert _kinds(src.collect()) == []  # not retried, counted once
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 1


def test_unexpected_exception_keeps_the_device(make):
    fake, src = make()
    fake.fail("nvmlDeviceGetClockInfo", error=RuntimeError)
    snap = src.collect()
    (dev,) = snap.devices
    assert dev.state == "ok" and dev.clocks_hz == {} and dev.power_watts == pytest.approx(66.92)
    assert set(_kinds(snap)) == {"nvml_error"}


def test_unreadable_at_start_joins_later(make):
    fake, src = make(gpus=2, start=False)
    fake.fail("nvmlDeviceGetHandleByIndex", index=1, error=fp.NVMLError_Unknown, times=1)
    src.start()
    snap = src.collect()
    assert [d.hw_id for d in snap.devices] == [GPU0, GPU1]  # retried on collect
    assert "nvml_unknown" in _kinds(snap)


# ---------------------------------------------------------------- lifecycle
def test_nvml_init_once_over_many_collects(make):
    fake, src = make()
    src.start()  # a second start is a no-op
    for _ in range(25):
        src.collect()
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetName"] == 1 + 25 * 2  # identity once; MIG names per cycle
    src.close()
    src.close()
    assert fake.calls["nvmlShutdown"] == 1
    assert not fake.initialized


def test_init_failure_raises_clear_error(make):
    fake, src = make(start=False)
    fake.fail("nvmlInit", error=fp.NVMLError_DriverNotLoaded, times=1)
    with pytest.raises(NvmlUnavailableError, match="Driver Not Loaded"):
        src.start()
    with pytest.raises(RuntimeError):
        src.collect()
    src.start()  # the runtime retries start(); this time NVML is there
    assert len(src.collect().devices) == 1


def test_default_module_is_imported_lazily(vendor_smi, monkeypatch):
    fake = fp.FakePynvml(vendor_smi / CAPTURE)
    monkeypatch.setitem(__import__("sys").modules, "pynvml", fake)
    src = NvmlSource(xid_events=False)
    assert fake.calls["nvmlInit"] == 0
    src.start()
    try:
        assert src.collect().devices[0].hw_id == GPU0
    finally:
        src.close()


# ---------------------------------------------------------------- XID events
def _wait_for(src, predicate, timeout: float = 1.5):
    deadline = time.monotonic() + timeout
    while True:
        snap = src.collect()
        if predicate(snap) or time.monotonic() > deadline:
            return snap
        time.sleep(0.01)


def test_xid_events_counted_per_device_and_code(make):
    fake, src = make(gpus=2, xid_events=True)
    assert src.collect().devices[0].xid_counts == {}
    fake.inject_xid(0, 79)
    fake.inject_xid(0, 79)
    fake.inject_xid(0, 48)
    fake.inject_xid(1, 13)
    snap = _wait_for(src, lambda s: sum(s.devices[0].xid_counts.values()) == 3 and s.devices[1].xid_counts)
    assert snap.devices[0].xid_counts == {79: 2, 48: 1}
    assert snap.devices[1].xid_counts == {13: 1}
    # monotonic, and kept on a device that then falls off the bus
    fake.fail("*", index=0, error=fp.NVMLError_GpuIsLost)
    fake.inject_xid(1, 13)
    snap = _wait_for(src, lambda s: s.devices[1].xid_counts == {13: 2})
    assert snap.devices[0].state == "failed"
    assert snap.devices[0].xid_counts == {79: 2, 48: 1}
    assert snap.devices[1].xid_counts == {13: 2}
    src.close()
    assert fake.calls["nvmlEventSetFree"] == 1


def test_xid_thread_survives_wait_errors(make):
    fake, src = make(xid_events=True)
    fake.fail("nvmlEventSetWait", error=fp.NVMLError_Unknown, times=1)
    time.sleep(0.05)
    assert "nvml_unknown" in _kinds(src.collect())


def test_xid_events_off(make):
    fake, src = make(xid_events=False)
    src.collect()
    assert fake.calls["nvmlEventSetCreate"] == 0


# ---------------------------------------------------------------- processes
def test_per_process_is_opt_in(make):
    fake, src = make()
    fake.set_processes(0, [(1234, 512 * MIB)], mig=0)
    assert src.collect().processes == []
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 0


def test_per_process_on_mig_and_plain_gpus(make):
    fake, src = make(gpus=2, per_process=True)
    fake.set_processes(0, [(1234, 512 * MIB)], mig=0)
    fake.set_processes(0, [(2222, None)], mig=1)
    fake.disable_mig(1)
    fake.set_processes(1, [(4321, 3 * MIB)])
    procs = {(p.pid, p.parent_id): p.memory_bytes for p in src.collect().processes}
    assert procs == {
        (1234, "MIG-00000001-0000-2222-3333-444444444444"): 512 * MIB,
        (2222, "MIG-00000002-0000-2222-3333-444444444444"): None,
        (4321, GPU1): 3 * MIB,
    }


# ---------------------------------------------------------------- real driver
@pytest.mark.gpu
def test_real_nvml_when_a_gpu_is_present():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound / DriverNotLoaded / OSError
        pytest.skip(f"no NVIDIA driver/GPU here: nvmlInit failed: {exc}")
    try:
        count = pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    src = NvmlSource(xid_events=True, per_process=True)
    src.start()
    try:
        snap = src.collect()
        snap = src.collect()
    finally:
        src.close()
    assert len(snap.devices) == count
    for dev in snap.devices:
        assert dev.state in ("ok", "predicted_failure"), snap.problems
        assert dev.hw_id.startswith("GPU-")
        assert dev.model and dev.driver_version
        assert dev.memory_total_bytes and dev.memory_total_bytes > 0
        assert dev.memory_used_bytes is not None and 0 <= dev.memory_used_bytes <= dev.memory_total_bytes
        assert dev.temperatures.get("gpu", 0) > 0
        if dev.power_watts is not None:
            assert 0 < dev.power_watts < 2000
        for ratio in dev.utilization.values():
            assert 0.0 <= ratio <= 1.0
