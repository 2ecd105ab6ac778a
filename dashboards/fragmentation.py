"""Fragmentation (FGD, Weng et al. ATC'23): the cluster's fragmentation rate
over time, per-node fragmentation, stranded devices, the largest placeable
shapes, and pods blocked by fragmentation."""

from __future__ import annotations

from scheduler_events import schema as C

from . import common as c
from .common import COUNT, RATIO, Q, Row, by, sel

UID = c.FRAGMENTATION_UID


def build(config: c.Config = c.CONFIG):
    rate = sel(C.FRAG_RATE)
    fragmented = sel(C.FRAG_GPUS)
    free = sel(C.FREE_GPUS)
    node_frag = sel(C.NODE_FRAG)
    stranded = sel(C.STRANDED)
    blocked = sel(C.BLOCKED)
    frag_steps = c.steps((None, "green"), (config.fragmentation_warning, "orange"),
                         (config.fragmentation_critical, "red"))

    now = Row("Now", [
        c.gauge("Fragmentation rate", "Share of the free accelerator capacity that the target workload cannot "
                "use (FGD F_N(M) / free GPU, 0-1).", RATIO, f"max({rate})", w=5, h=5, thresholds=frag_steps),
        c.stat("Free GPUs", "Free accelerator capacity, in whole-GPU units (HAMi: min of free cores and free "
               "memory per device).", COUNT, f"sum({free}) or vector(0)", w=5, h=5, decimals=2),
        c.stat("Fragmented GPUs", "Free GPU capacity the target workload cannot use (F_N(M)), in GPUs.", COUNT,
               f"sum({fragmented}) or vector(0)", w=5, h=5, decimals=2),
        c.stat("Stranded GPUs", "Free GPU capacity on nodes whose CPU, memory or pod slots are exhausted.",
               COUNT, f"sum({stranded}) or vector(0)", w=5, h=5, decimals=2,
               thresholds=c.steps((None, "green"), (0.5, "orange"))),
        c.stat("Pods blocked by fragmentation", "Pending accelerator pods whose request fits the cluster's total "
               "free capacity but no single node.", COUNT, f"max({blocked}) or vector(0)", w=4, h=5,
               thresholds=c.steps((None, "green"), (1, "orange")), color_mode="background",
               links=[c.dashboard_link(c.PLACEMENTS_UID)]),
    ])

    trend = Row("Over time", [
        c.timeseries("Cluster fragmentation rate", "FGD fragmentation rate of the cluster (0-1), with the "
                     "warning and critical steps.", RATIO, [Q(f"max({rate})", legend="fragmentation rate")],
                     max=1, thresholds=frag_steps, legend_calcs=("lastNotNull", "mean", "max")),
        c.timeseries("Free and fragmented GPUs by model", "Free GPU capacity and the part of it the target "
                     "workload cannot use, per model, in GPUs.", COUNT,
                     [Q(by("sum", [C.MODEL], free), legend="{{hw_model}} free"),
                      Q(by("sum", [C.MODEL], fragmented), legend="{{hw_model}} fragmented")]),
        c.timeseries("Fragmented share by model", "Fragmented GPUs over free GPUs, per model (0-1).", RATIO,
                     [Q(f"{by('sum', [C.MODEL], fragmented)} / ({by('sum', [C.MODEL], free)} > 0)",
                        legend="{{hw_model}}")], max=1, thresholds=frag_steps),
        c.timeseries("Pods blocked by fragmentation", "Pending accelerator pods that fit the cluster's free "
                     "capacity in total but no single node.", COUNT, [Q(f"max({blocked})", legend="blocked pods")],
                     legend_calcs=("lastNotNull", "max")),
    ])

    nodes = Row("Nodes and stranded devices", [
        c.bargauge("Most fragmented nodes", "Free GPU capacity the target workload cannot use on each of the "
                   "most fragmented nodes (the collector reports the top N), in GPUs.", COUNT,
                   [Q(f"sort_desc({by('max', [C.NODE, C.MODEL], node_frag)})",
                      legend="{{k8s_node_name}} ({{hw_model}})")], w=8, h=9, max=None,
                   links=[c.dashboard_link(c.NODE_DEVICE_UID)]),
        c.timeseries("Per-node fragmentation", "F_n(M) of the most fragmented nodes over time, in GPUs.", COUNT,
                     [Q(by("max", [C.NODE, C.MODEL], node_frag), legend="{{k8s_node_name}} ({{hw_model}})")],
                     w=8, h=9),
        c.timeseries("Stranded GPUs by reason", "Free GPU capacity on nodes whose CPU, memory or pod slots are "
                     "exhausted, by the exhausted resource.", COUNT,
                     [Q(by("sum", ["reason"], stranded), legend="{{reason}}")], stack=True, w=8, h=9),
    ])

    shapes = Row("Workload shapes", [
        c.table("Largest placeable shapes",
                "For each shape of the target workload: its share of the workload, how many more pods of it fit "
                "the cluster as it is (each shape counted alone), and the free capacity that cannot serve it.",
                [Q(by("max", ["shape"], sel(C.WORKLOAD)), title="Share of workload", unit=RATIO, cell="gauge",
                   min=0, max=1),
                 Q(by("max", ["shape"], sel(C.PLACEABLE)), title="Pods that still fit", decimals=0,
                   thresholds=tuple(c.steps((None, "red"), (1, "green"))), cell="color-text"),
                 Q(by("max", ["shape"], sel(C.UNPLACEABLE)), title="Free GPUs unusable for it", decimals=2)],
                labels=["shape"], w=12, h=9, sort_by="Share of workload"),
        c.bargauge("Pods that still fit, by shape", "How many more pods of each target-workload shape the cluster "
                   "can place as it is.", COUNT,
                   [Q(by("max", ["shape"], sel(C.PLACEABLE)), legend="{{shape}}")], w=12, h=9, max=None),
    ])

    return c.dashboard(UID, "FGD fragmentation (Weng et al., ATC'23) of the accelerator capacity: the share "
                       "of free capacity the target workload cannot use, per model and node, stranded "
                       "devices, placeable shapes and pods blocked by fragmentation.",
                       [now, trend, nodes, shapes])
