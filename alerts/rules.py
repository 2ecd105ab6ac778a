"""accelscope's Prometheus rules as Python data.

Recording rules (``level:metric:operations``, kubernetes-mixin style) for the
expressions that are reused or expensive, and the alerts, each with its
runbook entry.  Every metric name comes from a schema module
(``exporter/schema.py``, ``scheduler_events/schema.py``); every selector,
threshold and duration from :class:`alerts.config.AlertConfig`.

``alerts/generate.py`` renders :func:`groups` into the plain rule file, the
PrometheusRule manifest and ``docs/runbooks.md``.

Conventions (monitoring-mixins style guide): CamelCase names sharing the
``Accel`` prefix; ``severity`` critical (page), warning (work queue) or info
(context, routed nowhere by default); a static ``summary`` that is the same
for every rule of one alert; a templated ``description``; ``runbook_url``
built from ``AlertConfig.runbook_url_base`` and the lower-cased name; a
``for`` on every alert.  Alerts stay quiet until they matter: ``for``
clauses, minimum-size guards (free GPUs, attempts, blocked pods), and
aggregations that drop the workload labels, so a pod coming or going does not
restart an alert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from alerts.config import DEFAULT, SEVERITIES, AlertConfig
from exporter import schema as X
from scheduler_events import schema as C

# ---------------------------------------------------------------- data model


@dataclass(frozen=True)
class Runbook:
    """One ``docs/runbooks.md`` section: what the alert means, what it costs,
    how to diagnose it (dashboards, ``accelscope`` commands) and what to do."""

    meaning: str
    impact: str
    diagnosis: tuple[str, ...]
    mitigation: tuple[str, ...]


@dataclass(frozen=True)
class Record:
    record: str
    expr: str
    #: why the rule exists (rendered in docs, not in the YAML)
    why: str = ""


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    expr: str
    for_: str
    summary: str
    description: str
    runbook: Runbook | None = None


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Record | Alert, ...]
    interval: str | None = None


@dataclass
class _Ctx:
    cfg: AlertConfig


# ---------------------------------------------------------------- helpers


def _sel(name: str, *matchers: str) -> str:
    """``name{m1, m2}`` (``name`` alone without matchers)."""
    ms = [m for m in matchers if m]
    return f"{name}{{{', '.join(ms)}}}" if ms else name


def _m(label: str, op: str, value: str) -> str:
    """One label matcher: ``label<op>"value"``."""
    return f'{label}{op}"{value}"'


def _by(cfg: AlertConfig, *labels: str) -> str:
    """``by (cluster, ...)``: the cluster label first, then ``labels``."""
    return f"by ({', '.join((cfg.cluster_label,) + labels)})"


def _t(text: str, **values: object) -> str:
    """Fill ``<<key>>`` placeholders (braces are left alone for Go templates)."""
    for k, v in values.items():
        text = text.replace(f"<<{k}>>", str(v))
    if "<<" in text:
        raise ValueError(f"unfilled placeholder in {text!r}")
    return text


_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(d: str) -> float:
    """``"1h30m"`` -> 5400.0."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"([0-9]+)(ms|[smhdwy])", d))


def human_duration(d: str) -> str:
    """``"15m"`` -> ``"15 minutes"``, ``"6h"`` -> ``"6 hours"`` (for static text)."""
    s = duration_seconds(d)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size and s % size == 0:
            n = int(s // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{s:g} seconds"


_REF_RE = re.compile(r"@([XC])\.([A-Z_]+)")


def resolve_metric_refs(text: str) -> str:
    """Replace ``@X.STATUS`` / ``@C.PENDING`` in runbook prose with the metric
    names of ``exporter.schema`` (X) and ``scheduler_events.schema`` (C), so
    prose never retypes a metric name."""
    def sub(m: re.Match) -> str:
        return getattr(X if m.group(1) == "X" else C, m.group(2)).name
    return _REF_RE.sub(sub, text)


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _regex(values: tuple[str, ...]) -> str:
    return "|".join(re.escape(v) for v in values)


# ---------------------------------------------------------------- recording rules

def _frag_records(ctx: _Ctx) -> Group:
    cfg = ctx.cfg
    c = cfg.collector_selector
    cl = cfg.cluster_label
    rules = (
        Record(
            f"{cl}:accel_fragmentation:ratio",
            f"max {_by(cfg)} ({_sel(C.FRAG_RATE.name, c)})",
            "One value per cluster: the collector's FGD rate, deduplicated over collector replicas."),
        Record(
            f"{cl}:accel_free_gpus:sum",
            f"max {_by(cfg)} (\n  sum without ({C.MODEL}) ({_sel(C.FREE_GPUS.name, c)})\n)",
            "Free capacity over all models (whole-GPU units): the fragmentation alerts' size guard."),
        Record(
            f"{cl}:accel_fragmented_gpus:sum",
            f"max {_by(cfg)} (\n  sum without ({C.MODEL}) ({_sel(C.FRAG_GPUS.name, c)})\n)",
            "F_N(M) over all models: free capacity the workload cannot use, in GPUs."),
        Record(
            f"{cl}:{C.PENDING.name}:sum",
            f"max {_by(cfg)} (\n  sum without ({C.SCHEDULER}, {C.NAMESPACE}, {C.REASON}) "
            f"({_sel(C.PENDING.name, c)})\n)",
            "Pending accelerator pods in the cluster: the demand guard of the critical fragmentation alert."),
    )
    return Group("accelscope.rules.fragmentation", rules, cfg.group_interval)


def _placement_records(ctx: _Ctx) -> Group:
    cfg = ctx.cfg
    c = cfg.collector_selector
    w = cfg.placement_window
    attempts = f"{C.SCHEDULER}_result:accel_placement_attempts:sum_rate{w}"
    decisions = f"{C.SCHEDULER}_{C.OUTCOME}:accel_placement_decisions:sum_rate{w}"
    ratio = f"{C.SCHEDULER}:accel_placement_failures:ratio_rate{w}"
    by_s = _by(cfg, C.SCHEDULER)
    unsched = f"sum {by_s} ({_sel(attempts, _m('result', '=', 'unschedulable'))})"
    failed = f"sum {by_s} ({_sel(decisions, _m(C.OUTCOME, '=', 'failed'))})"
    rules = (
        Record(attempts,
               f"sum {_by(cfg, C.SCHEDULER, 'result')} (rate({_sel(C.ATTEMPTS.name, c)}[{w}]))",
               "Scheduling attempts per second by scheduler and result."),
        Record(decisions,
               f"sum {_by(cfg, C.SCHEDULER, C.OUTCOME)} (rate({_sel(C.DECISIONS.name, c)}[{w}]))",
               "Placement outcomes per second by scheduler."),
        Record(ratio,
               f"(\n    (\n      {unsched}\n      +\n      {failed}\n    )\n"
               f"  or\n    {unsched}\n  or\n    {failed}\n)\n"
               f"/ on ({cfg.cluster_label}, {C.SCHEDULER})\nsum {by_s} ({attempts})",
               "Share of attempts that failed: unschedulable attempts plus device allocation failures "
               "after binding, over all attempts (either part may be absent)."),
    )
    return Group("accelscope.rules.placement", rules, cfg.group_interval)


# ---------------------------------------------------------------- alerts

_FRAG_RUNBOOK = Runbook(
    meaning="A large share of the cluster's free accelerator capacity is in pieces that the pods the cluster "
            "actually runs cannot use: the FGD fragmentation rate (`@C.FRAG_RATE`, F_N(M) "
            "over free GPUs, Weng et al. ATC'23) is above the threshold while enough GPUs are free for the "
            "rate to matter. The warning needs only that; the critical level also needs accelerator pods to "
            "be pending.",
    impact="Pods wait although the cluster has free GPUs in total; the free capacity is paid for and unused. "
           "At the critical level, pods are pending right now.",
    diagnosis=(
        "Open the **Fragmentation** dashboard: the fragmentation rate over time, the most fragmented nodes "
        "(`@C.NODE_FRAG`), the largest placeable shapes and the pods blocked by fragmentation.",
        "Run `accelscope fragmentation report` (or `--from dump.json` offline) for the most fragmented nodes, "
        "the shapes that no longer fit, and how many GPUs an FGD repack of movable pods would recover.",
        "Open **Placement decisions** for the pending pods and their primary reason; "
        "`accelscope explain NAMESPACE/POD` tells why one pod does not fit.",
        "Check `@C.WORKLOAD`: the rate is measured against the observed shape mix; a mix "
        "skewed by a burst of unusual pods moves it.",
    ),
    mitigation=(
        "Let the scheduler pack: use HAMi's `binpack` node and GPU policies (or a FGD-like scorer) instead "
        "of `spread` for small shares.",
        "Drain and reschedule movable pods from the most fragmented nodes (the repack estimate in the "
        "report says what it recovers).",
        "If the shape mix changed for good, reconsider MIG profiles or HAMi `deviceSplitCount` on some nodes.",
    ),
)


def _fragmentation_alerts(ctx: _Ctx) -> Group:
    cfg = ctx.cfg
    c = cfg.collector_selector
    cl = cfg.cluster_label
    rate = f"{cl}:accel_fragmentation:ratio"
    free = f"{cl}:accel_free_gpus:sum"
    pending = f"{cl}:{C.PENDING.name}:sum"
    summary = "Free accelerator capacity is fragmented."
    warn = Alert(
        "AccelFragmentationHigh", "warning",
        f"{rate} > {cfg.fragmentation_warning_ratio:g}\n"
        f"and on ({cl})\n{free} >= {cfg.fragmentation_min_free_gpus:g}",
        cfg.alert_for(cfg.fragmentation_warning_for), summary,
        _t("{{ $value | humanizePercentage }} of the free accelerator capacity cannot be used by the "
           "cluster's workload mix (FGD fragmentation rate above <<thr>>, with at least <<free>> GPUs free).",
           thr=_pct(cfg.fragmentation_warning_ratio), free=f"{cfg.fragmentation_min_free_gpus:g}"),
        _FRAG_RUNBOOK)
    crit_expr = (f"{rate} > {cfg.fragmentation_critical_ratio:g}\n"
                 f"and on ({cl})\n{free} >= {cfg.fragmentation_min_free_gpus:g}")
    crit_desc = ("{{ $value | humanizePercentage }} of the free accelerator capacity cannot be used by the "
                 "cluster's workload mix (FGD fragmentation rate above <<thr>>, with at least <<free>> GPUs free)")
    if cfg.fragmentation_critical_requires_pending:
        crit_expr += f"\nand on ({cl})\n{pending} > 0"
        crit_desc += " while accelerator pods are pending."
    else:
        crit_desc += "."
    crit = Alert(
        "AccelFragmentationHigh", "critical", crit_expr,
        cfg.alert_for(cfg.fragmentation_critical_for), summary,
        _t(crit_desc, thr=_pct(cfg.fragmentation_critical_ratio), free=f"{cfg.fragmentation_min_free_gpus:g}"))
    blocked = Alert(
        "AccelPodsBlockedByFragmentation", "warning",
        f"max {_by(cfg)} ({_sel(C.BLOCKED.name, c)}) >= {cfg.blocked_pods_min}",
        cfg.alert_for(cfg.blocked_pods_for),
        "Pending accelerator pods are blocked by fragmentation.",
        _t("{{ $value | printf \"%.0f\" }} pending accelerator pods request less than the cluster's total free "
           "capacity but fit on no single node, for more than <<for>>.",
           **{"for": human_duration(cfg.blocked_pods_for)}),
        Runbook(
            meaning="Pods are pending although their request is smaller than the free accelerator capacity of "
                    "the whole cluster: the capacity is spread over nodes so that no single node can take them "
                    "(`@C.BLOCKED`).",
            impact="Those workloads do not start although the cluster has room for them in total.",
            diagnosis=(
                "Open the **Fragmentation** dashboard (pods blocked by fragmentation, largest placeable "
                "shapes, per-node fragmentation).",
                "Run `accelscope fragmentation report`: it lists the blocked pods, the nodes holding the "
                "scattered capacity and the repack estimate.",
                "Run `accelscope explain NAMESPACE/POD` for a blocked pod: it shows per node why it did not "
                "fit (e.g. GPUs lack free memory, the largest free share and where it is).",
                "Check **Placement decisions** for the pods' rejection reasons over time.",
            ),
            mitigation=(
                "Move smaller movable pods to consolidate capacity on one node (drain or evict by priority), "
                "or let descheduler-style rebalancing do it.",
                "Switch the scheduler's node/GPU policy to binpack for shared GPUs.",
                "If the pod can be split (fewer GPUs per pod, smaller memory per GPU), it will fit now.",
            )))
    stranded = Alert(
        "AccelStrandedCapacity", "warning",
        f"max {_by(cfg, 'reason')} ({_sel(C.STRANDED.name, c)}) >= {cfg.stranded_gpus_min:g}",
        cfg.alert_for(cfg.stranded_for),
        "Free accelerators are stranded on nodes without CPU, memory or pod slots.",
        _t("{{ $value | printf \"%.1f\" }} free GPUs sit on nodes whose {{ $labels.reason }} is exhausted, so no "
           "accelerator pod can use them (for more than <<for>>).", **{"for": human_duration(cfg.stranded_for)}),
        Runbook(
            meaning="Accelerators are free on nodes where another resource is used up: allocatable CPU, memory "
                    "or pod slots minus the requests of bound pods leaves nothing for a new pod "
                    "(`@C.STRANDED`, by `reason`).",
            impact="The GPUs are paid for but unusable until the other resource frees up; pending accelerator "
                   "pods may wait while these GPUs are idle.",
            diagnosis=(
                "Open the **Fragmentation** dashboard (stranded devices by reason) and **Node and device** for "
                "the nodes concerned.",
                "Run `accelscope fragmentation report`: its stranded section names the nodes, the free GPUs "
                "and the exhausted resource.",
                "Look for CPU-only or memory-heavy pods scheduled onto GPU nodes (`kubectl describe node`).",
            ),
            mitigation=(
                "Keep CPU-only workloads off GPU nodes (taints on GPU nodes, tolerations only on accelerator "
                "pods).",
                "Right-size the CPU/memory requests of accelerator pods to the node's CPU/memory per GPU.",
                "Raise the node's `maxPods` if pod slots are the limit.",
            )))
    return Group("accelscope-fragmentation", (warn, crit, blocked, stranded), cfg.group_interval)


def _placement_alerts(ctx: _Ctx) -> Group:
    cfg = ctx.cfg
    c = cfg.collector_selector
    cl = cfg.cluster_label
    w = cfg.placement_window
    pending = Alert(
        "AccelPodPendingTooLong", "warning",
        f"max {_by(cfg, C.SCHEDULER, C.NAMESPACE)} ({_sel(C.OLDEST_PENDING.name, c)}) "
        f"> {cfg.pending_too_long_seconds}",
        cfg.alert_for(cfg.pending_for),
        "An accelerator pod has been pending for too long.",
        "The oldest pending accelerator pod in namespace {{ $labels.k8s_namespace_name }} (scheduler "
        "{{ $labels.scheduler }}) has been waiting for {{ $value | humanizeDuration }}.",
        Runbook(
            meaning=_t("An accelerator pod has been waiting to be placed for more than <<thr>> "
                       "(`@C.OLDEST_PENDING`, per scheduler and namespace).",
                       thr=human_duration(f"{cfg.pending_too_long_seconds}s")),
            impact="A workload does not start; jobs miss their deadlines, replicas are missing.",
            diagnosis=(
                "Open **Placement decisions**: the pending-pods table gives each pod's primary reason and a "
                "link to its placement trace.",
                "Run `accelscope explain NAMESPACE/POD`: which nodes were considered, why each was rejected "
                "(per device and reason code), and the largest free share.",
                "If the reason is memory or cores on shared GPUs with free capacity elsewhere, check the "
                "**Fragmentation** dashboard and `accelscope fragmentation report`.",
                "Check **Fleet overview** for allocated vs free capacity of the requested model.",
            ),
            mitigation=(
                "Capacity: free or add devices of the requested model.",
                "Fragmentation: consolidate (see AccelFragmentationHigh).",
                "Constraints: fix taints/tolerations, node affinity, the GPU type annotation or an impossible "
                "request (more memory per GPU than any device has).",
            )))
    ratio = f"{C.SCHEDULER}:accel_placement_failures:ratio_rate{w}"
    attempts = f"{C.SCHEDULER}_result:accel_placement_attempts:sum_rate{w}"
    failures = Alert(
        "AccelPlacementFailuresHigh", "warning",
        f"{ratio} > {cfg.placement_failure_ratio:g}\n"
        f"and on ({cl}, {C.SCHEDULER})\n"
        f"(sum {_by(cfg, C.SCHEDULER)} ({attempts}) * {duration_seconds(w):g} >= {cfg.placement_min_attempts})",
        cfg.alert_for(cfg.placement_failures_for),
        "Many accelerator placement attempts fail.",
        _t("{{ $value | humanizePercentage }} of the accelerator placement attempts of scheduler "
           "{{ $labels.scheduler }} failed (unschedulable, or device allocation failed after binding) over "
           "the last <<w>>.", w=human_duration(w)),
        Runbook(
            meaning=_t("More than <<thr>> of the scheduling attempts of accelerator pods by one scheduler "
                       "failed over <<w>> (unschedulable attempts plus device allocation failures after binding, "
                       "over all attempts), with at least <<n>> attempts in the window.",
                       thr=_pct(cfg.placement_failure_ratio), w=human_duration(w), n=cfg.placement_min_attempts),
            impact="Many pods are not being placed, or are placed and then fail to get their devices; "
                   "capacity problems or a broken device plugin affect several workloads.",
            diagnosis=(
                "Open **Placement decisions**: outcomes over time, rejections by reason code and by node.",
                "A single dominant reason (e.g. `CardInsufficientMemory`, `insufficient_resource`) points at "
                "capacity or fragmentation; `AllocateFailed` outcomes point at the device plugin on the bound "
                "node.",
                "Run `accelscope explain NAMESPACE/POD` on a few failing pods.",
                "Check the **Fragmentation** dashboard and `accelscope fragmentation report` if free capacity "
                "exists.",
            ),
            mitigation=(
                "Capacity or fragmentation: see AccelPodPendingTooLong and AccelFragmentationHigh.",
                "Allocation failures: check the device plugin and HAMi handshake on the bound nodes (see "
                "AccelNodeNotRegistered), restart the plugin, cordon the node if it persists.",
            )))
    return Group("accelscope-placement", (pending, failures), cfg.group_interval)


def _device_alerts(ctx: _Ctx) -> Group:
    cfg = ctx.cfg
    e = cfg.exporter_selector
    dev_by = _by(cfg, X.NODE, X.HW_ID, X.HW_NAME, X.HW_VENDOR, X.HW_MODEL, "hw_state")
    summary = "An accelerator is unhealthy or lost."
    desc = ("Accelerator {{ $labels.hw_name }} ({{ $labels.hw_model }}, {{ $labels.hw_id }}) on node "
            "{{ $labels.k8s_node_name }} reports state {{ $labels.hw_state }}.")
    unhealthy_rb = Runbook(
        meaning="The device exporter reports an accelerator as `failed` (including a device the driver lost, "
                "e.g. fallen off the bus), `degraded` or `predicted_failure` (`@X.STATUS`).",
        impact="Pods on a failed device crash or hang and new pods may still be placed on it until the device "
               "plugin marks it unhealthy; a degraded device runs slower or is about to fail.",
        diagnosis=(
            "Open **Node and device** for the node: state, errors (XID, ECC), temperature, power and the "
            "slices and tenants on the device.",
            "Look for AccelXidErrors on the same device, and at `nvidia-smi -q` / the vendor tool on the node.",
            "Check whether the scheduler still sees the device as healthy (`@C.DEVICE_HEALTHY`) "
            "in **Fleet overview**; `accelscope explain NAMESPACE/POD` shows which devices a pod holds.",
        ),
        mitigation=(
            "Cordon the node (or mark the device unhealthy in the device plugin), drain the pods using the "
            "device, and reset the GPU or reboot the node.",
            "For `predicted_failure` / pending row remaps: schedule a reset in a maintenance window.",
            "Replace hardware that fails again after a reset.",
        ))
    failed = Alert(
        "AccelDeviceUnhealthy", cfg.device_failed_severity,
        f"max {dev_by} ({_sel(X.STATUS.name, e, _m('hw_state', '=', 'failed'))}) == 1",
        cfg.alert_for(cfg.device_failed_for), summary, desc, unhealthy_rb)
    degraded = Alert(
        "AccelDeviceUnhealthy", "warning",
        f"max {dev_by} ({_sel(X.STATUS.name, e, _m('hw_state', '=~', 'degraded|predicted_failure'))}) == 1",
        cfg.alert_for(cfg.device_degraded_for), summary, desc)
    xids = []
    xid_by_labels = (X.NODE, X.HW_ID, X.HW_NAME, "accel_xid_code")
    w = cfg.xid_window
    for severity, op in (("warning", "=~"), ("info", "!~")):
        ser = _sel(X.ERRORS.name, e, 'error_type="xid"', f'accel_xid_code{op}"{_regex(cfg.xid_critical_codes)}"')
        inner_by = _by(cfg, "job", "instance", *xid_by_labels)
        expr = (
            f"(\n  sum {_by(cfg, *xid_by_labels)} (\n    increase({ser}[{w}])\n  ) > 0\n)\n"
            f"or\n"
            f"(\n  sum {_by(cfg, *xid_by_labels)} (\n"
            f"    (\n      sum {inner_by} ({ser})\n      unless\n      sum {inner_by} ({ser} offset {w})\n    )\n"
            f"    and on (job, instance)\n    ({_sel('up', e)} offset {w} == 1)\n"
            f"  ) > 0\n)"
        )
        kind = "hardware or driver" if severity == "warning" else "other"
        xids.append(Alert(
            "AccelXidErrors", severity, expr, cfg.alert_for(cfg.xid_for),
            "An accelerator reported XID errors.",
            _t("{{ $value | printf \"%.0f\" }} XID {{ $labels.accel_xid_code }} errors (<<kind>>) on "
               "accelerator {{ $labels.hw_name }} ({{ $labels.hw_id }}) of node {{ $labels.k8s_node_name }} "
               "in the last <<w>>.", kind=kind, w=human_duration(w)),
            Runbook(
                meaning=_t("The NVIDIA driver reported XID events for a device (`@X.ERRORS{error_type="
                           "\"xid\"}` increased, or a new XID code appeared within <<w>>). Codes in "
                           "`xid_critical_codes` (<<codes>>) mean hardware, memory or driver trouble and warn; "
                           "other codes (13, 31, 43: usually application faults) are info.",
                           w=human_duration(w), codes=", ".join(cfg.xid_critical_codes)),
                impact="The process that hit the error usually dies; repeated hardware XIDs precede a device "
                       "failure (row remap pending, ECC, fallen off the bus).",
                diagnosis=(
                    "Open **Node and device** for the node: errors by type and XID code, the slices and "
                    "tenants on the device at that time (**Tenants** for their usage).",
                    "Read the kernel log on the node (`dmesg | grep -i xid`) and NVIDIA's XID catalog for the "
                    "code.",
                    "Check AccelDeviceUnhealthy for the same device; `accelscope explain NAMESPACE/POD` for a "
                    "pod that failed on it.",
                ),
                mitigation=(
                    "Application XIDs (13, 31, 43): hand to the workload owner.",
                    "Hardware XIDs: drain the device's pods, reset the GPU (`nvidia-smi -r`) or reboot; "
                    "replace it if errors recur.",
                )) if severity == "warning" else None))
    return Group("accelscope-devices", (failed, degraded, *xids), cfg.group_interval)


def _slice_alerts(ctx: _Ctx) -> Group:
    cfg = ctx.cfg
    e = cfg.exporter_selector
    slice_by = _by(cfg, X.NODE, X.NAMESPACE, X.POD, X.CONTAINER, X.HW_PARENT, X.HW_ID, "accel_slice_type")
    near = Alert(
        "AccelSliceMemoryNearLimit", cfg.slice_memory_near_limit_severity,
        f"max {slice_by} (\n  {_sel(X.SLICE_MEMORY_USAGE.name, e)}\n  /\n"
        f"  ({_sel(X.SLICE_MEMORY_LIMIT.name, e)} > 0)\n) > {cfg.slice_memory_near_limit_ratio:g}",
        cfg.alert_for(cfg.slice_memory_near_limit_for),
        "An accelerator slice is close to its own memory limit.",
        "{{ $labels.accel_slice_type }} slice {{ $labels.hw_id }} of {{ $labels.k8s_namespace_name }}/"
        "{{ $labels.k8s_pod_name }} (container {{ $labels.k8s_container_name }}) on node "
        "{{ $labels.k8s_node_name }} uses {{ $value | humanizePercentage }} of the slice's memory limit.",
        Runbook(
            meaning=_t("The memory used inside a slice (MIG instance, HAMi vGPU, vNPU) is above <<thr>> of the "
                       "slice's own limit (`@X.SLICE_MEMORY_USAGE / @X.SLICE_MEMORY_LIMIT`), "
                       "not of the physical device, for <<for>>.",
                       thr=_pct(cfg.slice_memory_near_limit_ratio),
                       **{"for": human_duration(cfg.slice_memory_near_limit_for)}),
            impact="The next allocation in the container fails with an out-of-memory error (HAMi-core enforces "
                   "the limit in software; MIG in hardware). Frameworks with caching allocators (PyTorch, "
                   "TensorFlow) hold most of their limit on purpose, hence info by default.",
            diagnosis=(
                "Open **Tenants**: used vs limit per slice for the namespace and pod, near-limit and over-limit "
                "slices.",
                "Open **Node and device** for the parent device (`hw_parent`) to see the other slices on it.",
                "`accelscope explain NAMESPACE/POD` shows the devices and memory the pod was given.",
            ),
            mitigation=(
                "Ask the workload owner to raise the pod's memory request (`nvidia.com/gpumem`, a larger MIG "
                "profile) or lower its batch size.",
                "For caching allocators the alert is expected; silence it for that namespace if it is noise.",
            )))
    util = _sel(X.SLICE_UTILIZATION.name, e, f'{X.POD}!=""')
    mem = _sel(X.SLICE_MEMORY_USAGE.name, e, f'{X.POD}!=""')
    hours = f"{cfg.idle_slice_hours}h"
    idle = Alert(
        "AccelSliceAllocatedIdle", "warning",
        f"max {slice_by} (\n  avg_over_time({util}[{cfg.idle_slice_smoothing}])\n) <= {cfg.idle_slice_utilization:g}\n"
        f"and\nmax {slice_by} (\n  {mem}\n) > {cfg.idle_slice_min_memory_bytes}",
        cfg.alert_for(hours),
        "An allocated accelerator slice has been idle for hours.",
        _t("{{ $labels.accel_slice_type }} slice {{ $labels.hw_id }} of {{ $labels.k8s_namespace_name }}/"
           "{{ $labels.k8s_pod_name }} on node {{ $labels.k8s_node_name }} holds device memory but its compute "
           "utilization has averaged {{ $value | humanizePercentage }} for more than <<h>>.",
           h=human_duration(hours)),
        Runbook(
            meaning=_t("A pod holds a slice (MIG instance, vGPU share) and device memory in it, but the slice's "
                       "compute utilization (`@X.SLICE_UTILIZATION`, averaged over <<s>>) has stayed at "
                       "or below <<u>> for <<h>>.",
                       s=human_duration(cfg.idle_slice_smoothing), u=_pct(cfg.idle_slice_utilization),
                       h=human_duration(hours)),
            impact="The allocation blocks other tenants from the capacity while doing nothing (a forgotten "
                   "notebook, a hung job, a server without traffic).",
            diagnosis=(
                "Open **Tenants**: allocated-but-idle slices by namespace and pod, with used vs limit.",
                "Open **Node and device** for the parent device (`hw_parent`) and the other tenants on it.",
                "`accelscope explain NAMESPACE/POD` shows when the pod was placed and what it holds.",
            ),
            mitigation=(
                "Contact the owner; scale the workload to zero or delete the pod if it is abandoned.",
                "Set idle culling for notebooks; give inference servers an autoscaler that scales to zero.",
            )))
    return Group("accelscope-slices", (near, idle), cfg.group_interval)


def _node_alerts(ctx: _Ctx) -> Group:
    cfg = ctx.cfg
    c = cfg.collector_selector
    ignore = f'{C.VENDOR}!~"{_regex(cfg.handshake_ignore_vendors)}"' if cfg.handshake_ignore_vendors else ""
    hs_by = _by(cfg, C.NODE, C.VENDOR, "state")
    live = _sel(C.HANDSHAKE.name, c, 'state=~"requesting|reported"', ignore)
    deleted = _sel(C.HANDSHAKE.name, c, 'state="deleted"', ignore)
    alert = Alert(
        "AccelNodeNotRegistered", "warning",
        f"(\n  time() - max {hs_by} ({live})\n) > {cfg.handshake_stale_seconds}\n"
        f"or\n(\n  time() - max {hs_by} ({deleted})\n)",
        cfg.alert_for(cfg.handshake_for),
        "A node's accelerators are not registered with the HAMi scheduler.",
        "The HAMi handshake of node {{ $labels.k8s_node_name }} ({{ $labels.hw_vendor }}) has been in state "
        "{{ $labels.state }} for {{ $value | humanizeDuration }}; the scheduler may have dropped the node's "
        "devices.",
        Runbook(
            meaning=_t("The HAMi handshake annotation of a node (`@C.HANDSHAKE`) says "
                       "`requesting` (the scheduler asked, the device plugin has not answered) or has not changed "
                       "for more than <<thr>>, or says `deleted` (HAMi <= v2.4). HAMi drops a node's devices when "
                       "the handshake stays `requesting` for 60 s while the node's allocatable count is 0.",
                       thr=human_duration(f"{cfg.handshake_stale_seconds}s")),
            impact="The scheduler no longer places pods on the node's accelerators: its capacity disappears "
                   "and pods stay pending.",
            diagnosis=(
                "Open **Fleet overview** (devices by node and health) and **Node and device** for the node.",
                "Check the device plugin pod on the node (`kubectl -n <hami namespace> logs` of the "
                "device-plugin DaemonSet pod) and the node's allocatable accelerator resources.",
                "Pending pods on that node's model: **Placement decisions** and "
                "`accelscope explain NAMESPACE/POD`.",
                "HAMi >= v2.8's NVIDIA device plugin no longer answers the handshake, so the annotation stays "
                "`Requesting_...` on healthy nodes; on such clusters set `handshake_ignore_vendors: [nvidia]` "
                "in the alert config.",
            ),
            mitigation=(
                "Restart the device plugin pod on the node; check kubelet's device plugin socket "
                "(`/var/lib/kubelet/device-plugins/`).",
                "If the node is being retired, remove the annotation or the node.",
            )))
    return Group("accelscope-nodes", (alert,), cfg.group_interval)


def _agent_alerts(ctx: _Ctx) -> Group:
    cfg = ctx.cfg
    e = cfg.exporter_selector
    c = cfg.collector_selector
    exp_down = Alert(
        "AccelExporterDown", "warning", f"{_sel('up', e)} == 0",
        cfg.alert_for(cfg.exporter_down_for),
        "An accelscope device exporter is unreachable.",
        _t("Prometheus has failed to scrape exporter {{ $labels.instance }} (job {{ $labels.job }}) for <<for>>; "
           "the device metrics of its node are missing.", **{"for": human_duration(cfg.exporter_down_for)}),
        Runbook(
            meaning="Prometheus cannot scrape a device exporter target (`up == 0`).",
            impact="No device, slice or health metrics for that node: device alerts cannot fire for it and the "
                   "dashboards show gaps.",
            diagnosis=(
                "The **Fleet overview** dashboard shows which nodes report devices.",
                "Check the exporter pod on the node (`kubectl get pods -o wide`, its logs, `/healthz`), the "
                "target's last error on Prometheus' Targets page, and network policies.",
                "In the pod, `accelscope exporter --once` collects once, prints the metrics and reports "
                "startup or source errors.",
            ),
            mitigation=(
                "Restart the exporter pod; fix its configuration (a startup error is one log line).",
                "If the node is gone, the target disappears by itself.",
            )))
    src_fail = Alert(
        "AccelExporterSourceFailing", "warning",
        f"{_sel(X.COLLECT_SUCCESS.name, e)} == 0",
        cfg.alert_for(cfg.exporter_source_failing_for),
        "An accelscope exporter source fails to collect.",
        _t("Source {{ $labels.accel_source }} of exporter {{ $labels.instance }} has failed its collection "
           "cycles for <<for>>.", **{"for": human_duration(cfg.exporter_source_failing_for)}),
        Runbook(
            meaning="An exporter is up but one of its sources (NVML, HAMi-core shared regions, a vendor tool, "
                    "replay) keeps failing (`@X.COLLECT_SUCCESS == 0`).",
            impact="The metrics of that source are missing or stale for the node; other sources are intact.",
            diagnosis=(
                "Check `@X.COLLECT_ERRORS` by `error_type` for the instance (**Node and "
                "device** dashboard) and the exporter's log lines.",
                "For NVML: driver loaded, device nodes mounted, `nvidia-smi` works in the pod. For HAMi-core: "
                "the shared-region directory is mounted.",
                "`accelscope exporter --once --source SOURCE` in the pod runs the failing source alone and "
                "prints what it collects.",
            ),
            mitigation=(
                "Fix the mount or driver and restart the exporter pod.",
                "Disable the source on nodes that do not have it.",
            )))
    col_down = Alert(
        "AccelCollectorDown", "warning", f"{_sel('up', c)} == 0",
        cfg.alert_for(cfg.collector_down_for),
        "The accelscope scheduler-event collector is unreachable.",
        _t("Prometheus has failed to scrape collector {{ $labels.instance }} (job {{ $labels.job }}) for "
           "<<for>>; placement and fragmentation metrics are missing.",
           **{"for": human_duration(cfg.collector_down_for)}),
        Runbook(
            meaning="Prometheus cannot scrape the scheduler-event collector (`up == 0`).",
            impact="No placement, pending, allocation or fragmentation metrics: the fragmentation, pending and "
                   "placement alerts cannot fire, and `accelscope explain` has no live source.",
            diagnosis=(
                "Check the collector pod, its logs and `/readyz`; the **Placement decisions** and "
                "**Fragmentation** dashboards go blank.",
                "Meanwhile `accelscope explain NAMESPACE/POD --from dump.json` and `accelscope fragmentation "
                "report --from dump.json` work offline from `kubectl get pods,nodes,events -A -o json`.",
            ),
            mitigation=(
                "Restart the collector; check its RBAC (list/watch pods, nodes, events) and its history volume.",
            )))
    events = _sel(C.OBJECT_EVENTS.name, c)
    # "no events for w" needs w of history: a collector that just started (or
    # replayed a recording at once) has flat counters but no verdict yet.
    w = cfg.collector_no_events_window
    stale = Alert(
        "AccelCollectorWatchStale", "warning",
        f"max {_by(cfg, 'job', 'instance')} ({_sel(C.SYNCED.name, c)}) == 0\n"
        f"or\n(\n  sum {_by(cfg, 'job', 'instance')} (increase({events}[{w}])) == 0\n"
        f"  and\n  sum {_by(cfg, 'job', 'instance')} ({events} offset {w})\n)",
        cfg.alert_for(cfg.collector_stale_for),
        "The accelscope collector's view of the cluster is stale.",
        _t("Collector {{ $labels.instance }} has not finished its initial list of the Kubernetes API, or has "
           "processed no object events in the last <<w>>; its placement metrics are stale.",
           w=human_duration(cfg.collector_no_events_window)),
        Runbook(
            meaning=_t("The collector is scraped but its Kubernetes view is stale: its initial list has not "
                       "finished (`@C.SYNCED == 0`), or it has processed no object events for "
                       "<<w>> (`@C.OBJECT_EVENTS`; Node status updates alone arrive every "
                       "few minutes). The second condition needs <<w>> of history, so a collector that just "
                       "started is not judged yet.", w=human_duration(cfg.collector_no_events_window)),
            impact="Pending pods, placements and fragmentation reflect an old state; alerts built on them are "
                   "wrong or silent.",
            diagnosis=(
                "Check `@C.WATCH` (relists, watch restarts, errors by reason) and the "
                "collector's log; the **Placement decisions** dashboard shows the event rate.",
                "Check API server reachability and the collector's RBAC.",
                "Compare `accelscope explain NAMESPACE/POD` (the collector's view) with "
                "`accelscope explain NAMESPACE/POD --from dump.json` on a fresh `kubectl get pods,nodes,events "
                "-A -o json` dump; a difference confirms the stale view.",
                "A collector replaying a recording (`--source replay`) stops seeing events when the recording "
                "ends; that is expected.",
            ),
            mitigation=(
                "Restart the collector; fix RBAC or network policy to the API server.",
            )))
    return Group("accelscope-agents", (exp_down, src_fail, col_down, stale), cfg.group_interval)


# ---------------------------------------------------------------- assembly


def groups(cfg: AlertConfig = DEFAULT) -> list[Group]:
    """Every rule group: recording groups first, then the alert groups."""
    ctx = _Ctx(cfg)
    out = [_frag_records(ctx), _placement_records(ctx),
           _fragmentation_alerts(ctx), _placement_alerts(ctx), _device_alerts(ctx), _slice_alerts(ctx),
           _node_alerts(ctx), _agent_alerts(ctx)]
    _check(out)
    return out


def alerts(cfg: AlertConfig = DEFAULT) -> list[Alert]:
    return [r for g in groups(cfg) for r in g.rules if isinstance(r, Alert)]


def records(cfg: AlertConfig = DEFAULT) -> list[Record]:
    return [r for g in groups(cfg) for r in g.rules if isinstance(r, Record)]


def runbooks(cfg: AlertConfig = DEFAULT) -> dict[str, Runbook]:
    """Alert name -> its runbook (one per name, in rule order)."""
    out: dict[str, Runbook] = {}
    for a in alerts(cfg):
        if a.runbook is not None and a.name not in out:
            rb = a.runbook
            out[a.name] = Runbook(resolve_metric_refs(rb.meaning), resolve_metric_refs(rb.impact),
                                  tuple(resolve_metric_refs(t) for t in rb.diagnosis),
                                  tuple(resolve_metric_refs(t) for t in rb.mitigation))
    return out


def _check(gs: list[Group]) -> None:
    seen: dict[str, str] = {}
    named = set()
    for g in gs:
        for r in g.rules:
            if isinstance(r, Alert):
                if r.severity not in SEVERITIES:
                    raise ValueError(f"{r.name}: severity {r.severity!r}")
                if seen.setdefault(r.name, r.summary) != r.summary:
                    raise ValueError(f"{r.name}: rules of one alert must share the summary")
                if r.runbook is not None:
                    named.add(r.name)
    missing = sorted(set(seen) - named)
    if missing:
        raise ValueError(f"alerts without a runbook: {missing}")


def to_prometheus(gs: list[Group], cfg: AlertConfig = DEFAULT) -> list[dict]:
    """The groups as Prometheus rule-file data (``groups:`` list items)."""
    out = []
    for g in gs:
        rules = []
        for r in g.rules:
            if isinstance(r, Record):
                rules.append({"record": r.record, "expr": r.expr})
            else:
                rules.append({
                    "alert": r.name,
                    "expr": r.expr,
                    "for": r.for_,
                    "labels": {"severity": r.severity},
                    "annotations": {
                        "summary": r.summary,
                        "description": r.description,
                        "runbook_url": cfg.runbook_url(r.name),
                    },
                })
        group: dict = {"name": g.name}
        if g.interval:
            group["interval"] = g.interval
        group["rules"] = rules
        out.append(group)
    return out
