"""Placement decisions: outcomes over time, rejections by reason code,
phase latencies, pending pods with their primary reason and trace links,
recent decisions, and the collector's own health."""

from __future__ import annotations

from scheduler_events import schema as C

from . import common as c
from .common import COUNT, PER_SECOND, RATIO, SECONDS, Q, Row, by, eq, sel

UID = c.PLACEMENTS_UID

NS = ("namespace",)
QUANTILES = (0.5, 0.9, 0.99)


def quantile(q: float, labels: list[str], window: str = "$__rate_interval", fn: str = "rate", **matchers: str) -> str:
    """``histogram_quantile`` of the phase-duration histogram."""
    buckets = sel(C.PHASE_DURATION, suffix="_bucket", **matchers)
    return f"histogram_quantile({q}, {by('sum', labels + ['le'], f'{fn}({buckets}[{window}])')})"


def build(config: c.Config = c.CONFIG):
    decisions = sel(C.DECISIONS)
    attempts = sel(C.ATTEMPTS)
    rejections = sel(C.REJECTIONS)
    node_rejections = sel(C.NODE_REJECTIONS)
    pending = sel(C.PENDING, filters=NS)
    oldest = sel(C.OLDEST_PENDING, filters=NS)
    bad = c.steps((None, "green"), (1, "red"))

    outcomes = Row("Outcomes", [
        c.stat("Placed", "Accelerator pods bound to a node in the selected range.", COUNT,
               f"sum(increase({sel(C.DECISIONS, outcome=eq('placed'))}[$__range])) or vector(0)"),
        c.stat("Failed", "Placements whose device allocation failed after binding, in the selected range.",
               COUNT, f"sum(increase({sel(C.DECISIONS, outcome=eq('failed'))}[$__range])) or vector(0)",
               thresholds=bad),
        c.stat("Deleted while pending", "Pods deleted before any scheduler placed them, in the selected range.",
               COUNT, f"sum(increase({sel(C.DECISIONS, outcome=eq('deleted'))}[$__range])) or vector(0)"),
        c.stat("Unschedulable attempts", "Share of scheduling attempts that failed in the selected range.",
               RATIO, f"sum(increase({sel(C.ATTEMPTS, result=eq('unschedulable'))}[$__range])) / "
                      f"sum(increase({attempts}[$__range]))",
               thresholds=c.steps((None, "green"), (0.2, "orange"), (0.5, "red"))),
        c.stat("Pending now", "Accelerator pods waiting for a placement.", COUNT,
               f"sum({pending}) or vector(0)", thresholds=c.steps((None, "green"), (1, "orange"))),
        c.stat("Oldest pending", "Age of the oldest pending accelerator pod.", SECONDS,
               f"max({oldest}) or vector(0)", thresholds=c.steps((None, "green"), (300, "orange"), (1800, "red"))),
        c.timeseries("Placement outcomes", "Placements per second by scheduler and outcome: placed, failed "
                     "(allocation failed after binding; also counted once as placed), deleted while pending.",
                     PER_SECOND, [Q(by("sum", ["scheduler", "outcome"],
                                       f"rate({decisions}[$__rate_interval])"),
                                    legend="{{scheduler}} {{outcome}}")]),
        c.timeseries("Scheduling attempts", "Scheduling attempts per second by scheduler and result "
                     "(scheduled, unschedulable).", PER_SECOND,
                     [Q(by("sum", ["scheduler", "result"], f"rate({attempts}[$__rate_interval])"),
                        legend="{{scheduler}} {{result}}")]),
    ])

    rejected = Row("Rejections", [
        c.timeseries("Node rejections by reason code",
                     "Nodes rejected per second in failed attempts, by reason code (HAMi codes such as "
                     "CardInsufficientMemory; kube-scheduler codes such as insufficient_resource) and the "
                     "component that reported it.", PER_SECOND,
                     [Q(by("sum", ["reason", "reason_source"], f"rate({rejections}[$__rate_interval])"),
                        legend="{{reason}} ({{reason_source}})")], stack=True, w=12),
        c.bargauge("Node rejections by reason (selected range)",
                   "Nodes rejected in the selected range, by reason code.", COUNT,
                   [Q(f"sort_desc({by('sum', ['reason'], f'increase({rejections}[$__range])')})",
                      legend="{{reason}}")], w=6, max=None),
        c.table("Rejections by scheduler and reason",
                "Nodes rejected in the selected range by scheduler, reason code and reporting component.",
                [Q(by("sum", ["scheduler", "reason", "reason_source"], f"increase({rejections}[$__range])"),
                   title="Nodes rejected", decimals=0)],
                labels=["scheduler", "reason", "reason_source"], w=6, sort_by="Nodes rejected"),
        c.table("Rejections by node",
                "Times each node was rejected in the selected range, by reason code, where the scheduler names "
                "the nodes (HAMi FilteringFailed events; up to 32 nodes per reason per attempt).",
                [Q(f"topk(50, {by('sum', ['k8s_node_name', 'reason'], f'increase({node_rejections}[$__range])')})",
                   title="Rejections", decimals=0)],
                labels=["k8s_node_name", "reason"], w=24, sort_by="Rejections"),
    ])

    running, bound = "created_to_running", "created_to_bound"
    if running not in C.PHASES or bound not in C.PHASES:
        raise ValueError(f"phase names changed in the schema: {C.PHASES}")
    count = sel(C.PHASE_DURATION, suffix="_count")
    total = sel(C.PHASE_DURATION, suffix="_sum")
    latency = Row("Phase latency", [
        c.timeseries("Time to bind (created → bound)",
                     "p50, p90 and p99 of the time from pod creation to binding. Exemplar points are single "
                     "placements; their trace_id opens the trace when the data source's exemplar link is set.",
                     SECONDS,
                     [Q(quantile(q, ["scheduler"], phase=eq(bound)), legend=f"{{{{scheduler}}}} p{int(q * 100)}",
                        exemplar=q == 0.5) for q in QUANTILES]),
        c.timeseries("Time to running (created → running): recent placements",
                     "p50, p90 and p99 of the time from pod creation to its first container start. Each "
                     "exemplar point is a recent placement carrying its trace_id.", SECONDS,
                     [Q(quantile(q, ["scheduler"], phase=eq(running)), legend=f"{{{{scheduler}}}} p{int(q * 100)}",
                        exemplar=q == 0.5) for q in QUANTILES]),
        c.timeseries("Phase latency p90 by phase",
                     "p90 of each phase: created → filtered (waiting for the scheduler's filter), filtered → "
                     "bound, bound → allocated (device plugin), and the end-to-end phases.", SECONDS,
                     [Q(quantile(0.9, ["phase"]), legend="{{phase}}")]),
        c.table("Phase latency in the selected range",
                "Per scheduler and phase over the selected range: placements measured, p50, p90, p99 and mean.",
                [Q(by("sum", ["scheduler", "phase"], f"increase({count}[$__range])"),
                   title="Placements", decimals=0),
                 *[Q(quantile(q, ["scheduler", "phase"], window="$__range", fn="increase"),
                     title=f"p{int(q * 100)}", unit=SECONDS) for q in QUANTILES],
                 Q(f"{by('sum', ['scheduler', 'phase'], f'increase({total}[$__range])')} / "
                   f"{by('sum', ['scheduler', 'phase'], f'increase({count}[$__range])')}",
                   title="Mean", unit=SECONDS)],
                labels=["scheduler", "phase"], w=12),
    ])

    pod_key = [C.NAMESPACE, "k8s_pod_name", "reason", "scheduler", "trace_id"]
    pods = by("max", pod_key, sel(C.PENDING_POD, filters=NS))
    waiting = Row("Pending pods", [
        c.table(
            "Pending accelerator pods",
            "One row per pending accelerator pod: namespace, pod, primary reason (the code that blocked the "
            "most nodes), scheduler, the age of the oldest pending pod of its namespace (the collector "
            "exports no per-pod age), and its trace id. The Trace ID opens the pod's placement trace; the "
            "trace is written when the pod runs, fails or is deleted, so while it is still pending the link "
            "finds nothing yet (the same trace_id is on the collector's placement log lines). The namespace "
            "links to its placement traces; `accelscope explain NAMESPACE/POD` answers for one pod.",
            [Q(pods, title="Pending"),
             Q(f"0 * {pods} + on (scheduler, {C.NAMESPACE}) group_left "
               f"{by('max', ['scheduler', C.NAMESPACE], oldest)}", title="Oldest in namespace", unit=SECONDS,
               thresholds=tuple(c.steps((None, "text"), (300, "orange"), (1800, "red"))), cell="color-text")],
            labels=pod_key, hidden=["Value #A"], last=["scheduler", "trace_id"], w=12, h=8,
            sort_by="Oldest in namespace",
            label_links={C.NAMESPACE: c.namespace_trace_search_links(config), "trace_id": c.trace_links(config)}),
        c.timeseries("Pending pods by primary reason", "Pending accelerator pods over time, by primary reason.",
                     COUNT, [Q(by("sum", ["reason"], pending), legend="{{reason}}")], stack=True, w=6,
                     legend_calcs=("lastNotNull", "max")),
        c.timeseries("Oldest pending pod", "Age of the oldest pending accelerator pod, by scheduler and "
                     "namespace.", SECONDS,
                     [Q(by("max", ["scheduler", C.NAMESPACE], oldest), legend="{{scheduler}} {{k8s_namespace_name}}")],
                     w=6, legend_calcs=("lastNotNull", "max")),
    ])

    recent = Row("Recent decisions and collector health", [
        c.table("Decisions in the selected range",
                "Placement outcomes by scheduler in the selected range. Single recent placements are the "
                "exemplar points of the latency panels (each with its trace_id).",
                [Q(by("sum", ["scheduler", "outcome"], f"increase({decisions}[$__range])"), title="Decisions",
                   decimals=0)],
                labels=["scheduler", "outcome"], w=8, h=7, sort_by="Decisions"),
        c.stat("Pods blocked by fragmentation", "Pending accelerator pods whose request fits the cluster's "
               "total free capacity but no single node.", COUNT,
               f"max({sel(C.BLOCKED)}) or vector(0)", w=4, h=7,
               thresholds=c.steps((None, "green"), (1, "orange")), color_mode="background",
               links=[c.dashboard_link(c.FRAGMENTATION_UID)]),
        c.stat("Collector synced", "1 once the collector finished its initial list of every followed kind "
               "(or read its replay).", COUNT, f"min({sel(C.SYNCED)})", w=4, h=7,
               mappings=[c.value_mapping([(0, "not synced", "red"), (1, "synced", "green")])],
               thresholds=c.steps((None, "red"), (1, "green")), color_mode="background"),
        c.timeseries("Collector decode errors", "Inputs the collector skipped or decoded partially, per second, "
                     "by kind (unknown_reason_code, orphan_event...); 0 when there are none.", PER_SECOND,
                     [Q(f'{by("sum", ["error_type"], f"rate({sel(C.DECODE_ERRORS)}[$__rate_interval])")}'
                        " or on () vector(0)", legend="{{error_type}}")], w=8, h=7, legend_calcs=("max",)),
    ])

    return c.dashboard(UID, "Every placement decision of accelerator pods: outcomes, rejections by reason "
                       "code, phase latencies with exemplar trace links, each pending pod with its primary reason "
                       "and trace link, recent decisions, and the collector's health.",
                       [outcomes, rejected, latency, waiting, recent])
