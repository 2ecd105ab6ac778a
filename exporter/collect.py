"""Collection runtime: one background loop per source, a snapshot store,
and the prometheus_client custom collector that serves the latest data.

Data flows one way: a source's blocking ``collect()`` runs in a worker
thread on its own interval and timeout; its :class:`~exporter.model.Snapshot`
replaces that source's previous one in the :class:`SnapshotStore`; a scrape
renders (and caches) the families from the store.  Nothing on the scrape
path calls NVML or reads a file.

A source is any object with ``name`` (str), ``start()``, ``collect() ->
Snapshot`` and ``close()``.  ``start()`` failing marks the source down and is
retried on the next cycle; ``collect()`` raising is counted as
``error_type="exception"``; a cycle longer than the timeout is counted as
``timeout`` and the late result is still taken when it arrives, but no new
cycle starts while one is running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from accelscope.logs import RateLimiter, event
from exporter.model import Snapshot
from exporter.render import RenderOptions, SourceStats, render_families


class Source(Protocol):
    name: str

    def start(self) -> None: ...

    def collect(self) -> Snapshot: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class SourceConfig:
    """A source with its loop settings: ``interval`` and ``timeout`` in seconds."""

    source: Any
    interval: float = 10.0
    timeout: float = 8.0


class SnapshotStore:
    """Latest snapshot and statistics per source; thread-safe.

    ``version`` increases on every change, so renderers can cache.
    """

    def __init__(self, clock: Callable[[], float] = time.time,
                 limiter: RateLimiter | None = None, attributor: Any | None = None) -> None:
        self._lock = threading.Lock()
        #: kubelet PodResources attribution, applied when the store is read (a gone pod's
        #: labels disappear at the next render, not at the source's next cycle)
        self._attributor = attributor
        if attributor is not None:
            attributor.subscribe(self.touch)
        self._snapshots: dict[str, Snapshot] = {}
        self._stats: dict[str, SourceStats] = {}
        self.version = 0
        self._clock = clock
        self._limiter = limiter or RateLimiter()

    def stats(self, source: str) -> SourceStats:
        with self._lock:
            st = self._stats.get(source)
            if st is None:
                st = self._stats[source] = SourceStats(source)
            return st

    def record(self, source: str, snap: Snapshot | None, duration: float, *,
               error: str | None = None, detail: str = "") -> None:
        """Store one cycle's result.

        ``snap``: the new snapshot, or ``None`` when the cycle failed as a
        whole (the previous snapshot is kept).  ``error``: a source-level
        failure reason (``start``, ``exception``, ``timeout``).  Problems in
        the snapshot are counted by kind and logged (rate-limited).
        """
        st = self.stats(source)
        with self._lock:
            st.observe(duration)
            if error is not None:
                st.success = False
                st.errors[error] = st.errors.get(error, 0) + 1
            if snap is not None:
                self._snapshots[source] = snap
                for p in snap.problems:
                    st.errors[p.kind] = st.errors.get(p.kind, 0) + 1
                st.clamped += sum(1 for s in snap.slices if s.clamped)
                if error is None:
                    st.success = True
                    st.last_success = snap.timestamp
            self.version += 1
        if error is not None:
            self._log(source, error, detail)
        if snap is not None:
            for p in snap.problems:
                self._log(source, p.kind, p.detail)

    def _log(self, source: str, kind: str, detail: str) -> None:
        ok, suppressed = self._limiter.allow(f"{source}:{kind}:{detail[:80]}")
        if ok:
            event("collect_problem", logging.WARNING, source=source, error_type=kind, detail=detail,
                  suppressed_since_last=suppressed)

    def touch(self) -> None:
        """Mark the data changed (attribution moved) so renders refresh."""
        with self._lock:
            self.version += 1

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            snaps = list(self._snapshots.values())
        a = self._attributor
        return [a.apply(s) for s in snaps] if a is not None else snaps

    def all_stats(self) -> list[SourceStats]:
        with self._lock:
            out = [self._stats[k] for k in sorted(self._stats)]
        return out + ([self._attributor.stats] if self._attributor is not None else [])

    def ready(self) -> bool:
        """True once every registered source finished at least one cycle."""
        with self._lock:
            return bool(self._stats) and all(s.duration_count > 0 for s in self._stats.values())


class StoreCollector(Collector):
    """prometheus_client custom collector over a :class:`SnapshotStore`.

    Yields freshly built metric families each time it is collected (so a
    removed device disappears at once); no global mutable gauges.
    """

    def __init__(self, store: SnapshotStore, opts: RenderOptions) -> None:
        self.store = store
        self.opts = opts

    def collect(self) -> Iterable[Metric]:
        return render_families(self.store.snapshots(), self.store.all_stats(), self.opts)


async def run_source_loop(cfg: SourceConfig, store: SnapshotStore, stop: asyncio.Event,
                          clock: Callable[[], float] = time.monotonic) -> None:
    """Run one source until ``stop`` is set: start it, then collect every
    ``cfg.interval`` seconds in a worker thread with ``cfg.timeout``.
    Never raises (except CancelledError)."""
    src = cfg.source
    name = src.name
    store.stats(name)
    started = False
    pending: asyncio.Future | None = None
    while not stop.is_set():
        t0 = clock()
        if not started:
            try:
                await asyncio.to_thread(src.start)
                started = True
                event("source_started", source=name)
            except Exception as exc:  # noqa: BLE001 - any start failure is reported, then retried
                store.record(name, None, clock() - t0, error="start", detail=f"{type(exc).__name__}: {exc}")
        if started:
            if pending is None:
                pending = asyncio.ensure_future(asyncio.to_thread(src.collect))
            try:
                snap = await asyncio.wait_for(asyncio.shield(pending), cfg.timeout)
                pending = None
                store.record(name, snap, clock() - t0)
            except asyncio.TimeoutError:
                store.record(name, None, clock() - t0, error="timeout",
                             detail=f"collection took longer than {cfg.timeout}s")
            except Exception as exc:  # noqa: BLE001 - one source's failure never stops the loop
                pending = None
                store.record(name, None, clock() - t0, error="exception", detail=f"{type(exc).__name__}: {exc}")
        elapsed = clock() - t0
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, cfg.interval - elapsed))
        except asyncio.TimeoutError:
            pass
    if pending is not None:
        pending.cancel()
    try:
        await asyncio.to_thread(src.close)
    except Exception as exc:  # noqa: BLE001
        event("source_close_failed", logging.WARNING, source=name, detail=str(exc))


def collect_once(sources: Iterable[Any], store: SnapshotStore,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """Start, collect and record each source once, synchronously (tests,
    ``--once`` and benchmarks)."""
    for src in sources:
        t0 = clock()
        try:
            src.start()
            snap = src.collect()
        except Exception as exc:  # noqa: BLE001
            store.record(src.name, None, clock() - t0, error="exception", detail=f"{type(exc).__name__}: {exc}")
            continue
        store.record(src.name, snap, clock() - t0)
