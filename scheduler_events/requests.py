"""Accelerator requests of a pod, normalised per vendor resource name.

Input: a Pod dict (``spec.containers[].resources``, ``spec.initContainers``).
Output: one :class:`~scheduler_events.model.Request` per device resource
(``nvidia.com/gpu``...), with the per-device memory (bytes) and core ratio
(0..1) taken from the vendor's companion resources.

Resource names are HAMi's Helm defaults (``charts/hami/values.yaml``,
``hami-formats.md`` §3.6) plus whole-device plugins (``amd.com/gpu``, MIG
``nvidia.com/mig-<profile>``).  Memory resources are MiB
(``nvidia.com/gpumem``...), ``*-percentage`` is percent of a device, cores
are percent of a device (100 = whole).  Like kube-scheduler, the effective
count is max(sum over containers, max over init containers).  Quantities use
Kubernetes' integer forms; anything else is skipped and reported through
``errors``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from scheduler_events.model import Request

#: (regex on the resource name, role, vendor); role is count | memory | memory_pct | cores
_RULES: list[tuple[re.Pattern[str], str, str]] = [(re.compile(p), r, v) for p, r, v in [
    (r"^nvidia\.com/gpu$", "count", "nvidia"),
    (r"^nvidia\.com/mig-.+$", "count", "nvidia"),
    (r"^nvidia\.com/gpumem$", "memory", "nvidia"),
    (r"^nvidia\.com/gpumem-percentage$", "memory_pct", "nvidia"),
    (r"^nvidia\.com/gpucores$", "cores", "nvidia"),
    (r"^volcano\.sh/vgpu-number$", "count", "nvidia"),
    (r"^volcano\.sh/vgpu-memory$", "memory", "nvidia"),
    (r"^volcano\.sh/vgpu-cores$", "cores", "nvidia"),
    (r"^huawei\.com/(Ascend[0-9A-Za-z]+(?:-\d+)?)$", "count", "huawei"),
    (r"^huawei\.com/(Ascend[0-9A-Za-z]+(?:-\d+)?)-memory$", "memory", "huawei"),
    (r"^huawei\.com/(Ascend[0-9A-Za-z]+(?:-\d+)?)-core$", "cores", "huawei"),
    (r"^hygon\.com/dcunum$", "count", "hygon"),
    (r"^hygon\.com/dcumem$", "memory", "hygon"),
    (r"^hygon\.com/dcucores$", "cores", "hygon"),
    (r"^cambricon\.com/(vmlu|mlu[0-9a-z.-]*)$", "count", "cambricon"),
    (r"^cambricon\.com/mlu\.smlu\.vmemory$", "memory", "cambricon"),
    (r"^cambricon\.com/mlu\.smlu\.vcore$", "cores", "cambricon"),
    (r"^metax-tech\.com/(gpu|sgpu)$", "count", "metax"),
    (r"^metax-tech\.com/vmemory$", "memory", "metax"),
    (r"^metax-tech\.com/vcore$", "cores", "metax"),
    (r"^mthreads\.com/vgpu$", "count", "moorethreads"),
    (r"^mthreads\.com/sgpu-memory$", "memory", "moorethreads"),
    (r"^mthreads\.com/sgpu-core$", "cores", "moorethreads"),
    (r"^iluvatar\.ai/([A-Za-z0-9-]+-vgpu|vgpu)$", "count", "iluvatar"),
    (r"^iluvatar\.ai/([A-Za-z0-9-]+\.vMem|vcuda-memory)$", "memory", "iluvatar"),
    (r"^iluvatar\.ai/([A-Za-z0-9-]+\.vCore|vcuda-core)$", "cores", "iluvatar"),
    (r"^kunlunxin\.com/(xpu|vxpu)$", "count", "kunlunxin"),
    (r"^kunlunxin\.com/vxpu-memory$", "memory", "kunlunxin"),
    (r"^enflame\.com/(gcu|drs-gcu|shared-gcu|gcu-count)$", "count", "enflame"),
    (r"^enflame\.com/gcu-memory$", "memory", "enflame"),
    (r"^enflame\.com/gcu-core$", "cores", "enflame"),
    (r"^amd\.com/gpu$", "count", "amd"),
    (r"^amd\.com/gpumem$", "memory", "amd"),
    (r"^amd\.com/gpucores$", "cores", "amd"),
    (r"^aws\.amazon\.com/(neuron|neuroncore)$", "count", "aws"),
    (r"^vastaitech\.com/va$", "count", "vastai"),
    (r"^birentech\.com/gpu$", "count", "biren"),
    (r"^gpu\.intel\.com/i915$", "count", "intel"),
    (r"^gpu\.intel\.com/xe$", "count", "intel"),
]]

MIB = 1024 * 1024


def quantity(value: Any, scale: float = 1.0) -> int | None:
    """A Kubernetes quantity (``500m``, ``16Gi``, ``64``) times ``scale``,
    rounded up to an int; None when absent or malformed.  Parsing is the
    ``kubernetes`` client's ``parse_quantity`` (memoised: clusters repeat
    the same few quantities)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, int, float)):
        return _quantity(value, scale)
    return None


@functools.lru_cache(maxsize=8192)
def _quantity(value: Any, scale: float) -> int | None:
    from kubernetes.utils import parse_quantity

    from decimal import Decimal

    try:
        q = parse_quantity(value) * Decimal(repr(scale))
    except (ValueError, TypeError, ArithmeticError):
        return None
    return int(-(-q // 1)) if q >= 0 else None


def pod_cpu_memory(pod: dict[str, Any]) -> tuple[int, int]:
    """``(cpu_milli, memory_mib)`` requested by a pod: the sum over its
    containers, or the largest init container when that is more (as the
    scheduler counts them).  Malformed quantities count as 0."""
    spec = pod.get("spec") if isinstance(pod, dict) else None
    spec = spec if isinstance(spec, dict) else {}

    def req(c: Any) -> tuple[int, int]:
        res = c.get("resources") if isinstance(c, dict) else None
        r = res.get("requests") if isinstance(res, dict) else None
        if not isinstance(r, dict):
            return 0, 0
        return quantity(r.get("cpu"), 1000) or 0, quantity(r.get("memory"), 1 / MIB) or 0

    containers = spec.get("containers")
    cpu = mem = 0
    for c in containers if isinstance(containers, list) else []:
        a, b = req(c)
        cpu, mem = cpu + a, mem + b
    inits = spec.get("initContainers")
    for c in inits if isinstance(inits, list) else []:
        a, b = req(c)
        cpu, mem = max(cpu, a), max(mem, b)
    return cpu, mem


@functools.lru_cache(maxsize=4096)
def classify_resource(name: str) -> tuple[str, str] | None:
    """``(role, vendor)`` of an extended resource name, or None if it is not
    an accelerator resource.  Roles: count, memory, memory_pct, cores."""
    for rx, role, vendor in _RULES:
        if rx.match(name):
            return role, vendor
    return None


def _int_quantity(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return None


def _container_resources(c: dict[str, Any]) -> dict[str, int]:
    res = c.get("resources")
    out: dict[str, int] = {}
    if not isinstance(res, dict):
        return out
    for section in ("requests", "limits"):  # limits win: extended resources need requests == limits
        quantities = res.get(section)
        if not isinstance(quantities, dict):
            continue
        for name, q in quantities.items():
            n = _int_quantity(q)
            if n is not None and classify_resource(name):
                out[name] = n
    return out


def pod_requests(pod: dict[str, Any]) -> list[Request]:
    """The accelerator requests of a Pod dict; [] when it asks for none.

    Per-device memory comes from the memory resource (MiB -> bytes) and
    cores from the cores resource (percent -> 0..1), matched to the count
    resource of the same vendor.
    """
    spec = pod.get("spec") if isinstance(pod, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    totals: dict[str, int] = {}
    containers = spec.get("containers")
    for c in containers if isinstance(containers, list) else []:
        if isinstance(c, dict):
            for k, v in _container_resources(c).items():
                totals[k] = totals.get(k, 0) + v
    inits = spec.get("initContainers")
    for c in inits if isinstance(inits, list) else []:
        if isinstance(c, dict):
            for k, v in _container_resources(c).items():
                totals[k] = max(totals.get(k, 0), v)
    by_vendor: dict[str, dict[str, int]] = {}
    counts: list[tuple[str, str, int]] = []
    for name, n in sorted(totals.items()):
        role, vendor = classify_resource(name)  # type: ignore[misc]
        if role == "count":
            counts.append((name, vendor, n))
        else:
            by_vendor.setdefault(vendor, {})[role] = n
    out = []
    for name, vendor, n in counts:
        extra = by_vendor.get(vendor, {})
        mem = extra.get("memory")
        cores = extra.get("cores")
        pct = extra.get("memory_pct")
        if n <= 0:
            continue
        out.append(Request(
            resource=name, vendor=vendor, count=n,
            memory_bytes=mem * MIB if mem else None,
            core_ratio=min(1.0, cores / 100) if cores else None,
            memory_ratio=min(1.0, pct / 100) if pct else None,
        ))
    return out


# --------------------------------------------------------------------------- relevance

#: annotation key prefixes that mark a pod as handled by an accelerator scheduler
_RELEVANT_ANNOTATION_PREFIXES = ("hami.io/", "volcano.sh/")

#: vendor allocation / scheduling annotations written outside ``hami.io/``
#: (see docs: hami-formats §3.3, per-vendor pod allocation keys)
_VENDOR_ANNOTATION_KEYS = frozenset({
    "predicate-time",  # Ascend, bare key
    "metax-tech.com/gpu-devices-allocated",
    "metax-tech.com/predicate-time",
    "mthreads.com/gpu-index",
    "mthreads.com/predicate-node",
    "mthreads.com/predicate-time",
    "enflame.com/gcu-request-size",
    "amd.com/gpu-index",
    "amd.com/predicate-node",
    "aws.amazon.com/neuron-index",
    "aws.amazon.com/predicate-node",
    "iluvatar.ai/predicate-time",
    "nvidia.com/use-gputype",
    "nvidia.com/nouse-gputype",
})
_VENDOR_ANNOTATION_PREFIXES = (
    "huawei.com/Ascend",  # huawei.com/<commonWord>: JSON device allocation
    "enflame.com/gcu-assigned",
)
_VENDOR_ANNOTATION_SUFFIXES = ("-devices-allocated", "-devices-to-allocate")


def _is_extended_resource(name: Any) -> bool:
    # Kubernetes: native resources have no domain or a *kubernetes.io/ domain.
    if not isinstance(name, str) or "/" not in name:
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _requests_extended(resources: Any) -> bool:
    if not isinstance(resources, dict):
        return False
    for section in ("requests", "limits"):
        values = resources.get(section)
        if isinstance(values, dict) and any(_is_extended_resource(k) for k in values):
            return True
    return False


def _vendor_annotation(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    if key.startswith(_RELEVANT_ANNOTATION_PREFIXES) or key in _VENDOR_ANNOTATION_KEYS:
        return True
    if key.startswith(_VENDOR_ANNOTATION_PREFIXES):
        return True
    return "/" in key and key.endswith(_VENDOR_ANNOTATION_SUFFIXES)


def pod_is_relevant(pod: dict[str, Any]) -> bool:
    """Whether a pod (API JSON dict) concerns accelerator scheduling.

    True when any container or init container requests or limits an
    extended resource (a name with a domain, e.g. ``nvidia.com/gpu``,
    ``huawei.com/Ascend910``, ``hygon.com/dcunum``; ``*kubernetes.io/``
    names are native), or the pod-level ``spec.resources`` does; or the pod
    carries an annotation starting with ``hami.io/`` or ``volcano.sh/`` or a
    vendor allocation key (``*-devices-allocated``,
    ``*-devices-to-allocate``, ``huawei.com/Ascend…``, ``predicate-time``,
    ``enflame.com/gcu-assigned…``, …); or ``spec.schedulerName`` is set and
    not ``default-scheduler``; or ``spec.resourceClaims`` is non-empty.
    Never raises: a malformed pod is simply not relevant.
    """
    if not isinstance(pod, dict):
        return False
    spec = pod.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    for section in ("containers", "initContainers"):
        containers = spec.get(section)
        if isinstance(containers, list):
            for c in containers:
                if isinstance(c, dict) and _requests_extended(c.get("resources")):
                    return True
    if _requests_extended(spec.get("resources")):
        return True
    md = pod.get("metadata")
    annotations = md.get("annotations") if isinstance(md, dict) else None
    if isinstance(annotations, dict) and any(_vendor_annotation(k) for k in annotations):
        return True
    scheduler = spec.get("schedulerName")
    if isinstance(scheduler, str) and scheduler and scheduler != "default-scheduler":
        return True
    claims = spec.get("resourceClaims")
    return bool(claims) and isinstance(claims, list)
