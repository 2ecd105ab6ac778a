"""The collector's pipeline: engine + outputs, fed from one thread.

Sources call :meth:`Pipeline.submit` from their own threads; one consumer
thread applies the events in order (:meth:`run_queue`), so the engine is
single-writer.  Readers (``/metrics``, the HTTP API) take ``lock``.
An output that raises is counted in ``output_errors`` and never stops the
pipeline.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from accelscope.logs import RateLimiter, event
from scheduler_events.decisions import Change, DecisionEngine
from scheduler_events.stream import ObjectEvent


class Output(Protocol):
    def on_change(self, change: Change) -> None: ...


class Pipeline:
    """``engine`` plus ``outputs`` (objects with ``on_change(Change)``)."""

    def __init__(self, engine: DecisionEngine, outputs: Iterable[Output] = (), *, max_queue: int = 100_000) -> None:
        self.engine = engine
        self.outputs = list(outputs)
        self.lock = threading.Lock()
        self.output_errors: collections.Counter[str] = collections.Counter()
        self._queue: queue.Queue[ObjectEvent | None] = queue.Queue(maxsize=max_queue)
        self._limiter = RateLimiter(300)
        self.processed = 0

    def feed(self, ev: ObjectEvent) -> list[Change]:
        """Apply one event now (caller's thread) and run the outputs."""
        with self.lock:
            changes = self.engine.apply(ev)
            self.processed += 1
        for c in changes:
            for out in self.outputs:
                try:
                    out.on_change(c)
                except Exception as exc:  # noqa: BLE001 - one output never blocks the others
                    name = type(out).__name__
                    self.output_errors[name] += 1
                    if self._limiter.allow(name)[0]:
                        event("output_failed", logging.WARNING, output=name, detail=f"{type(exc).__name__}: {exc}")
        return changes

    def feed_all(self, events: Iterable[ObjectEvent]) -> int:
        n = 0
        for ev in events:
            self.feed(ev)
            n += 1
        return n

    # ------------------------------------------------------------ live mode
    def submit(self, ev: ObjectEvent) -> None:
        """Queue an event from any thread (blocks when the queue is full)."""
        self._queue.put(ev)

    def run_queue(self, stop: threading.Event) -> None:
        """Consume queued events until ``stop`` is set (and the queue drained)."""
        while not (stop.is_set() and self._queue.empty()):
            try:
                ev = self._queue.get(timeout=0.2)
            except queue.Empty:
                self.tick()
                continue
            if ev is not None:
                self.feed(ev)

    def tick(self) -> None:
        """Let time-driven outputs (the tracer's delayed traces) act; call it
        from the feeding thread."""
        for out in self.outputs:
            tick = getattr(out, "tick", None)
            if tick is not None:
                try:
                    tick()
                except Exception:  # noqa: BLE001
                    self.output_errors[type(out).__name__] += 1

    def backlog(self) -> int:
        return self._queue.qsize()


class Recorder:
    """Append every received event to a JSON-lines file (the replay format)."""

    def __init__(self, path: str) -> None:
        import json

        self._json = json
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def __call__(self, ev: ObjectEvent) -> None:
        line = self._json.dumps(ev.to_json(), separators=(",", ":"))
        with self._lock:
            self._f.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._f.close()


def any_of(*callbacks: Any):
    """A callback that calls each of ``callbacks`` in order."""
    def call(ev: ObjectEvent) -> None:
        for cb in callbacks:
            cb(ev)
    return call
