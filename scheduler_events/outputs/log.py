"""One structured log line per placement decision.

For each placement the collector writes one JSON object when it is placed,
fails or is deleted while pending, and one when a pending pod's reasons
change (not on every retry).  ``event`` is ``placement``; ``message`` is the
plain explanation (``scheduler_events.explain``); the fields carry the pod,
node, outcome, reasons, attempts and ``trace_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from accelscope.logs import event
from scheduler_events.decisions import Change
from scheduler_events.explain import explain

_LOGGED = ("attempt_failed", "placed", "failed", "deleted")


class DecisionLogger:
    """``usage``: returns what :func:`explain` takes for device facts (the
    engine itself: its per-node cache keeps this cheap);
    ``emit``: where lines go (default: the ``accelscope`` JSON logger)."""

    def __init__(self, usage: Callable[[], dict[str, dict[str, Any]]],
                 emit: Callable[..., None] | None = None, max_tracked: int = 200_000) -> None:
        self.usage = usage
        self.emit = emit or (lambda name, level, **f: event(name, level, **f))
        self._last: dict[str, tuple] = {}
        self._max = max_tracked

    def on_change(self, change: Change) -> None:
        d = change.decision
        if change.kind not in _LOGGED:
            return
        outcome = change.kind if change.kind in ("placed", "failed") else d.outcome
        key = (outcome, tuple((r.code, r.nodes) for r in d.rejections), d.node)
        if change.kind == "attempt_failed" and self._last.get(d.uid) == key:
            return
        self._last[d.uid] = key
        if d.outcome != "pending":
            self._last.pop(d.uid, None)
        if len(self._last) > self._max:
            self._last.clear()
        x = explain(d, self.usage(), change.time)
        level = logging.WARNING if outcome == "failed" else logging.INFO
        self.emit("placement", level, message=x.text, outcome=outcome, change=change.kind,
                  namespace=d.namespace, pod=d.name, pod_uid=d.uid, scheduler=d.scheduler, node=d.node,
                  attempts=d.attempt, primary_reason=d.primary_reason,
                  reasons=[{"code": r.code, "source": r.source, "nodes": r.nodes, "devices": r.devices}
                           for r in d.rejections],
                  devices=[a.uuid for a in d.devices], trace_id=d.trace_id, decision_time=change.time)
