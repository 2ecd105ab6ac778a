"""Fleet overview: devices by vendor, model and health; allocated vs used vs
free memory; top tenants; pending accelerator pods."""

from __future__ import annotations

from exporter import schema as E
from scheduler_events import schema as C

from . import common as c
from .common import BYTES, COUNT, RATIO, SECONDS, Q, Row, by, eq, ne, sel

UID = c.FLEET_UID

TENANT = (E.NAMESPACE,)


def build(config: c.Config = c.CONFIG):
    used = sel(E.GPU_MEMORY_USAGE)
    size = sel(E.GPU_MEMORY_LIMIT)
    allocated = sel(C.DEVICE_MEMORY_ALLOCATED)
    registered = sel(C.DEVICE_MEMORY_REGISTERED)

    overview = Row("Overview", [
        c.stat("Devices", "Physical accelerators reported by the exporters (slices not counted).", COUNT,
               f"count({sel(E.STATUS, hw_state=eq('ok'))}) or vector(0)"),
        c.stat("Unhealthy devices", "Devices whose health state is degraded, predicted_failure or failed "
               "(a device the driver lost stays visible as failed).", COUNT,
               f"sum({sel(E.STATUS, hw_state=ne('ok'))}) or vector(0)",
               thresholds=c.steps((None, "green"), (1, "red")), color_mode="background",
               links=[c.dashboard_link(c.NODE_DEVICE_UID)]),
        c.stat("Slices", "Virtual slices (MIG instances, HAMi vGPUs, vNPUs...) reported by the exporters; "
               "counted apart from devices.", COUNT, f"count({sel(E.SLICE_INFO)}) or vector(0)"),
        c.stat("Device memory in use", "Memory in use over memory size, summed over devices that report "
               "both (capacity, not bandwidth).", RATIO,
               f"sum({used}) / sum({size} and {used})",
               thresholds=c.steps((None, "green"), (0.8, "orange"), (0.95, "red"))),
        c.stat("Device memory allocated", "Memory the scheduler (HAMi) allocated to pods over memory "
               "registered with it (registration includes HAMi's memory scaling).", RATIO,
               f"sum({allocated}) / sum({registered})",
               thresholds=c.steps((None, "green"), (0.8, "orange"), (0.95, "red"))),
        c.stat("Pending accelerator pods", "Accelerator pods waiting for a placement, all reasons.", COUNT,
               f"sum({sel(C.PENDING, filters=('namespace',))}) or vector(0)",
               thresholds=c.steps((None, "green"), (1, "orange")),
               links=[c.dashboard_link(c.PLACEMENTS_UID)]),
    ])

    health = Row("Devices by vendor, model and health", [
        c.table("Devices by vendor, model and health",
                "One row per vendor and model: devices in each health state. A device is counted in exactly "
                "one state (the hw_status series whose value is 1).",
                [Q(by("count", ["hw_vendor", "hw_model"], sel(E.STATUS, hw_state=eq('ok'))), title="Devices"),
                 Q(by("sum", ["hw_vendor", "hw_model"], sel(E.STATUS, hw_state=eq('ok'))), title="OK"),
                 Q(by("sum", ["hw_vendor", "hw_model"], sel(E.STATUS, hw_state=eq('degraded'))), title="Degraded",
                   thresholds=tuple(c.steps((None, "text"), (1, "orange"))), cell="color-text"),
                 Q(by("sum", ["hw_vendor", "hw_model"], sel(E.STATUS, hw_state=eq('predicted_failure'))),
                   title="Predicted failure", thresholds=tuple(c.steps((None, "text"), (1, "orange"))),
                   cell="color-text"),
                 Q(by("sum", ["hw_vendor", "hw_model"], sel(E.STATUS, hw_state=eq('failed'))), title="Failed",
                   thresholds=tuple(c.steps((None, "text"), (1, "red"))), cell="color-text")],
                labels=["hw_vendor", "hw_model"], w=14, h=8, sort_by="Devices"),
        c.timeseries("Devices by health state", "Devices in each health state over time.", COUNT,
                     [Q(by("sum", ["hw_state"], sel(E.STATUS)), legend="{{hw_state}}")], w=10, h=8,
                     stack=True, legend_calcs=("lastNotNull",)),
    ])

    memory = Row("Device memory: allocated vs used vs free", [
        c.timeseries(
            "Device memory: size, registered, allocated, used",
            "Size and used come from the devices (exporter); registered and allocated from the scheduler's "
            "HAMi annotations (collector). Allocated is a promise, used is what processes hold: whole "
            "devices given by a plain device plugin are not in allocated. Free for scheduling = registered "
            "- allocated.", BYTES,
            [Q(f"sum({size})", legend="size (devices)"),
             Q(f"sum({registered})", legend="registered with the scheduler"),
             Q(f"sum({allocated})", legend="allocated to pods"),
             Q(f"sum({used})", legend="used (devices)"),
             Q(f"sum({registered}) - sum({allocated})", legend="free for scheduling")],
            w=12, h=9, legend_calcs=("lastNotNull", "max")),
        c.bargauge("Memory in use by model", "Device memory in use over memory size, per model (capacity).",
                   RATIO, [Q(f"{by('sum', ['hw_model'], used)} / {by('sum', ['hw_model'], f'{size} and {used}')}",
                             legend="{{hw_model}}")],
                   w=6, h=9, thresholds=c.steps((None, "green"), (0.8, "orange"), (0.95, "red"))),
        c.bargauge("Memory allocated by model", "Memory allocated to pods over memory registered, per model "
                   "(the scheduler's view).", RATIO,
                   [Q(f"{by('sum', ['hw_model'], allocated)} / {by('sum', ['hw_model'], registered)}",
                      legend="{{hw_model}}")],
                   w=6, h=9, thresholds=c.steps((None, "green"), (0.8, "orange"), (0.95, "red"))),
        c.timeseries(
            "Allocated but unused device memory",
            "Per device, memory allocated by the scheduler minus memory in use on that device (joined on "
            "hw_id, floored at 0), summed by model: capacity promised to pods that nobody uses.", BYTES,
            [Q(by("sum", ["hw_model"],
                  "clamp_min("
                  f"{by('max', ['cluster', 'hw_id', 'hw_model'], allocated)}"
                  f" - on (cluster, hw_id) group_left {by('max', ['cluster', 'hw_id'], used)}, 0)"),
               legend="{{hw_model}}")],
            w=12, h=8, stack=True, legend_calcs=("lastNotNull", "max")),
        c.timeseries("Compute utilization by model",
                     "Mean fraction of time the devices of each model were busy (general task, 0-1).", RATIO,
                     [Q(by("avg", ["hw_model"], sel(E.GPU_UTILIZATION, hw_gpu_task=eq('general'))),
                        legend="{{hw_model}}")], w=12, h=8, max=1),
    ])

    t_filters = c.DEFAULT_FILTERS + ("namespace",)
    tenants = Row("Top tenants", [
        c.table(
            "Top tenants",
            "Per namespace: whole devices attributed to its pods and the slices given to them, kept in "
            "separate columns (a slice's memory is part of its parent device's, so they are never added). "
            "Busy GPUs = sum of compute utilization (0-1 per device or slice of its parent).",
            [Q(by("count", TENANT, sel(E.STATUS, filters=t_filters, hw_state=eq('ok'),
                                       k8s_namespace_name=ne(''))), title="Whole devices"),
             Q(by("sum", TENANT, sel(E.GPU_MEMORY_USAGE, filters=t_filters, k8s_namespace_name=ne(''))),
               title="Device memory used", unit=BYTES),
             Q(by("sum", TENANT, sel(E.GPU_UTILIZATION, filters=t_filters, hw_gpu_task=eq('general'),
                                     k8s_namespace_name=ne(''))), title="Busy GPUs (devices)", decimals=2),
             Q(by("count", TENANT, sel(E.SLICE_MEMORY_LIMIT, filters=t_filters, k8s_namespace_name=ne(''))),
               title="Slices"),
             Q(by("sum", TENANT, sel(E.SLICE_MEMORY_USAGE, filters=t_filters, k8s_namespace_name=ne(''))),
               title="Slice memory used", unit=BYTES),
             Q(by("sum", TENANT, sel(E.SLICE_MEMORY_LIMIT, filters=t_filters, k8s_namespace_name=ne(''))),
               title="Slice memory limit", unit=BYTES),
             Q(by("sum", TENANT, sel(E.SLICE_UTILIZATION, filters=t_filters, k8s_namespace_name=ne(''))),
               title="Busy GPUs (slices)", decimals=2),
             Q(by("sum", TENANT, sel(C.PENDING, filters=("namespace",))), title="Pending pods")],
            labels=[E.NAMESPACE], w=14, h=9, sort_by="Device memory used",
            label_links={E.NAMESPACE: c.namespace_links()}),
        c.table(
            "Pending accelerator pods",
            "Pending accelerator pods by scheduler, namespace and primary reason (the reason code that "
            "blocked the most nodes), with the age of the namespace's oldest pending pod.",
            [Q(by("sum", ["scheduler", E.NAMESPACE, "reason"], sel(C.PENDING, filters=("namespace",))),
               title="Pending pods"),
             Q(f"0 * {by('sum', ['scheduler', E.NAMESPACE, 'reason'], sel(C.PENDING, filters=('namespace',)))}"
               f" + on (scheduler, {E.NAMESPACE}) group_left "
               f"{by('max', ['scheduler', E.NAMESPACE], sel(C.OLDEST_PENDING, filters=('namespace',)))}",
               title="Oldest in namespace", unit=SECONDS)],
            labels=["scheduler", E.NAMESPACE, "reason"], w=10, h=9, sort_by="Pending pods",
            links=[c.dashboard_link(c.PLACEMENTS_UID)],
            label_links={"reason": [c.Link("Open placement decisions",
                                           c.dashboard_url(c.PLACEMENTS_UID,
                                                           "var-namespace=${__data.fields.k8s_namespace_name}"))]}),
    ])

    return c.dashboard(UID, "The whole accelerator fleet: devices by vendor, model and health; memory "
                       "allocated by the scheduler vs used on the devices; top tenants; pending pods.",
                       [overview, health, memory, tenants])
