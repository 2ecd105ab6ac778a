"""Selectors and thresholds of the alert rules, in one place.

The kubernetes-mixin ``_config`` pattern: every knob the rules use lives in
:class:`AlertConfig`, with a comment, and nothing in ``alerts/rules.py`` hard
codes a job name, threshold or duration.  Override any field with a dict::

    from alerts.config import AlertConfig
    cfg = AlertConfig.from_dict({"fragmentation_warning_ratio": 0.4,
                                 "exporter_selector": 'job="gpu-exporter"'})

Durations are Prometheus duration strings (``15m``, ``6h``).  Unknown keys are
rejected, so a typo in an override does not silently keep the default.

For an end-to-end test with real servers, ``for_override`` replaces the
``for`` of every alert (e.g. ``"10s"``) and ``group_interval`` sets each
group's evaluation interval (e.g. ``"1s"``); both are ``None`` in what ships.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping

SEVERITIES = ("critical", "warning", "info")

_DURATION_RE = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")


@dataclass(frozen=True)
class AlertConfig:
    # ------------------------------------------------------------ selectors
    #: Label matchers selecting the device exporter's targets (the DaemonSet).
    #: The regular expression also matches a Helm release prefix
    #: (``myrelease-accelscope-exporter``).
    exporter_selector: str = 'job=~"(.+-)?accelscope-exporter"'
    #: Label matchers selecting the scheduler-event collector's targets.
    collector_selector: str = 'job=~"(.+-)?accelscope-collector"'
    #: Label that tells clusters apart when one Prometheus sees several
    #: (kubernetes-mixin ``clusterLabel``); harmless when absent.
    cluster_label: str = "cluster"

    # ------------------------------------------------------------ runbooks
    #: Base of every ``runbook_url``; the lower-cased alert name is the anchor.
    runbook_url_base: str = "https://github.com/accelscope/accelscope/blob/main/docs/runbooks.md"

    # ------------------------------------------------------------ fragmentation
    #: FGD fragmentation rate (share of free capacity the workload cannot use)
    #: above which AccelFragmentationHigh warns ...
    fragmentation_warning_ratio: float = 0.3
    fragmentation_warning_for: str = "15m"
    #: ... and pages.
    fragmentation_critical_ratio: float = 0.5
    fragmentation_critical_for: str = "30m"
    #: Guard: at least this much free capacity (whole-GPU units, summed over
    #: models) must exist.  An almost-full cluster has a meaningless rate, and
    #: an empty one (no accelerators) has none.
    fragmentation_min_free_gpus: float = 2.0
    #: Guard for the critical level only: page only while accelerator pods are
    #: pending (there is demand the fragmentation hurts).
    fragmentation_critical_requires_pending: bool = True
    #: AccelPodsBlockedByFragmentation: pending pods whose request fits the
    #: cluster's total free capacity but no single node.
    blocked_pods_min: int = 1
    blocked_pods_for: str = "15m"
    #: AccelStrandedCapacity: free GPUs on nodes whose CPU, memory or pod slots
    #: are exhausted, per reason.
    stranded_gpus_min: float = 1.0
    stranded_for: str = "30m"

    # ------------------------------------------------------------ placement
    #: AccelPodPendingTooLong: age of the oldest pending accelerator pod.
    pending_too_long_seconds: int = 900
    pending_for: str = "5m"
    #: AccelPlacementFailuresHigh: (unschedulable attempts + device allocation
    #: failures) / all attempts over ``placement_window``, per scheduler ...
    placement_window: str = "15m"
    placement_failure_ratio: float = 0.5
    #: ... only with at least this many attempts in the window (a single
    #: stuck pod retrying is AccelPodPendingTooLong's business).
    placement_min_attempts: int = 20
    placement_failures_for: str = "15m"

    # ------------------------------------------------------------ devices
    #: AccelDeviceUnhealthy for hw_state="failed" (also a lost device).
    #: Lower to "warning" where a single lost device is not worth a page.
    device_failed_severity: str = "critical"
    device_failed_for: str = "5m"
    #: AccelDeviceUnhealthy for hw_state="degraded" or "predicted_failure".
    device_degraded_for: str = "15m"
    #: XID codes that indicate a hardware, driver or memory problem rather than
    #: an application bug (NVIDIA's XID catalog): 48 double-bit ECC, 61/62
    #: internal microcontroller, 63/64 row remapping, 74 NVLink, 79 fallen off
    #: the bus, 92 high single-bit ECC rate, 94/95 contained/uncontained ECC,
    #: 119/120 GSP, 140 unrecovered ECC.  These warn; other codes are info.
    xid_critical_codes: tuple[str, ...] = ("48", "61", "62", "63", "64", "74", "79", "92", "94", "95", "119",
                                           "120", "140")
    #: Window in which new XID events are looked for.
    xid_window: str = "10m"
    xid_for: str = "1m"

    # ------------------------------------------------------------ slices
    #: AccelSliceMemoryNearLimit: slice memory used / the slice's own limit.
    slice_memory_near_limit_ratio: float = 0.9
    slice_memory_near_limit_for: str = "15m"
    #: Info by default: frameworks with caching allocators (PyTorch,
    #: TensorFlow) keep most of their limit on purpose.
    slice_memory_near_limit_severity: str = "info"
    #: AccelSliceAllocatedIdle: a slice held by a pod whose compute
    #: utilization, averaged over ``idle_slice_smoothing``, stays at or below
    #: ``idle_slice_utilization`` for ``idle_slice_hours`` while it holds more
    #: than ``idle_slice_min_memory_bytes`` of memory.
    idle_slice_utilization: float = 0.01
    idle_slice_smoothing: str = "1h"
    idle_slice_hours: int = 6
    idle_slice_min_memory_bytes: int = 0

    # ------------------------------------------------------------ nodes
    #: AccelNodeNotRegistered: the HAMi handshake of a node has been
    #: ``requesting`` (scheduler asked, device plugin has not answered) or
    #: unchanged for this long, or says ``deleted``.
    handshake_stale_seconds: int = 600
    handshake_for: str = "5m"
    #: Vendors (hw_vendor values) whose handshake is ignored.  HAMi >= v2.8's
    #: NVIDIA device plugin no longer answers the handshake, so on such
    #: clusters set ``("nvidia",)``.
    handshake_ignore_vendors: tuple[str, ...] = ()

    # ------------------------------------------------------------ the agents
    exporter_down_for: str = "5m"
    exporter_source_failing_for: str = "10m"
    collector_down_for: str = "5m"
    #: AccelCollectorWatchStale: not synced, or no Kubernetes object event
    #: processed for this long (Node status updates alone arrive every 5m).
    collector_no_events_window: str = "30m"
    collector_stale_for: str = "10m"

    # ------------------------------------------------------------ testing
    #: Replace the ``for`` of every alert (end-to-end tests only).
    for_override: str | None = None
    #: Evaluation ``interval`` of every group (end-to-end tests only).
    group_interval: str | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_for") or f.name.endswith("_window") or f.name in ("idle_slice_smoothing",):
                _check_duration(f.name, value)
        for name in ("for_override", "group_interval"):
            value = getattr(self, name)
            if value is not None:
                _check_duration(name, value)
        for name in ("device_failed_severity", "slice_memory_near_limit_severity"):
            if getattr(self, name) not in SEVERITIES:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not one of {', '.join(SEVERITIES)}")
        if not 0 < self.fragmentation_warning_ratio <= self.fragmentation_critical_ratio <= 1:
            raise ValueError("need 0 < fragmentation_warning_ratio <= fragmentation_critical_ratio <= 1")
        if self.idle_slice_hours < 1:
            raise ValueError("idle_slice_hours must be >= 1")
        for code in self.xid_critical_codes:
            if not str(code).isdigit():
                raise ValueError(f"xid_critical_codes: {code!r} is not a number")

    @classmethod
    def from_dict(cls, overrides: Mapping[str, Any] | None = None) -> "AlertConfig":
        """Defaults with ``overrides`` applied; unknown keys raise ``KeyError``."""
        overrides = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise KeyError(f"unknown alert config key(s): {', '.join(unknown)}")
        for key in ("xid_critical_codes", "handshake_ignore_vendors"):
            if key in overrides:
                overrides[key] = tuple(str(v) for v in overrides[key])
        return cls(**overrides)

    def alert_for(self, value: str) -> str:
        """The ``for`` to use: ``for_override`` when set, else ``value``."""
        return self.for_override if self.for_override is not None else value

    def runbook_url(self, alert_name: str) -> str:
        return f"{self.runbook_url_base}#{alert_name.lower()}"


def _check_duration(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _DURATION_RE.fullmatch(value):
        raise ValueError(f"{name}: {value!r} is not a Prometheus duration (e.g. 15m)")


DEFAULT = AlertConfig()
