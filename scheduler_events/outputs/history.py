"""Placement history that outlives Kubernetes Events (issue 3, "History that
outlives Events").

:class:`HistoryStore` keeps snapshots of :class:`~scheduler_events.model.PlacementDecision`
in an embedded SQLite database (stdlib :mod:`sqlite3`, WAL journal,
``synchronous=NORMAL``), so the API can still explain a pod after the
collector restarts, after the engine forgot it, and after its Events expired.

Rows: one per (pod UID, outcome).  While a pod is pending its ``pending`` row
is updated in place; when it reaches a terminal outcome (``placed``,
``failed``, ``deleted``) a new row is written, so a pod's history keeps the
last pending snapshot (with the reasons it waited) and the final one.  Each
row holds the decision's :meth:`~scheduler_events.model.PlacementDecision.to_dict`
as JSON text (``doc``) plus a few indexed columns for filtering.

Writes are batched: :meth:`HistoryStore.record` snapshots the decision and
queues it; the queue is committed in one transaction every second (of the
injected clock) or every 500 records, on any read, on :meth:`~HistoryStore.flush`
and on :meth:`~HistoryStore.close`.  A write failure after construction is
counted in ``errors`` and logged once per kind; it never raises into the
caller's loop.
"""

from __future__ import annotations

import collections
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scheduler_events.decisions import Change

log = logging.getLogger("accelscope")

#: the schema this code writes (``PRAGMA user_version``)
SCHEMA_VERSION = 1

_COLUMNS = ("uid", "outcome", "namespace", "name", "primary_reason", "node", "scheduler",
            "created", "updated", "finished", "trace_id", "doc")

_SCHEMA_V1 = (
    """CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL,
        outcome TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        primary_reason TEXT,
        node TEXT,
        scheduler TEXT,
        created REAL,
        updated REAL NOT NULL,
        finished REAL,
        trace_id TEXT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (uid, outcome)
    )""",
    "CREATE INDEX decisions_ns_name_updated ON decisions (namespace, name, updated)",
    "CREATE INDEX decisions_outcome_updated ON decisions (outcome, updated)",
    "CREATE INDEX decisions_primary_reason ON decisions (primary_reason)",
    # pruning by age and by count walks this one
    "CREATE INDEX decisions_updated ON decisions (updated)",
)

#: version N -> statements that take a database from N to N+1
_MIGRATIONS: dict[int, tuple[str, ...]] = {}

_UPSERT = (
    f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (uid, outcome) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("uid", "outcome"))
)

_ORDER = " ORDER BY updated DESC, id DESC"


class HistoryError(Exception):
    """The history database can't be used: it can't be opened or written,
    it is not a SQLite file, or its schema is newer or foreign.  The message
    names the path."""


class HistoryStore:
    """Decision snapshots in SQLite, bounded by age and row count.

    ``path``: the database file (created when missing; its directory must
    exist and be writable), or ``":memory:"`` for tests.
    ``max_age_seconds``: rows whose ``updated`` is older than this (against
    ``clock``) are pruned.  ``max_rows``: beyond this, the oldest rows (by
    ``updated``) are pruned.  ``clock``: Unix seconds, used for batching and
    pruning.  ``flush_interval`` (seconds of ``clock``) and ``flush_every``
    (records) bound how long a record waits in memory; ``prune_every``: a
    prune runs after the flush that follows this many records.
    ``max_pending``: snapshots kept in memory while the database refuses
    writes (the oldest beyond it are dropped and counted as ``dropped``).

    The ``updated`` column is the decision's last change: the later of its
    ``updated`` and ``finished`` times, or the store's clock when the
    decision has neither.  Reads return rows newest first (``updated``, then
    insertion order).

    ``errors`` counts problems by kind: ``write`` (a batch commit failed; the
    batch is kept for the next flush), ``prune``, ``serialize`` (a decision
    that would not encode as JSON), ``dropped`` (snapshots lost after
    repeated write failures), ``bad_row`` (a stored doc that would not
    decode; skipped), ``closed`` (a record after :meth:`close`).

    Raises :class:`HistoryError` at construction when the path is unusable;
    reads (:meth:`get`, :meth:`query`, :meth:`load_recent`) raise it when the
    database fails; writes never raise.  Thread-safe: one connection, one lock.
    Reads run on the caller's thread and take the lock, so an asyncio caller
    should run them in an executor.
    """

    def __init__(self, path: str | Path, *, max_age_seconds: float = 7 * 86400, max_rows: int = 200_000,
                 clock: Callable[[], float] = time.time, flush_interval: float = 1.0, flush_every: int = 500,
                 prune_every: int = 1000, max_pending: int = 10_000, busy_timeout: float = 2.0) -> None:
        if not max_age_seconds > 0:
            raise ValueError(f"max_age_seconds must be > 0, not {max_age_seconds!r}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, not {max_rows!r}")
        self.path = str(path)
        self.max_age_seconds = float(max_age_seconds)
        self.max_rows = int(max_rows)
        self.flush_interval = float(flush_interval)
        self.flush_every = max(1, int(flush_every))
        self.prune_every = max(1, int(prune_every))
        self.max_pending = max(self.flush_every, int(max_pending))
        self.errors: collections.Counter[str] = collections.Counter()
        self._clock = clock
        self._lock = threading.Lock()
        self._queue: dict[tuple[str, str], list[Any]] = {}
        self._since_flush = 0
        self._since_prune = 0
        self._logged: set[str] = set()
        self._closed = False
        try:
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout, check_same_thread=False,
                                         isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError(f"history database {self.path}: cannot open ({exc}); "
                               "does its directory exist and is it writable?") from exc
        try:
            self._open()
        except BaseException:
            self._conn.close()
            raise
        self._last_flush = self._clock()
        with self._lock:
            self._prune_locked()

    # ------------------------------------------------------------------ setup
    def _open(self) -> None:
        conn = self._conn
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        except sqlite3.OperationalError as exc:  # locked, I/O error...
            raise HistoryError(f"history database {self.path}: cannot open ({exc})") from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database"
            raise HistoryError(f"history database {self.path} is not a usable SQLite file ({exc}); "
                               "move it away or choose another path") from exc
        if self.path != ":memory:" and str(mode).lower() != "wal":
            log.warning("history database %s: WAL not available (journal_mode=%s)", self.path, mode)
        if version > SCHEMA_VERSION:
            raise HistoryError(f"history database {self.path} has schema version {version}, newer than the "
                               f"{SCHEMA_VERSION} this accelscope knows; upgrade accelscope or use another path")
        if version == 0 and tables:
            raise HistoryError(f"history database {self.path} is not an accelscope history database "
                               f"(it has {tables} tables and no schema version); choose another path")
        try:
            if version == 0:
                self._transaction(list(_SCHEMA_V1) + [f"PRAGMA user_version = {SCHEMA_VERSION}"])
                version = SCHEMA_VERSION
            while version < SCHEMA_VERSION:
                steps = _MIGRATIONS.get(version)
                if steps is None:
                    raise HistoryError(f"history database {self.path} has schema version {version}, "
                                       f"which can't be migrated to {SCHEMA_VERSION}; use another path")
                self._transaction(list(steps) + [f"PRAGMA user_version = {version + 1}"])
                version += 1
            # an existing file may be readable but not writable: prove a write now
            self._transaction([f"PRAGMA user_version = {SCHEMA_VERSION}"], commit=False)
        except sqlite3.Error as exc:
            raise HistoryError(f"history database {self.path}: cannot write ({exc})") from exc

    def _transaction(self, statements: list[str], *, commit: bool = True) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for s in statements:
                conn.execute(s)

        self._write(run, commit=commit)

    def _write(self, body: Callable[[sqlite3.Connection], Any], *, commit: bool = True) -> Any:
        """Run ``body`` in one write transaction; rolls back and re-raises on error."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
            conn.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        return result

    def _fail(self, kind: str, exc: BaseException | str) -> None:
        self.errors[kind] += 1
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning("history database %s: %s failed: %s (counted; logged once)", self.path, kind, exc)

    # ------------------------------------------------------------------ writes
    def record(self, change: Change) -> None:
        """Queue a snapshot of ``change.decision`` as it is now (upserted into
        its (uid, outcome) row at the next flush).  Flushes when a second of
        the clock has passed or ``flush_every`` records are queued.  Never raises."""
        try:
            row = self._snapshot(change.decision)
        except Exception as exc:  # noqa: BLE001 - the caller's loop goes on
            self._fail("serialize", exc)
            return
        self._enqueue(row)

    def record_all(self, changes: Iterable[Change]) -> None:
        """:meth:`record` each change of one ``DecisionEngine.apply`` result.
        Changes there share the decision's final state, so each distinct
        decision is snapshotted once (``to_dict`` is most of a record's cost)."""
        rows: dict[int, list[Any]] = {}
        for c in changes:
            try:
                d = c.decision
                key = id(d)
                if key not in rows:
                    rows[key] = self._snapshot(d)
                row = rows[key]
            except Exception as exc:  # noqa: BLE001
                self._fail("serialize", exc)
                continue
            self._enqueue(list(row))

    def _snapshot(self, d: Any) -> list[Any]:
        doc = d.to_dict()
        updated = max(d.updated or 0.0, d.finished or 0.0) or float(self._clock())
        return [d.uid, d.outcome, d.namespace, d.name, d.primary_reason, d.node, d.scheduler,
                d.created, updated, d.finished, doc["trace_id"], doc]

    def _enqueue(self, row: list[Any]) -> None:
        with self._lock:
            if self._closed:
                self._fail("closed", "record after close")
                return
            key = (row[0], row[1])
            self._queue.pop(key, None)
            self._queue[key] = row
            self._since_flush += 1
            self._since_prune += 1
            if self._since_flush >= self.flush_every or self._clock() - self._last_flush >= self.flush_interval:
                self._flush_locked()

    def flush(self) -> int:
        """Commit the queued snapshots in one transaction; returns how many
        rows were written (0 on failure, which is counted, not raised)."""
        with self._lock:
            if self._closed:
                return 0
            return self._flush_locked()

    def _flush_locked(self) -> int:
        self._last_flush = self._clock()
        self._since_flush = 0
        if not self._queue:
            return 0
        batch = self._queue
        self._queue = {}
        rows = []
        for key, row in list(batch.items()):
            if not isinstance(row[-1], str):
                try:
                    row[-1] = json.dumps(row[-1], separators=(",", ":"))
                except (TypeError, ValueError) as exc:
                    self._fail("serialize", exc)
                    del batch[key]
                    continue
            rows.append(row)
        try:
            self._write(lambda conn: conn.executemany(_UPSERT, rows))
        except sqlite3.Error as exc:
            self._fail("write", exc)
            # keep the batch (older than anything queued since) for the next try, bounded
            batch.update(self._queue)
            self._queue = batch
            while len(self._queue) > self.max_pending:
                self._queue.pop(next(iter(self._queue)))
                self.errors["dropped"] += 1
            return 0
        if self._since_prune >= self.prune_every:
            self._prune_locked()
        return len(rows)

    def prune(self) -> int:
        """Flush, then delete rows whose ``updated`` is older than
        ``max_age_seconds`` and then the oldest rows beyond ``max_rows``;
        returns how many rows were deleted (0 on failure, counted as ``prune``)."""
        with self._lock:
            if self._closed:
                return 0
            self._flush_locked()
            return self._prune_locked()

    def _prune_locked(self) -> int:
        self._since_prune = 0
        cutoff = float(self._clock()) - self.max_age_seconds

        def delete(conn: sqlite3.Connection) -> int:
            deleted = conn.execute("DELETE FROM decisions WHERE updated < ?", (cutoff,)).rowcount
            count = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
            if count > self.max_rows:
                deleted += conn.execute(
                    "DELETE FROM decisions WHERE id IN "
                    "(SELECT id FROM decisions ORDER BY updated, id LIMIT ?)", (count - self.max_rows,)).rowcount
            return deleted

        try:
            return self._write(delete)
        except sqlite3.Error as exc:
            self._fail("prune", exc)
            return 0

    # ------------------------------------------------------------------ reads
    def _read(self, sql: str, params: Iterable[Any]) -> list[dict[str, Any]]:
        with self._lock:
            if self._closed:
                raise HistoryError(f"history database {self.path} is closed")
            self._flush_locked()
            try:
                docs = [r[0] for r in self._conn.execute(sql, tuple(params))]
            except sqlite3.Error as exc:
                raise HistoryError(f"history database {self.path}: read failed ({exc})") from exc
            return self._decode(docs)

    def _decode(self, docs: list[str]) -> list[dict[str, Any]]:
        out = []
        for doc in docs:
            try:
                out.append(json.loads(doc))
            except (TypeError, ValueError) as exc:
                self._fail("bad_row", exc)
        return out

    def get(self, namespace: str, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """Every stored snapshot of ``namespace/name`` (all its UIDs and
        outcomes), newest first, as decision dicts (``to_dict()`` shape).
        Raises :class:`HistoryError` when the database fails."""
        return self._read("SELECT doc FROM decisions WHERE namespace = ? AND name = ?" + _ORDER + " LIMIT ?",
                          (namespace, name, max(0, int(limit))))

    def query(self, *, namespace: str | None = None, outcome: str | None = None, reason: str | None = None,
              node: str | None = None, since: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Snapshots matching every given filter, newest first, at most
        ``limit``: ``namespace``, ``outcome`` (the snapshot's outcome, so a
        placed pod's earlier ``pending`` snapshot matches ``pending``),
        ``reason`` (the ``primary_reason`` code), ``node``, ``since`` (Unix
        seconds; ``updated`` at or after it).  Raises :class:`HistoryError`
        when the database fails."""
        where, params = [], []
        for col, value in (("namespace", namespace), ("outcome", outcome), ("primary_reason", reason),
                           ("node", node)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if since is not None:
            where.append("updated >= ?")
            params.append(float(since))
        sql = "SELECT doc FROM decisions" + (" WHERE " + " AND ".join(where) if where else "") + _ORDER + " LIMIT ?"
        return self._read(sql, params + [max(0, int(limit))])

    def load_recent(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The latest snapshot of each of the ``limit`` most recently updated
        pods (by UID), newest first: what to serve on restart for pods the
        engine no longer tracks.  Raises :class:`HistoryError` when the
        database fails."""
        limit = max(0, int(limit))
        with self._lock:
            if self._closed:
                raise HistoryError(f"history database {self.path} is closed")
            self._flush_locked()
            seen: set[str] = set()
            docs: list[str] = []
            try:
                # walks the updated index newest first and stops early
                for uid, doc in self._conn.execute("SELECT uid, doc FROM decisions" + _ORDER):
                    if len(docs) >= limit:
                        break
                    if uid not in seen:
                        seen.add(uid)
                        docs.append(doc)
            except sqlite3.Error as exc:
                raise HistoryError(f"history database {self.path}: read failed ({exc})") from exc
            return self._decode(docs)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Flush what is queued and close the database (idempotent; never raises)."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._closed = True
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                self._fail("close", exc)

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
