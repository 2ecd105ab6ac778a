"""Node and device: per device utilization, memory, power, temperature and
errors; the slices (MIG, vGPU, vNPU...) on each device with their tenants;
the scheduler's allocation of each device next to its use."""

from __future__ import annotations

from exporter import schema as E
from scheduler_events import schema as C

from . import common as c
from .common import (BYTES, BYTES_PER_SECOND, CELSIUS, COUNT, HERTZ, RATIO, SECONDS, WATTS, Q, Row, by, eq, ne,
                     rx, sel)

UID = c.NODE_DEVICE_UID

#: row key of the device table (every device family carries these labels)
DEVICE_KEY = ["cluster", E.NODE, E.HW_ID, E.HW_NAME, E.HW_MODEL, E.NAMESPACE, E.POD]
#: row key of the slice table
SLICE_KEY = ["cluster", E.NODE, E.HW_PARENT, E.HW_ID, E.HW_NAME, "accel_slice_type", E.NAMESPACE, E.POD,
             E.CONTAINER, E.POD_UID]
#: row key of the scheduler's view (collector)
ALLOC_KEY = ["cluster", C.NODE, C.HW_ID, C.MODEL, C.INDEX]
#: legend labels of per-device series
DEV = [E.NODE, E.HW_NAME]
DEV_LEGEND = "{{k8s_node_name}} {{hw_name}}"


def device_row(expr: str) -> str:
    """``expr`` aggregated to one series per device (:data:`DEVICE_KEY`), with
    the driver version from ``accel_device_info`` (joined on hw_id)."""
    info = by("max", ["cluster", E.HW_ID, "hw_driver_version"], sel(E.DEVICE_INFO))
    return f"{by('max', DEVICE_KEY, expr)} * on (cluster, {E.HW_ID}) group_left (hw_driver_version) {info}"


def slice_row(expr: str) -> str:
    """``expr`` aggregated to one series per slice, with its profile from
    ``accel_slice_info`` (joined on hw_id) and the placement trace id."""
    info = by("max", ["cluster", E.HW_ID, "accel_slice_profile"], sel(E.SLICE_INFO))
    return c.with_trace_id(
        f"{by('max', SLICE_KEY, expr)} * on (cluster, {E.HW_ID}) group_left (accel_slice_profile) {info}")


def build(config: c.Config = c.CONFIG):
    util = sel(E.GPU_UTILIZATION, hw_gpu_task=eq("general"))
    used = sel(E.GPU_MEMORY_USAGE)
    size = sel(E.GPU_MEMORY_LIMIT)
    allocated = sel(C.DEVICE_MEMORY_ALLOCATED)
    ratio_steps = tuple(c.steps((None, "green"), (0.8, "orange"), (0.95, "red")))

    devices = Row("Devices", [
        c.table(
            "Devices",
            "One row per physical device: health, compute and memory use (capacity), power, GPU "
            "temperature, SM clock and uncorrected ECC / XID errors in the selected range; the driver "
            "comes from accel_device_info. Namespace and pod are set when a whole device is given to a pod.",
            [Q(device_row(c.health_code(DEVICE_KEY)), title="Health", mappings=(c.HEALTH_MAPPING,),
               cell="color-text"),
             Q(device_row(util), title="Utilization", unit=RATIO, cell="gauge", min=0, max=1),
             Q(device_row(used), title="Memory used", unit=BYTES),
             Q(device_row(size), title="Memory size", unit=BYTES),
             Q(device_row(sel(E.GPU_MEMORY_UTILIZATION)), title="Memory used / size", unit=RATIO,
               thresholds=ratio_steps, cell="color-text"),
             Q(device_row(sel(E.POWER)), title="Power", unit=WATTS),
             Q(device_row(sel(E.POWER_LIMIT)), title="Power limit", unit=WATTS),
             Q(device_row(sel(E.TEMPERATURE, hw_sensor_location=eq("gpu"))), title="Temperature", unit=CELSIUS,
               thresholds=tuple(c.steps((None, "green"), (80, "orange"), (90, "red"))), cell="color-text"),
             Q(device_row(sel(E.CLOCK, accel_clock_type=eq("sm"))), title="SM clock", unit=HERTZ),
             Q(device_row(f"increase({sel(E.ERRORS, error_type=rx('uncorrected|xid'))}[$__range])"),
               title="Uncorrected + XID errors", decimals=0,
               thresholds=tuple(c.steps((None, "text"), (1, "red"))), cell="color-text")],
            labels=[E.NODE, E.HW_NAME, E.HW_MODEL, "hw_driver_version", E.NAMESPACE, E.POD],
            hidden=["cluster", E.HW_ID], h=9, sort_by=None,
            label_links={E.NODE: c.node_links(), E.NAMESPACE: c.namespace_links()}),
        c.state_timeline(
            "Device health", "Health state of each device over time (hw_status): ok, degraded, predicted "
            "failure, failed.",
            Q(c.health_code(DEV), legend=DEV_LEGEND), mappings=[c.HEALTH_MAPPING], h=6),
    ])

    use = Row("Utilization and memory", [
        c.timeseries("Compute utilization", "Fraction of time each device was busy (general task, 0-1).", RATIO,
                     [Q(by("max", DEV, util), legend=DEV_LEGEND)], max=1),
        c.timeseries("Memory used / size (capacity)",
                     "Device memory in use over memory size (0-1): capacity, not bandwidth.", RATIO,
                     [Q(by("max", DEV, sel(E.GPU_MEMORY_UTILIZATION)), legend=DEV_LEGEND)], max=1,
                     thresholds=list(ratio_steps)),
        c.timeseries("Memory used", "Device memory in use, in bytes, next to each device's size.", BYTES,
                     [Q(by("max", DEV, used), legend=DEV_LEGEND + " used"),
                      Q(by("max", DEV, size), legend=DEV_LEGEND + " size")]),
        c.timeseries("Memory bandwidth utilization",
                     "Fraction of time the memory controller was busy (0-1). Bandwidth, not capacity: a full "
                     "device can read this as 0.", RATIO,
                     [Q(by("max", DEV, sel(E.MEMORY_BANDWIDTH)), legend=DEV_LEGEND)], max=1),
    ])

    power = Row("Power, temperature, clocks", [
        c.timeseries("Power draw", "Instantaneous power draw and the enforced power limit, in watts.", WATTS,
                     [Q(by("max", DEV, sel(E.POWER)), legend=DEV_LEGEND),
                      Q(by("max", DEV, sel(E.POWER_LIMIT)), legend=DEV_LEGEND + " limit")], w=8),
        c.timeseries("Temperature", "Temperature per sensor (gpu, memory...) and the slowdown threshold "
                     "(hw_limit_type high.degraded).", CELSIUS,
                     [Q(by("max", DEV + ["hw_sensor_location"], sel(E.TEMPERATURE)),
                        legend=DEV_LEGEND + " {{hw_sensor_location}}"),
                      Q(by("min", DEV, sel(E.TEMPERATURE_LIMIT, hw_limit_type=eq("high.degraded"))),
                        legend=DEV_LEGEND + " slowdown")], w=8),
        c.timeseries("Clock throttling", "Fraction of time the clocks were held down, by reason (rate of the "
                     "throttle-duration counter; low_util, the idle clock-down, is left out).", RATIO,
                     [Q(by("sum", DEV + ["accel_throttle_reason"],
                           f"rate({sel(E.THROTTLE, accel_throttle_reason=ne('low_util'))}[$__rate_interval])"),
                        legend=DEV_LEGEND + " {{accel_throttle_reason}}")], w=8, max=1),
        c.timeseries("SM clock", "Streaming-multiprocessor clock frequency, in hertz.", HERTZ,
                     [Q(by("max", DEV, sel(E.CLOCK, accel_clock_type=eq("sm"))), legend=DEV_LEGEND)], w=8),
        c.timeseries("PCIe / NVLink throughput", "Bytes per second over each link and direction (rate of "
                     "the link byte counter).", BYTES_PER_SECOND,
                     [Q(by("sum", DEV + ["accel_link_type", "network_io_direction"],
                           f"rate({sel(E.GPU_IO)}[$__rate_interval])"),
                        legend=DEV_LEGEND + " {{accel_link_type}} {{network_io_direction}}")], w=8),
        c.timeseries("Device errors", "ECC errors (corrected, uncorrected) and XID events per interval, by "
                     "type.", COUNT,
                     [Q(by("sum", DEV + ["error_type"], f"increase({sel(E.ERRORS)}[$__rate_interval])"),
                        legend=DEV_LEGEND + " {{error_type}}")], w=8, legend_calcs=("sum", "max")),
        c.table("Errors in the selected range",
                "Errors per device, type, source and XID code over the selected time range (increase of the "
                "error counter).",
                [Q(by("sum", ["cluster", E.NODE, E.HW_NAME, "error_type", "accel_error_source", "accel_xid_code"],
                      f"increase({sel(E.ERRORS)}[$__range])"), title="Errors", decimals=0,
                   thresholds=tuple(c.steps((None, "text"), (1, "orange"))), cell="color-text")],
                labels=[E.NODE, E.HW_NAME, "error_type", "accel_error_source", "accel_xid_code"],
                hidden=["cluster"], h=7, sort_by="Errors"),
    ])

    slices = Row("Slices and their tenants", [
        c.table(
            "Slices per device",
            "Every slice (MIG instance, HAMi vGPU, vNPU...) with its parent device, profile (from "
            "accel_slice_info) and tenant; memory used vs the slice's own limit; compute used and allowed "
            "as fractions of the parent device. The trace id is the pod UID without dashes (set when the "
            "exporter reports k8s_pod_uid); the Pod column searches the trace by name.",
            [Q(slice_row(sel(E.SLICE_MEMORY_USAGE)), title="Memory used", unit=BYTES),
             Q(slice_row(sel(E.SLICE_MEMORY_LIMIT)), title="Memory limit", unit=BYTES),
             Q(slice_row(f"{sel(E.SLICE_MEMORY_USAGE)} / {sel(E.SLICE_MEMORY_LIMIT)}"), title="Used / limit",
               unit=RATIO, thresholds=tuple(c.steps((None, "green"), (config.near_limit, "orange"), (1, "red"))),
               cell="color-background"),
             Q(slice_row(sel(E.SLICE_UTILIZATION)), title="Compute used", unit=RATIO, cell="gauge", min=0,
               max=1),
             Q(slice_row(sel(E.SLICE_CORE_LIMIT)), title="Compute limit", unit=RATIO),
             Q(slice_row(sel(E.SLICE_LAST_KERNEL_AGE)), title="Last kernel", unit=SECONDS)],
            labels=[E.NODE, E.HW_NAME, "accel_slice_type", "accel_slice_profile", E.NAMESPACE, E.POD,
                    E.CONTAINER, "trace_id"],
            hidden=["cluster", E.HW_PARENT, E.HW_ID, E.POD_UID], h=9,
            label_links={E.NODE: c.node_links(), "trace_id": c.trace_links(config),
                         E.POD: c.pod_trace_search_links(config), E.NAMESPACE: c.namespace_links()}),
        c.timeseries("Slice memory used", "Memory used inside each slice, in bytes, labelled with its tenant.",
                     BYTES, [Q(by("max", [E.NODE, E.HW_NAME, E.NAMESPACE, E.POD], sel(E.SLICE_MEMORY_USAGE)),
                               legend="{{k8s_node_name}} {{hw_name}} {{k8s_namespace_name}}/{{k8s_pod_name}}")]),
        c.timeseries("Slice compute used", "Fraction of the parent device's compute used by each slice (0-1).",
                     RATIO, [Q(by("max", [E.NODE, E.HW_NAME, E.NAMESPACE, E.POD], sel(E.SLICE_UTILIZATION)),
                               legend="{{k8s_node_name}} {{hw_name}} {{k8s_namespace_name}}/{{k8s_pod_name}}")],
                     max=1),
    ])

    alloc_rows = by("max", ALLOC_KEY, allocated)
    used_on_alloc_rows = (f"0 * {alloc_rows} + on (cluster, {C.HW_ID}) group_left "
                          f"{by('max', ['cluster', E.HW_ID], used)}")
    scheduler = Row("Scheduler's view (HAMi annotations) vs use", [
        c.table(
            "Allocation per device",
            "What the scheduler registered and allocated on each device (collector, from HAMi annotations), "
            "next to the memory in use on the same device (exporter, joined on hw_id). Used / allocated "
            "above 1 means processes use more than was allocated on the device.",
            [Q(by("max", ALLOC_KEY, sel(C.DEVICE_MEMORY_REGISTERED)), title="Memory registered", unit=BYTES),
             Q(alloc_rows, title="Memory allocated", unit=BYTES),
             Q(f"{alloc_rows} / {by('max', ALLOC_KEY, sel(C.DEVICE_MEMORY_REGISTERED))}",
               title="Allocated / registered", unit=RATIO, cell="gauge", min=0, max=1),
             Q(used_on_alloc_rows, title="Memory used (device)", unit=BYTES),
             Q(f"({used_on_alloc_rows}) / ({alloc_rows} > 0)", title="Used / allocated", unit=RATIO,
               thresholds=tuple(c.steps((None, "green"), (1, "red"))), cell="color-text"),
             Q(by("max", ALLOC_KEY, sel(C.DEVICE_CORES_ALLOCATED)), title="Compute allocated", unit=RATIO),
             Q(by("max", ALLOC_KEY, sel(C.DEVICE_SHARED)), title="Sharing containers"),
             Q(by("max", ALLOC_KEY, sel(C.DEVICE_SHARE_LIMIT)), title="Share limit"),
             Q(by("max", ALLOC_KEY, sel(C.DEVICE_HEALTHY)), title="Registered", mappings=(c.HEALTHY_MAPPING,),
               cell="color-text")],
            labels=[C.NODE, C.INDEX, C.MODEL, C.HW_ID], hidden=["cluster"], h=8,
            label_links={C.NODE: c.node_links()}, links=[c.dashboard_link(c.FLEET_UID)]),
        c.timeseries(
            "Memory used / allocated per device",
            "Memory in use on each device (exporter) over the memory the scheduler allocated on it "
            "(collector), joined on hw_id. Low values: allocated but unused; above 1: use beyond allocation.",
            RATIO,
            [Q(f"{by('max', ['cluster', E.HW_ID] + DEV, used)} / on (cluster, {E.HW_ID}) group_left "
               f"{by('max', ['cluster', C.HW_ID], f'{allocated} > 0')}", legend=DEV_LEGEND)]),
        c.table(
            "Node handshakes",
            "Seconds since each node's device plugin last updated its HAMi handshake annotation, by state "
            "(reported, requesting, deleted). A node stuck in requesting is not registering its devices.",
            [Q(f"time() - {by('max', ['cluster', C.NODE, C.VENDOR, 'state'], sel(C.HANDSHAKE))}",
               title="Age", unit=SECONDS, thresholds=tuple(c.steps((None, "green"), (300, "orange"), (900, "red"))),
               cell="color-text")],
            labels=[C.NODE, C.VENDOR, "state"], hidden=["cluster"], w=12, h=8,
            label_links={C.NODE: c.node_links()}),
    ])

    inventory = Row("Inventory", [
        c.table(
            "Device inventory",
            "Descriptive attributes of each physical device (accel_device_info): serial, driver, firmware, "
            "PCI bus id, NUMA node, compute capability.",
            [Q(by("max", ["cluster", E.NODE, E.HW_NAME, E.HW_MODEL, E.HW_ID, "hw_serial_number",
                          "hw_driver_version", "hw_firmware_version", "accel_pci_bus_id", "accel_numa_node",
                          "accel_compute_capability"], sel(E.DEVICE_INFO)), title="Info")],
            labels=[E.NODE, E.HW_NAME, E.HW_MODEL, E.HW_ID, "hw_serial_number", "hw_driver_version",
                    "hw_firmware_version", "accel_pci_bus_id", "accel_numa_node", "accel_compute_capability"],
            hidden=["cluster", "Value"], h=7),
    ])

    return c.dashboard(UID, "Per node and device: health, utilization, memory capacity, power, temperature, "
                       "clocks and errors; the slices on each device with their tenants; the scheduler's "
                       "allocation of each device next to its use.",
                       [devices, use, power, slices, scheduler, inventory], time_from="now-3h")
