"""Answer "why" for one pod: a short, plain explanation of its placement.

``explain(decision, usage, now)`` turns a :class:`PlacementDecision` and the
cluster's per-device usage (``DecisionEngine.device_usage()``) into a few
sentences, e.g.::

    ml/ranker-2 is pending for 11m 40s. 0 of 4 nodes fit. 3 nodes: every GPU
    lacks memory (needs 20 GiB per GPU; the largest free is 16.4 GiB on
    gpu-node-a GPU 1). 1 node: not enough nvidia.com/gpu. Trace 7d4bf9c2….

The numbers in it come from the decision (reasons, counts, requests) and
from HAMi's own accounting (node register annotations minus the allocation
annotations of pods bound there), so they are the numbers the scheduler saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler_events.model import PlacementDecision, Rejection

GIB = 1024**3

#: reason code -> short phrase (what the node or its devices lacked)
PHRASES = {
    "CardInsufficientMemory": "{dev}s lack free memory",
    "CardInsufficientCore": "{dev}s lack free compute",
    "CardTypeMismatch": "{dev} type mismatch",
    "CardUuidMismatch": "{dev} UUID not allowed by the pod's use/nouse-gpuuuid",
    "CardNotHealth": "{dev}s unhealthy",
    "CardCordoned": "{dev}s cordoned (hami.io/device-cordon)",
    "CardTimeSlicingExhausted": "every {dev} already runs its maximum number of tasks",
    "CardComputeUnitsExhausted": "every {dev}'s compute is fully allocated",
    "ExclusiveDeviceAllocateConflict": "no idle {dev} for an exclusive request",
    "NumaNotFit": "no {dev}s on one NUMA node",
    "ResourceQuotaNotFit": "namespace ResourceQuota would be exceeded",
    "CardMigTopologyInfeasible": "no free MIG placement for the profile",
    "CardNotFoundCustomFilterRule": "rejected by the vendor's custom filter",
    "ModeNotFit": "device mode mismatch",
    "AllocatedCardsInsufficientRequest": "too few {dev}s fit",
    "NodeInsufficientDevice": "fewer {dev}s than requested",
    "NodeUnregistered": "device plugin not registered with HAMi",
    "NodeUsageUnavailable": "HAMi could not read the node's usage",
    "NodeUnfitPod": "HAMi found no fitting device (older HAMi gives no detail)",
    "insufficient_resource": "not enough {detail}",
    "too_many_pods": "too many pods",
    "untolerated_taint": "untolerated taint {{{detail}}}",
    "node_affinity": "node affinity/selector does not match",
    "node_name": "not the requested node",
    "node_unschedulable": "node cordoned (unschedulable)",
    "pod_affinity": "pod affinity rules not met",
    "pod_anti_affinity": "pod anti-affinity rules not met",
    "topology_spread": "topology spread constraints not met",
    "volume_binding": "no persistent volume to bind",
    "volume_node_affinity": "volume node affinity conflict",
    "volume_storage": "not enough free storage",
    "volume_limits": "too many volumes",
    "volume_zone": "no volume in the zone",
    "dra_cannot_allocate": "resource claims cannot be allocated",
    "dra_claim_unavailable": "resource claim not available on the node",
    "prefilter": "{detail}",
    "binding_failed": "binding failed",
    "gang_unschedulable": "gang (PodGroup) cannot be scheduled together",
    "scheduler_error": "scheduler error",
    "other": "{detail}",
}

_KIND_NAMES = {"nvidia": "GPU", "amd": "GPU", "huawei": "NPU", "hygon": "DCU", "cambricon": "MLU",
               "kunlunxin": "XPU", "metax": "GPU", "iluvatar": "GPU", "moorethreads": "GPU", "enflame": "GCU"}


@dataclass(slots=True)
class Explanation:
    """``text``: the plain explanation; ``facts``: the numbers behind it
    (largest free memory in bytes, where, durations in seconds...)."""

    text: str
    facts: dict[str, Any] = field(default_factory=dict)


def human_duration(seconds: float) -> str:
    """``42s``, ``11m 40s``, ``3h 5m``, ``2d 4h``."""
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def human_bytes(n: float) -> str:
    """Binary units with one decimal: ``16.4 GiB``, ``512 MiB``."""
    if n >= GIB:
        v = n / GIB
        return f"{v:.0f} GiB" if abs(v - round(v)) < 0.05 else f"{v:.1f} GiB"
    return f"{n / 1024**2:.0f} MiB"


def _largest_free(usage: Any, nodes: set[str] | None, what: str):
    if hasattr(usage, "largest_free"):  # the engine: cached per node
        return usage.largest_free(nodes, what)
    best = None
    for uuid, u in usage.items():
        if nodes and u["node"] not in nodes:
            continue
        dev = u["device"]
        if what == "memory":
            if dev.memory_bytes is None:
                continue
            free = max(0, dev.memory_bytes - u["memory_allocated"])
        else:
            free = max(0.0, (dev.core_ratio or 1.0) - u["cores_allocated"])
        if best is None or free > best[0]:
            best = (free, u["node"], dev.index, uuid)
    return best


def _phrase(r: Rejection, dev: str) -> str:
    template = PHRASES.get(r.code, "{detail}")
    detail = r.detail or r.raw or r.code
    return template.format(dev=dev, detail=detail)


def explain(d: PlacementDecision, usage: Any = None, now: float | None = None) -> Explanation:
    """Explain one decision.  ``usage``: the :class:`DecisionEngine` (its
    cached ``largest_free``), or a ``device_usage()`` dict, or None offline;
    ``now``: Unix seconds (defaults to the decision's last update)."""
    usage = usage or {}
    now = now if now is not None else d.updated
    facts: dict[str, Any] = {"outcome": d.outcome, "trace_id": d.trace_id}
    req = d.requests[0] if d.requests else None
    dev = _KIND_NAMES.get(req.vendor, "device") if req else "device"
    who = f"{d.namespace}/{d.name}"
    parts: list[str] = []
    if d.outcome == "pending":
        waited = now - d.created if d.created else None
        facts["pending_seconds"] = waited
        parts.append(f"{who} is pending" + (f" for {human_duration(waited)}" if waited is not None else "") + ".")
        if d.attempt:
            parts.append(f"{d.attempt} scheduling attempt{'s' if d.attempt != 1 else ''} failed"
                         + (f" ({d.reporter})." if d.reporter else "."))
        if d.nodes_total is not None:
            counted = sum(r.nodes for r in d.rejections
                          if r.code not in ("preemption_not_helpful", "no_preemption_victims"))
            several = " (a node can give several reasons)" if counted > d.nodes_total else ""
            parts.append(f"{d.nodes_fit or 0} of {d.nodes_total} nodes fit{several}.")
        for r in d.rejections:
            if r.code in ("preemption_not_helpful", "no_preemption_victims"):
                continue
            text = f"{r.nodes} node{'s' if r.nodes != 1 else ''}: {_phrase(r, dev)}"
            extra = _detail(r, d, usage, dev, facts)
            if extra:
                text += f" ({extra})"
            parts.append(text + ".")
        if not d.rejections and d.message:
            parts.append(f"Scheduler says: {d.message}")
        if not d.rejections and not d.message:
            parts.append("No scheduler has reported on it yet.")
    elif d.outcome == "placed":
        parts.append(f"{who} was placed on {d.node}")
        if d.devices:
            devs = ", ".join(_device_text(a) for a in d.devices)
            parts[-1] += f" ({devs})"
        parts[-1] += "."
        timings = []
        if d.created and d.bound:
            timings.append(f"bound {human_duration(d.bound - d.created)} after creation")
            facts["created_to_bound_seconds"] = d.bound - d.created
        if d.running and d.created:
            timings.append(f"running after {human_duration(d.running - d.created)}")
        if timings:
            parts.append("It was " + ", ".join(timings) + ".")
        if d.attempt > 1:
            parts.append(f"It took {d.attempt} attempts.")
    elif d.outcome == "failed":
        reason = "the device plugin failed to allocate its devices (hami.io/bind-phase=failed)" \
            if d.primary_reason == "AllocateFailed" else (d.primary_reason or "unknown")
        parts.append(f"{who} failed to start on {d.node or 'its node'}: {reason}.")
    else:
        parts.append(f"{who} was deleted while pending"
                     + (f" after {human_duration((d.finished or now) - d.created)}" if d.created else "") + ".")
        for r in d.rejections[:2]:
            parts.append(f"Last reason: {r.nodes} node{'s' if r.nodes != 1 else ''}: {_phrase(r, dev)}.")
    parts.append(f"Trace {d.trace_id}.")
    return Explanation(" ".join(parts), facts)


def _device_text(a) -> str:
    bits = [a.uuid]
    if a.memory_bytes:
        bits.append(human_bytes(a.memory_bytes))
    if a.core_ratio:
        bits.append(f"{a.core_ratio:.0%} cores")
    return " ".join(bits)


def _detail(r: Rejection, d: PlacementDecision, usage, dev: str, facts: dict[str, Any]) -> str:
    req = d.requests[0] if d.requests else None
    nodes = set(r.node_names) or None
    if r.code == "CardInsufficientMemory" and req is not None:
        need = req.memory_bytes
        if not need and req.core_ratio is None and req.memory_ratio is None:
            return f"needs a whole {dev}"
        best = _largest_free(usage, nodes, "memory")
        out = f"needs {human_bytes(need)} per {dev}" if need else f"needs memory on each {dev}"
        if best is not None:
            free, node, index, uuid = best
            facts.update(largest_free_memory_bytes=free, largest_free_node=node, largest_free_device=uuid)
            where = f"{node} {dev} {index if index is not None else uuid}"
            if need and free >= need:
                # that GPU has the memory but failed on another reason (HAMi counts one reason per GPU)
                out += f"; the {dev}s with that much free memory, such as {where}, fail on another reason"
            else:
                out += f"; the largest free is {human_bytes(free)} on {where}"
        return out
    if r.code == "CardInsufficientCore" and req is not None:
        best = _largest_free(usage, nodes, "cores")
        out = f"needs {req.core_ratio:.0%} of a {dev}" if req.core_ratio else ""
        if best is not None:
            free, node, index, uuid = best
            facts.update(largest_free_core_ratio=free, largest_free_node=node, largest_free_device=uuid)
            where = f"{node} {dev} {index if index is not None else uuid}"
            if req.core_ratio and free >= req.core_ratio:
                out += f"; the {dev}s with that much free compute, such as {where}, fail on another reason"
            else:
                out += f"; the largest free is {free:.0%} on {where}"
        return out.lstrip("; ")
    if r.code == "CardTypeMismatch":
        want = d.policies.get("nvidia.com/use-gputype")
        avoid = d.policies.get("nvidia.com/nouse-gputype")
        return f"wants {want}" if want else (f"avoids {avoid}" if avoid else "")
    if r.node_names:
        return ", ".join(r.node_names[:5]) + (" …" if len(r.node_names) > 5 else "")
    return ""
