"""The device exporter's metric schema: the single source of truth.

Every metric family the exporter emits is declared here, once, with its
name, type, unit, labels, help text and stability.  ``exporter.render``
builds families only from these specs, ``exporter.otlp`` pushes the same
data under ``otel_name``, ``docs/metrics.md`` is generated from this module
(``make generate``), and dashboards and alerts import the names.

Conventions (see docs/metrics.md for the full page):

* Physical devices live in ``hw_*`` families (OTel hardware semantic
  conventions) and a few ``accel_*`` extensions; virtual slices (MIG, HAMi
  vGPU, vNPU...) live only in ``accel_slice_*`` families, linked to their
  device by ``hw_parent``, so ``sum()`` never double-counts.
* Base units only; ratios are 0..1; a value that is not reported produces no
  sample (never 0).
* Descriptive attributes (driver, serial, PCI bus, NUMA node) are only on
  the ``_info`` families.
"""

from __future__ import annotations

from accelscope.schema import COUNTER, GAUGE, HISTOGRAM, INFO, STABLE, EXPERIMENTAL, MetricSpec

# ---------------------------------------------------------------- labels
HW_ID = "hw_id"
HW_NAME = "hw_name"
HW_VENDOR = "hw_vendor"
HW_MODEL = "hw_model"
HW_TYPE = "hw_type"
HW_PARENT = "hw_parent"
ACCEL_KIND = "accel_kind"
ACCEL_INDEX = "accel_index"
NODE = "k8s_node_name"
NAMESPACE = "k8s_namespace_name"
POD = "k8s_pod_name"
CONTAINER = "k8s_container_name"
POD_UID = "k8s_pod_uid"

#: identity labels of every physical-device series
DEVICE_LABELS = (HW_ID, HW_NAME, HW_VENDOR, HW_MODEL, ACCEL_KIND, ACCEL_INDEX, NODE)
#: identity labels of every slice series
SLICE_LABELS = (HW_ID, HW_NAME, HW_PARENT, HW_VENDOR, HW_MODEL, ACCEL_KIND, ACCEL_INDEX,
                "accel_slice_type", "accel_slice_id", NODE)
#: workload labels on attributed series (empty when unattributed).
#: ``k8s_pod_uid`` is filled when --pod-uid-label is on, or when the pod UID
#: is the only identity known (HAMi-core directory name, API unreachable).
ATTRIBUTION_LABELS = (NAMESPACE, POD, CONTAINER, POD_UID)

DEV = DEVICE_LABELS + ATTRIBUTION_LABELS
SLC = SLICE_LABELS + ATTRIBUTION_LABELS

_NV = "NVML; nvidia-smi captures (replay); mock."

# ---------------------------------------------------------------- devices
GPU_UTILIZATION = MetricSpec(
    "hw_gpu_utilization_ratio", GAUGE, "1", DEV + ("hw_gpu_task",),
    "Fraction of time the device was busy with a task (0-1); hw_gpu_task is general, encoder or decoder.",
    "hw.gpu.utilization", "gauge", source="NVML nvmlDeviceGetUtilizationRates().gpu/100, encoder/decoder utilization.")
GPU_MEMORY_USAGE = MetricSpec(
    "hw_gpu_memory_usage_bytes", GAUGE, "By", DEV,
    "Device memory in use, in bytes.", "hw.gpu.memory.usage", "updowncounter", source=_NV)
GPU_MEMORY_LIMIT = MetricSpec(
    "hw_gpu_memory_limit_bytes", GAUGE, "By", DEV,
    "Device memory size, in bytes.", "hw.gpu.memory.limit", "updowncounter", source=_NV)
GPU_MEMORY_UTILIZATION = MetricSpec(
    "hw_gpu_memory_utilization_ratio", GAUGE, "1", DEV,
    "Fraction of device memory capacity in use (0-1): usage / limit. Capacity, never bandwidth.",
    "hw.gpu.memory.utilization", "gauge", source="computed from usage and limit.")
GPU_IO = MetricSpec(
    "hw_gpu_io_bytes_total", COUNTER, "By", DEV + ("accel_link_type", "network_io_direction"),
    "Bytes received and transmitted over a link (pcie, nvlink), counted from the exporter's start.", "hw.gpu.io", "counter",
    source="NVML PCIe byte counters (fields 197/198) where 64-bit, else nvmlDeviceGetPcieThroughput (KB/s) integrated over time.")
POWER = MetricSpec(
    "hw_power_watts", GAUGE, "W", DEV + (HW_TYPE,),
    "Instantaneous power draw, in watts. Absent on secondary dies and partitions.",
    "hw.power", "gauge", source=_NV)
ENERGY = MetricSpec(
    "hw_energy_joules_total", COUNTER, "J", DEV + (HW_TYPE,),
    "Energy consumed since the driver loaded, in joules.", "hw.energy", "counter",
    source="NVML nvmlDeviceGetTotalEnergyConsumption (mJ/1000).")
TEMPERATURE = MetricSpec(
    "hw_temperature_celsius", GAUGE, "Cel", DEV + ("hw_sensor_location",),
    "Temperature in degrees Celsius; hw_sensor_location is gpu, memory, hotspot...", "hw.temperature", "gauge",
    source=_NV)
TEMPERATURE_LIMIT = MetricSpec(
    "hw_temperature_limit_celsius", GAUGE, "Cel", DEV + ("hw_sensor_location", "hw_limit_type"),
    "Temperature thresholds in degrees Celsius; hw_limit_type high.degraded (slowdown) or high.critical (shutdown).",
    "hw.temperature.limit", "gauge", source=_NV)
ERRORS = MetricSpec(
    "hw_errors_total", COUNTER, "{error}", DEV + (HW_TYPE, "error_type", "accel_error_source", "accel_xid_code"),
    "Errors seen by the device: error_type corrected/uncorrected (ECC, volatile) with accel_error_source, "
    "ecc when the tool does not say which (Cambricon cnmon), or xid events with accel_xid_code.", "hw.errors",
    "counter",
    source="NVML ECC counters; NVML event API (XID critical errors).")
STATUS = MetricSpec(
    "hw_status", GAUGE, "1", DEV + (HW_TYPE, "hw_state"),
    "1 for the device's current state, 0 for the others (ok, degraded, failed, predicted_failure). "
    "A lost device stays visible as failed.", "hw.status", "updowncounter", stability=STABLE,
    source="per source; NVML GPU lost -> failed from the last known inventory.")
MEMORY_BANDWIDTH = MetricSpec(
    "accel_memory_bandwidth_utilization_ratio", GAUGE, "1", DEV,
    "Fraction of time the memory controller was busy (0-1). Bandwidth, not capacity.",
    "accel.memory.bandwidth.utilization", "gauge", source="NVML utilization.memory/100.")
CLOCK = MetricSpec(
    "accel_clock_frequency_hertz", GAUGE, "Hz", DEV + ("accel_clock_type",),
    "Current clock frequency in hertz; accel_clock_type sm, graphics, memory, video.",
    "accel.clock.frequency", "gauge", source=_NV)
POWER_LIMIT = MetricSpec(
    "accel_power_limit_watts", GAUGE, "W", DEV,
    "Enforced power limit, in watts.", "accel.power.limit", "gauge", source=_NV)
THROTTLE = MetricSpec(
    "accel_throttle_duration_seconds_total", COUNTER, "s", DEV + ("accel_throttle_reason",),
    "Cumulative time the clocks were held down, in seconds, by reason: power, thermal, sync_boost, board, "
    "low_util, reliability (NVML violation counters); hw_thermal, hw_power_brake (nvidia-smi clock-event "
    "counters, replay).", "accel.throttle.duration", "counter",
    source="NVML nvmlDeviceGetViolationStatus (ns/1e9).")
FAN = MetricSpec(
    "accel_fan_speed_ratio", GAUGE, "1", DEV,
    "Fan speed as a fraction of its maximum (0-1).", "accel.fan.speed", "gauge", source=_NV)
DEVICE_INFO = MetricSpec(
    "accel_device_info", INFO, "1",
    DEVICE_LABELS + ("hw_serial_number", "hw_driver_version", "hw_firmware_version", "accel_pci_bus_id",
                     "accel_numa_node", "accel_compute_capability"),
    "Descriptive attributes of a physical device; value 1.", "accel.device.info", "gauge", source=_NV)

# ---------------------------------------------------------------- slices
SLICE_MEMORY_USAGE = MetricSpec(
    "accel_slice_memory_usage_bytes", GAUGE, "By", SLC,
    "Memory used inside a slice, in bytes (MIG instance framebuffer; HAMi vGPU: sum over the container's "
    "active processes as tracked by HAMi-core).", "accel.slice.memory.usage", "updowncounter",
    source="NVML MIG memory info; HAMi-core shared region used[].total.")
SLICE_MEMORY_LIMIT = MetricSpec(
    "accel_slice_memory_limit_bytes", GAUGE, "By", SLC,
    "Memory a slice may use, in bytes (MIG instance size; HAMi vGPU software limit).",
    "accel.slice.memory.limit", "updowncounter", source="NVML MIG memory info; HAMi-core shared region limit[].")
SLICE_CORE_LIMIT = MetricSpec(
    "accel_slice_core_limit_ratio", GAUGE, "1", SLC,
    "Fraction of the parent device's compute a slice may use (0-1); 1 when unlimited.",
    "accel.slice.core.limit", "gauge", source="HAMi-core shared region sm_limit[]/100.")
SLICE_UTILIZATION = MetricSpec(
    "accel_slice_utilization_ratio", GAUGE, "1", SLC,
    "Fraction of the parent device's compute used by the slice (0-1, clamped; clamped samples are counted "
    "in accel_exporter_clamped_samples_total).", "accel.slice.utilization", "gauge",
    source="HAMi-core shared region sum of per-process sm_util/100; NVML where MIG reports it.")
SLICE_LAST_KERNEL_AGE = MetricSpec(
    "accel_slice_last_kernel_age_seconds", GAUGE, "s", SLC,
    "Seconds since the slice's container last launched a kernel, at collection time.",
    "accel.slice.last_kernel.age", "gauge", source="HAMi-core shared region last_kernel_time (layout 1.x).")
SLICE_INFO = MetricSpec(
    "accel_slice_info", INFO, "1", SLICE_LABELS + ("accel_slice_profile",),
    "Descriptive attributes of a slice (profile); value 1.", "accel.slice.info", "gauge",
    source="NVML MIG; nvidia-smi -L; HAMi-core.")

# ---------------------------------------------------------------- processes (opt-in)
PROCESS_MEMORY = MetricSpec(
    "accel_process_memory_usage_bytes", GAUGE, "By", (HW_ID, "process_pid", NODE) + ATTRIBUTION_LABELS,
    "Device memory used by one process, in bytes (opt-in: --per-process). hw_id is the device or slice.",
    "accel.process.memory.usage", "updowncounter", stability=EXPERIMENTAL,
    source="NVML compute running processes; nvidia-smi --query-compute-apps.")

# ---------------------------------------------------------------- the exporter itself
COLLECT_DURATION = MetricSpec(
    "accel_exporter_collect_duration_seconds", HISTOGRAM, "s", ("accel_source",),
    "Wall time of one collection cycle of a source, in seconds.")
COLLECT_SUCCESS = MetricSpec(
    "accel_exporter_collect_success", GAUGE, "1", ("accel_source",),
    "1 if the source's last collection cycle finished without a source-level failure, else 0.")
LAST_SUCCESS = MetricSpec(
    "accel_exporter_last_success_timestamp_seconds", GAUGE, "s", ("accel_source",),
    "Unix time of the source's last successful collection cycle.")
COLLECT_ERRORS = MetricSpec(
    "accel_exporter_collect_errors_total", COUNTER, "{error}", ("accel_source", "error_type"),
    "Problems met while collecting, by bounded reason (parse, timeout, gpu_lost, bad_magic...). "
    "Each is a value or item left out; the rest of the scrape is intact.")
CLAMPED = MetricSpec(
    "accel_exporter_clamped_samples_total", COUNTER, "{sample}", ("accel_source",),
    "Ratio samples above 1 that were clamped to 1 (HAMi-core sums per-process utilization).")
DEVICES = MetricSpec(
    "accel_exporter_devices", GAUGE, "{device}", (HW_VENDOR, ACCEL_KIND, "hw_state", NODE),
    "Physical devices seen, by vendor, kind and state.")
SLICES = MetricSpec(
    "accel_exporter_slices", GAUGE, "{slice}", (HW_VENDOR, "accel_slice_type", NODE),
    "Slices seen, by vendor and slice type.")
BUILD_INFO = MetricSpec(
    "accel_exporter_build_info", INFO, "1", ("version", "python_version"),
    "Build information; value 1.")

DEVICE_FAMILIES = [
    GPU_UTILIZATION, GPU_MEMORY_USAGE, GPU_MEMORY_LIMIT, GPU_MEMORY_UTILIZATION, GPU_IO, POWER, ENERGY,
    TEMPERATURE, TEMPERATURE_LIMIT, ERRORS, STATUS, MEMORY_BANDWIDTH, CLOCK, POWER_LIMIT, THROTTLE, FAN,
    DEVICE_INFO,
]
SLICE_FAMILIES = [SLICE_MEMORY_USAGE, SLICE_MEMORY_LIMIT, SLICE_CORE_LIMIT, SLICE_UTILIZATION,
                  SLICE_LAST_KERNEL_AGE, SLICE_INFO]
PROCESS_FAMILIES = [PROCESS_MEMORY]
SELF_FAMILIES = [COLLECT_DURATION, COLLECT_SUCCESS, LAST_SUCCESS, COLLECT_ERRORS, CLAMPED, DEVICES, SLICES,
                 BUILD_INFO]
ALL = DEVICE_FAMILIES + SLICE_FAMILIES + PROCESS_FAMILIES + SELF_FAMILIES

#: buckets of accel_exporter_collect_duration_seconds
COLLECT_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GROUPS = [
    ("Physical devices", DEVICE_FAMILIES),
    ("Slices (MIG, HAMi vGPU, vNPU...)", SLICE_FAMILIES),
    ("Processes (opt-in)", PROCESS_FAMILIES),
    ("The exporter itself", SELF_FAMILIES),
]

#: Prometheus label -> OTel attribute name, for the OTLP push (exporter.otlp).
OTEL_ATTRIBUTES = {
    HW_ID: "hw.id", HW_NAME: "hw.name", HW_VENDOR: "hw.vendor", HW_MODEL: "hw.model", HW_TYPE: "hw.type",
    HW_PARENT: "hw.parent", ACCEL_KIND: "accel.kind", ACCEL_INDEX: "accel.index", NODE: "k8s.node.name",
    NAMESPACE: "k8s.namespace.name", POD: "k8s.pod.name", CONTAINER: "k8s.container.name",
    POD_UID: "k8s.pod.uid", "hw_gpu_task": "hw.gpu.task", "accel_link_type": "accel.link.type",
    "network_io_direction": "network.io.direction", "hw_sensor_location": "hw.sensor_location",
    "hw_limit_type": "hw.limit_type", "error_type": "error.type", "accel_error_source": "accel.error.source",
    "accel_xid_code": "accel.xid.code", "hw_state": "hw.state", "accel_clock_type": "accel.clock.type",
    "accel_throttle_reason": "accel.throttle.reason", "hw_serial_number": "hw.serial_number",
    "hw_driver_version": "hw.driver_version", "hw_firmware_version": "hw.firmware_version",
    "accel_pci_bus_id": "accel.pci.bus_id", "accel_numa_node": "accel.numa_node",
    "accel_compute_capability": "accel.compute_capability", "accel_slice_type": "accel.slice.type",
    "accel_slice_id": "accel.slice.id", "accel_slice_profile": "accel.slice.profile",
    "process_pid": "process.pid",
}
