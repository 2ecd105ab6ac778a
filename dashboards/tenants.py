"""Tenants: per namespace and pod, memory used vs the slice's own limit;
over-limit, near-limit and allocated-but-idle slices; whole devices given
to pods."""

from __future__ import annotations

from exporter import schema as E

from . import common as c
from .common import BYTES, COUNT, RATIO, SECONDS, Q, Row, by, eq, ne, sel
from .node_device import slice_row

UID = c.TENANTS_UID

F = c.DEFAULT_FILTERS + ("namespace",)
#: row key of the whole-device table
POD_DEVICE_KEY = ["cluster", E.NODE, E.HW_ID, E.HW_NAME, E.HW_MODEL, E.NAMESPACE, E.POD, E.CONTAINER, E.POD_UID]
POD_LEGEND = "{{k8s_namespace_name}}/{{k8s_pod_name}} {{hw_name}}"


def idle_slices(config: c.Config) -> str:
    """Slices given to a pod whose compute use stayed under the idle threshold
    for the idle window, or that launched no kernel for the idle age."""
    util = sel(E.SLICE_UTILIZATION, filters=F, k8s_pod_name=ne(""))
    age = sel(E.SLICE_LAST_KERNEL_AGE, filters=F, k8s_pod_name=ne(""))
    return (f"(max_over_time({util}[{config.idle_window}]) < {config.idle_utilization})"
            f" or ({age} > {config.idle_kernel_age_s})")


def build(config: c.Config = c.CONFIG):
    used = sel(E.SLICE_MEMORY_USAGE, filters=F, k8s_pod_name=ne(""))
    limit = sel(E.SLICE_MEMORY_LIMIT, filters=F, k8s_pod_name=ne(""))
    ratio = f"{used} / {limit}"
    near = config.near_limit
    limit_steps = tuple(c.steps((None, "green"), (near, "orange"), (1, "red")))
    idle = idle_slices(config)
    slice_util = sel(E.SLICE_UTILIZATION, filters=F, k8s_pod_name=ne(""))
    slice_links = {E.NODE: c.node_links(), "trace_id": c.trace_links(config),
                   E.POD: c.pod_trace_search_links(config)}
    slice_labels = [E.NAMESPACE, E.POD, E.CONTAINER, E.NODE, E.HW_NAME, "accel_slice_type", "accel_slice_profile",
                    "trace_id"]
    slice_hidden = ["cluster", E.HW_PARENT, E.HW_ID, E.POD_UID]

    glance = Row("At a glance", [
        c.stat("Slices given to pods", "Slices (MIG, vGPU, vNPU...) attributed to a pod.", COUNT,
               f"count({limit}) or vector(0)", w=5),
        c.stat("Over limit", "Slices whose memory use exceeds the slice's own limit (not the device's).", COUNT,
               f"count({ratio} > 1) or vector(0)", w=5,
               thresholds=c.steps((None, "green"), (1, "red")), color_mode="background"),
        c.stat("Near limit", f"Slices using at least {near:.0%} of their own memory limit, but not more than it.",
               COUNT, f"count({ratio} >= {near} <= 1) or vector(0)", w=5,
               thresholds=c.steps((None, "green"), (1, "orange")), color_mode="background"),
        c.stat("Allocated but idle",
               f"Slices given to a pod whose compute use stayed under {config.idle_utilization:.0%} of the parent "
               f"device for {config.idle_window}, or that launched no kernel for {config.idle_kernel_age_s} s.",
               COUNT, f"count({idle}) or vector(0)", w=5,
               thresholds=c.steps((None, "green"), (1, "orange")), color_mode="background"),
        c.stat("Whole devices given to pods", "Physical devices attributed to a pod (no slicing).", COUNT,
               f"count({sel(E.STATUS, filters=F, hw_state=eq('ok'), k8s_pod_name=ne(''))}) or vector(0)", w=4),
    ])

    per_slice = Row("Slices: used vs limit per pod", [
        c.table(
            "Slices per pod",
            "Every slice given to a pod: memory used vs the slice's own limit (HAMi vGPU software limit, MIG "
            "instance size), compute used vs allowed as fractions of the parent device, time since the last "
            "kernel. The trace id is the pod UID without dashes (the collector's placement trace).",
            [Q(slice_row(used), title="Memory used", unit=BYTES),
             Q(slice_row(limit), title="Memory limit", unit=BYTES),
             Q(slice_row(ratio), title="Used / limit", unit=RATIO, thresholds=limit_steps, cell="color-background"),
             Q(slice_row(sel(E.SLICE_UTILIZATION, filters=F, k8s_pod_name=ne(""))), title="Compute used",
               unit=RATIO, cell="gauge", min=0, max=1),
             Q(slice_row(sel(E.SLICE_CORE_LIMIT, filters=F, k8s_pod_name=ne(""))), title="Compute limit",
               unit=RATIO),
             Q(slice_row(sel(E.SLICE_LAST_KERNEL_AGE, filters=F, k8s_pod_name=ne(""))), title="Last kernel",
               unit=SECONDS)],
            labels=slice_labels, hidden=slice_hidden, h=10, sort_by="Used / limit", label_links=slice_links),
        c.timeseries("Slice memory used / limit (top 10)",
                     "The ten slices closest to their own memory limit (used / limit, 0-1; above 1 is over).",
                     RATIO,
                     [Q(f"topk(10, {by('max', [E.NAMESPACE, E.POD, E.NODE, E.HW_NAME], ratio)})",
                        legend=POD_LEGEND)],
                     thresholds=list(limit_steps)),
        c.timeseries("Slice compute used (top 10)",
                     "The ten busiest slices: fraction of the parent device's compute used (0-1).", RATIO,
                     [Q(f"topk(10, {by('max', [E.NAMESPACE, E.POD, E.NODE, E.HW_NAME], slice_util)})",
                        legend=POD_LEGEND)], max=1),
    ])

    flagged = Row("Over-limit, near-limit and idle slices", [
        c.table(
            "Closest to their limit",
            f"The ten slices with the highest memory use relative to their own limit; at {near:.0%} a slice is "
            "near its limit (orange), above 100% over it (red).",
            [Q(slice_row(f"topk(10, {ratio})"), title="Used / limit", unit=RATIO, thresholds=limit_steps,
               cell="color-background"),
             Q(slice_row(f"{used} and on (cluster, {E.HW_ID}) topk(10, {ratio})"), title="Memory used", unit=BYTES),
             Q(slice_row(f"{limit} and on (cluster, {E.HW_ID}) topk(10, {ratio})"), title="Memory limit",
               unit=BYTES)],
            labels=slice_labels, hidden=slice_hidden, w=12, h=8, sort_by="Used / limit", label_links=slice_links),
        c.table(
            "Allocated but idle",
            f"Slices given to a pod whose compute use stayed under {config.idle_utilization:.0%} for "
            f"{config.idle_window} (the highest use in the window is shown), or that launched no kernel for "
            f"{config.idle_kernel_age_s} s. Their memory stays reserved.",
            [Q(slice_row(f"max_over_time({sel(E.SLICE_UTILIZATION, filters=F, k8s_pod_name=ne(''))}"
                         f"[{config.idle_window}]) and on (cluster, {E.HW_ID}) ({idle})"),
               title=f"Max compute used ({config.idle_window})", unit=RATIO),
             Q(slice_row(f"{sel(E.SLICE_LAST_KERNEL_AGE, filters=F, k8s_pod_name=ne(''))} "
                         f"and on (cluster, {E.HW_ID}) ({idle})"), title="Last kernel", unit=SECONDS),
             Q(slice_row(f"{limit} and on (cluster, {E.HW_ID}) ({idle})"), title="Memory reserved", unit=BYTES)],
            labels=slice_labels, hidden=slice_hidden, w=12, h=8, sort_by="Memory reserved",
            label_links=slice_links),
    ])

    ns_key = [E.NAMESPACE]
    namespaces = Row("Namespaces", [
        c.table(
            "Slices by namespace",
            "Per namespace: slices, memory used vs the sum of the slices' limits, slices over or near their "
            "limit, idle slices.",
            [Q(by("count", ns_key, limit), title="Slices"),
             Q(by("sum", ns_key, used), title="Memory used", unit=BYTES),
             Q(by("sum", ns_key, limit), title="Memory limit", unit=BYTES),
             Q(f"{by('sum', ns_key, used)} / {by('sum', ns_key, limit)}", title="Used / limit", unit=RATIO,
               thresholds=limit_steps, cell="color-text"),
             Q(f"{by('count', ns_key, f'{ratio} > 1')} or 0 * {by('count', ns_key, limit)}", title="Over limit",
               thresholds=tuple(c.steps((None, "text"), (1, "red"))), cell="color-text"),
             Q(f"{by('count', ns_key, f'{ratio} >= {near} <= 1')} or 0 * {by('count', ns_key, limit)}",
               title="Near limit", thresholds=tuple(c.steps((None, "text"), (1, "orange"))), cell="color-text"),
             Q(f"{by('count', ns_key, idle)} or 0 * {by('count', ns_key, limit)}", title="Idle",
               thresholds=tuple(c.steps((None, "text"), (1, "orange"))), cell="color-text")],
            labels=ns_key, h=7, sort_by="Memory used", label_links={E.NAMESPACE: c.namespace_links()}),
    ])

    dev_used = sel(E.GPU_MEMORY_USAGE, filters=F, k8s_pod_name=ne(""))
    dev_size = sel(E.GPU_MEMORY_LIMIT, filters=F, k8s_pod_name=ne(""))

    def pod_device(expr: str) -> str:
        return c.with_trace_id(by("max", POD_DEVICE_KEY, expr))

    whole = Row("Whole devices per pod", [
        c.table(
            "Whole devices per pod",
            "Physical devices given whole to a pod: memory used vs the device's size (capacity) and compute "
            "used. Slices are in their own tables, never added to these.",
            [Q(pod_device(dev_used), title="Memory used", unit=BYTES),
             Q(pod_device(dev_size), title="Memory size", unit=BYTES),
             Q(pod_device(f"{dev_used} / {dev_size}"), title="Used / size", unit=RATIO,
               thresholds=limit_steps, cell="color-background"),
             Q(pod_device(sel(E.GPU_UTILIZATION, filters=F, hw_gpu_task=eq("general"), k8s_pod_name=ne(""))),
               title="Compute used", unit=RATIO, cell="gauge", min=0, max=1)],
            labels=[E.NAMESPACE, E.POD, E.CONTAINER, E.NODE, E.HW_NAME, E.HW_MODEL, "trace_id"],
            hidden=["cluster", E.HW_ID, E.POD_UID], h=8, sort_by="Memory used",
            label_links={E.NODE: c.node_links(), "trace_id": c.trace_links(config),
                         E.POD: c.pod_trace_search_links(config)}),
    ])

    return c.dashboard(UID, "Per namespace and pod: memory used vs each slice's own limit, compute used vs "
                       "allowed, over-limit, near-limit and allocated-but-idle slices, whole devices given to "
                       "pods; trace links from pod rows.",
                       [glance, per_slice, flagged, namespaces, whole])
