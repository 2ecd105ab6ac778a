"""HistoryStore: decisions that outlive Events (issue 3), on the HAMi dump fixture."""

from __future__ import annotations

import copy
import json
import logging
import os
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from scheduler_events.decisions import Change, DecisionEngine
from scheduler_events.model import PlacementDecision
from scheduler_events.outputs.history import SCHEMA_VERSION, HistoryError, HistoryStore
from scheduler_events.sources.replay import ReplayStream
from scheduler_events.stream import ObjectEvent

DUMP = Path(__file__).resolve().parents[2] / "scheduler_events" / "data" / "demo-cluster-dump.json"
NOW = 1795169500.0  # the dump's "now" (latest timestamp in it)
DAY = 86400.0


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def replay(store: HistoryStore | None = None) -> tuple[DecisionEngine, dict[tuple[str, str], dict]]:
    """Feed the dump to an engine (and the store); return the engine and the
    snapshot each (uid, outcome) had when it was last recorded."""
    engine = DecisionEngine()
    expected: dict[tuple[str, str], dict] = {}
    for ev in ReplayStream(DUMP):
        for change in engine.apply(ev):
            expected[(change.decision.uid, change.decision.outcome)] = change.decision.to_dict()
            if store is not None:
                store.record(change)
    return engine, expected


def decision(uid: str, *, ns: str = "ml", name: str | None = None, outcome: str = "pending",
             updated: float = NOW, reason: str | None = None, node: str | None = None) -> PlacementDecision:
    return PlacementDecision(uid=uid, namespace=ns, name=name or uid, outcome=outcome, updated=updated,
                             primary_reason=reason, node=node, created=updated - 60)


def change(d: PlacementDecision, kind: str = "attempt_failed") -> Change:
    return Change(kind, d, d.updated)


def rows_on_disk(path: Path) -> int:
    """Row count seen by another connection (what is committed)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock):
    s = HistoryStore(":memory:", clock=clock)
    yield s
    s.close()


# ---------------------------------------------------------------- round trips
def test_dump_round_trip_exact(store: HistoryStore) -> None:
    engine, expected = replay(store)
    assert expected, "the fixture yields changes"
    stored = store.query(limit=1000)
    assert len(stored) == len(expected)
    assert {(d["uid"], d["outcome"]): d for d in stored} == expected
    for d in engine.decisions():
        if any(uid == d.uid for uid, _ in expected):
            got = store.get(d.namespace, d.name)
            assert got == [expected[(d.uid, d.outcome)]]
    # the JSON round trip keeps types (floats, None, nested lists) exactly
    ranker = store.get("ml", "ranker-2")[0]
    assert ranker["primary_reason"] == "CardInsufficientMemory"
    assert ranker["rejections"] and ranker["trace_id"] == "7d4bf9c21e3a4b5c8d6e0f1a2b3c4d5e"
    assert store.errors == {}


def test_pending_then_placed_keeps_both_snapshots(store: HistoryStore) -> None:
    engine, _ = replay(store)
    pending = store.get("ml", "ranker-2")
    assert [d["outcome"] for d in pending] == ["pending"]
    pod = next(i for i in json.loads(DUMP.read_text())["items"]
               if i["kind"] == "Pod" and i["metadata"]["name"] == "ranker-2")
    pod = copy.deepcopy(pod)
    pod["spec"]["nodeName"] = "gpu-node-c"
    changes = engine.apply(ObjectEvent("Pod", "MODIFIED", pod, received=NOW + 30))
    assert [c.kind for c in changes] == ["placed"]
    store.record_all(changes)
    history = store.get("ml", "ranker-2")
    assert [d["outcome"] for d in history] == ["placed", "pending"]  # newest first
    assert history[0] == engine.decision("ml", "ranker-2").to_dict()
    assert history[1] == pending[0]  # the pending snapshot keeps why it waited
    assert history[1]["rejections"] and history[0]["node"] == "gpu-node-c"
    # a later update of the same (uid, outcome) replaces its row, no new one
    engine.decision("ml", "ranker-2").running = NOW + 40
    store.record(Change("running", engine.decision("ml", "ranker-2"), NOW + 40))
    assert len(store.get("ml", "ranker-2")) == 2
    assert store.get("ml", "ranker-2")[0]["running"] == NOW + 40


def test_record_all_snapshots_each_decision_once(store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = PlacementDecision.to_dict
    monkeypatch.setattr(PlacementDecision, "to_dict", lambda self: calls.append(self.uid) or real(self))
    engine = DecisionEngine()
    expected = {}
    for ev in ReplayStream(DUMP):
        changes = engine.apply(ev)
        store.record_all(changes)
        expected.update({(c.decision.uid, c.decision.outcome): real(c.decision) for c in changes})
    assert len(calls) < 25  # 25 changes in the dump, several per apply
    assert {(d["uid"], d["outcome"]): d for d in store.query(limit=1000)} == expected


def test_record_snapshots_at_call_time(store: HistoryStore) -> None:
    d = decision("u1")
    store.record(change(d))
    d.outcome, d.node = "placed", "n1"  # the engine keeps mutating its decision
    assert store.get("ml", "u1")[0]["outcome"] == "pending"
    assert store.get("ml", "u1")[0]["node"] is None


def test_restart_persistence_and_wal(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "history.db"
    store = HistoryStore(path, clock=clock)
    _, expected = replay(store)
    store.flush()
    assert Path(str(path) + "-wal").exists(), "WAL journal while open"
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()
    store.close()  # idempotent

    reopened = HistoryStore(str(path), clock=clock)
    try:
        assert {(d["uid"], d["outcome"]): d for d in reopened.query(limit=1000)} == expected
        recent = reopened.load_recent(100)
        assert len(recent) == len({uid for uid, _ in expected})  # one (the latest) per pod
        assert len(reopened.load_recent(3)) == 3
        assert reopened._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        reopened.close()


def test_close_flushes_queue(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "h.db"
    with HistoryStore(path, clock=clock) as store:
        store.record(change(decision("u1")))
    assert rows_on_disk(path) == 1


# ---------------------------------------------------------------- batching
def test_writes_batched_by_time_and_count(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "h.db"
    store = HistoryStore(path, clock=clock, flush_every=5)
    try:
        store.record(change(decision("u0")))
        assert rows_on_disk(path) == 0  # queued in memory
        clock.t += 1.0
        store.record(change(decision("u1")))
        assert rows_on_disk(path) == 2  # a second of the clock passed
        for i in range(2, 6):
            store.record(change(decision(f"u{i}")))
        assert rows_on_disk(path) == 2
        store.record(change(decision("u6")))  # the 5th record since the flush
        assert rows_on_disk(path) == 7
        store.record(change(decision("u7")))
        assert len(store.query()) == 8  # a read flushes first
        assert rows_on_disk(path) == 8
    finally:
        store.close()


def test_default_batch_is_500_records(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "h.db"
    store = HistoryStore(path, clock=clock)
    try:
        for i in range(499):
            store.record(change(decision(f"u{i}")))
        assert rows_on_disk(path) == 0
        store.record(change(decision("u499")))
        assert rows_on_disk(path) == 500
    finally:
        store.close()


# ---------------------------------------------------------------- pruning
def test_prune_by_age(store: HistoryStore, clock: Clock) -> None:
    store.record(change(decision("old", updated=NOW - 8 * DAY)))
    store.record(change(decision("mid", updated=NOW - 6 * DAY)))
    store.record(change(decision("new", updated=NOW)))
    assert store.prune() == 1
    assert {d["uid"] for d in store.query()} == {"mid", "new"}
    clock.t += 2 * DAY
    assert store.prune() == 1
    assert [d["uid"] for d in store.query()] == ["new"]
    assert store.prune() == 0


def test_prune_by_rows_drops_oldest(clock: Clock) -> None:
    store = HistoryStore(":memory:", clock=clock, max_rows=3)
    try:
        for i in range(6):
            store.record(change(decision(f"u{i}", updated=NOW - 100 + i)))
        assert store.prune() == 3
        assert [d["uid"] for d in store.query()] == ["u5", "u4", "u3"]
    finally:
        store.close()


def test_prune_runs_automatically(clock: Clock) -> None:
    store = HistoryStore(":memory:", clock=clock, max_rows=10, flush_every=10, prune_every=20)
    try:
        for i in range(40):
            store.record(change(decision(f"u{i}", updated=NOW + i)))
        n = store._conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
        assert n == 10  # pruned after the 20th and 40th records
        assert store.query(limit=1)[0]["uid"] == "u39"
    finally:
        store.close()


def test_prune_on_open(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with HistoryStore(path, clock=Clock(NOW)) as store:
        store.record(change(decision("u1", updated=NOW)))
    with HistoryStore(path, clock=Clock(NOW + 8 * DAY)) as store:
        assert store.query() == []


def test_undated_decision_uses_store_clock(store: HistoryStore, clock: Clock) -> None:
    store.record(change(decision("u0", updated=0.0)))
    assert store.query(since=NOW)[0]["updated"] == 0.0  # the doc is kept as it was
    assert store.prune() == 0


# ---------------------------------------------------------------- queries
def _fill(store: HistoryStore) -> None:
    rows = [
        decision("a", ns="ml", outcome="pending", reason="CardInsufficientMemory", updated=NOW - 50),
        decision("a", ns="ml", outcome="placed", node="n1", updated=NOW - 40),
        decision("b", ns="ml", outcome="pending", reason="CardInsufficientCore", updated=NOW - 30),
        decision("c", ns="research", outcome="pending", reason="insufficient_resource", updated=NOW - 20),
        decision("d", ns="research", outcome="failed", reason="AllocateFailed", node="n2", updated=NOW - 10),
        decision("e", ns="ml", outcome="deleted", reason="CardInsufficientMemory", updated=NOW),
    ]
    for d in rows:
        store.record(change(d))


def ids(docs: list[dict]) -> list[tuple[str, str]]:
    return [(d["uid"], d["outcome"]) for d in docs]


def test_query_filters(store: HistoryStore) -> None:
    _fill(store)
    assert ids(store.query()) == [("e", "deleted"), ("d", "failed"), ("c", "pending"), ("b", "pending"),
                                  ("a", "placed"), ("a", "pending")]
    assert ids(store.query(namespace="research")) == [("d", "failed"), ("c", "pending")]
    assert ids(store.query(outcome="pending")) == [("c", "pending"), ("b", "pending"), ("a", "pending")]
    assert ids(store.query(reason="CardInsufficientMemory")) == [("e", "deleted"), ("a", "pending")]
    assert ids(store.query(node="n1")) == [("a", "placed")]
    assert ids(store.query(since=NOW - 20)) == [("e", "deleted"), ("d", "failed"), ("c", "pending")]
    assert ids(store.query(namespace="ml", outcome="pending", reason="CardInsufficientCore")) == [("b", "pending")]
    assert ids(store.query(limit=2)) == [("e", "deleted"), ("d", "failed")]
    assert store.query(limit=0) == []
    assert store.query(namespace="nope") == []
    assert ids(store.get("ml", "a")) == [("a", "placed"), ("a", "pending")]
    assert store.get("ml", "missing") == []
    assert [d["uid"] for d in store.load_recent(10)] == ["e", "d", "c", "b", "a"]
    assert store.load_recent(10)[-1]["outcome"] == "placed"


def test_query_plans_use_indexes(store: HistoryStore) -> None:
    plan = lambda sql: " ".join(r[-1] for r in store._conn.execute("EXPLAIN QUERY PLAN " + sql))  # noqa: E731
    assert "decisions_ns_name_updated" in plan("SELECT doc FROM decisions WHERE namespace='a' AND name='b' "
                                               "ORDER BY updated DESC")
    assert "decisions_outcome_updated" in plan("SELECT doc FROM decisions WHERE outcome='pending' "
                                               "ORDER BY updated DESC")
    assert "decisions_primary_reason" in plan("SELECT doc FROM decisions WHERE primary_reason='x'")


# ---------------------------------------------------------------- bad databases
def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with HistoryStore(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryError, match=f"{path}.*schema version {SCHEMA_VERSION + 1}"):
        HistoryStore(path)


def test_foreign_database_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryError, match="not an accelscope history database"):
        HistoryStore(path)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"\x00garbage, not SQLite\xff" * 300)
    with pytest.raises(HistoryError, match=f"{path}.*not a usable SQLite file"):
        HistoryStore(path)


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc as an unwritable directory")
def test_unwritable_system_dir() -> None:
    with pytest.raises(HistoryError, match="/proc/accelscope-history.db"):
        HistoryStore("/proc/accelscope-history.db")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(HistoryError, match=str(ro / "h.db")):
            HistoryStore(ro / "h.db")
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes read-only files")
def test_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    HistoryStore(path).close()
    path.chmod(0o444)
    with pytest.raises(HistoryError, match=f"{path}.*cannot write"):
        HistoryStore(path)


def test_missing_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "h.db"
    with pytest.raises(HistoryError, match=str(path)):
        HistoryStore(path)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(HistoryError, match="cannot open"):
        HistoryStore(afile / "h.db")


def test_bad_limits() -> None:
    with pytest.raises(ValueError):
        HistoryStore(":memory:", max_rows=0)
    with pytest.raises(ValueError):
        HistoryStore(":memory:", max_age_seconds=0)


# ---------------------------------------------------------------- failures after construction
def test_write_failure_counted_logged_once(store: HistoryStore, caplog: pytest.LogCaptureFixture) -> None:
    store._conn.close()  # the database goes away underneath
    with caplog.at_level(logging.WARNING, logger="accelscope"):
        store.record(change(decision("u1")))
        assert store.flush() == 0
        store.record(change(decision("u2")))
        assert store.flush() == 0
        assert store.prune() == 0
    assert store.errors["write"] == 3  # the prune flushes first
    assert store.errors["prune"] == 1
    assert len([r for r in caplog.records if "write failed" in r.getMessage()]) == 1
    with pytest.raises(HistoryError, match="read failed"):
        store.get("ml", "u1")
    store.close()  # still no exception


class FlakyConnection:
    """A connection whose batch writes fail until ``broken`` is cleared."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.broken = conn, True

    def executemany(self, *args):
        if self.broken:
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.executemany(*args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_failed_batch_retried_then_bounded(clock: Clock) -> None:
    store = HistoryStore(":memory:", clock=clock, flush_every=2, max_pending=4)
    real = store._conn
    store._conn = flaky = FlakyConnection(real)
    try:
        for i in range(6):
            store.record(change(decision(f"u{i}")))  # flush attempts at 2, 4 and 6 records fail
        assert store.errors["write"] == 3
        assert store.errors["dropped"] == 2  # u0 and u1 fell out of the bounded queue
        assert not real.in_transaction
        flaky.broken = False
        assert store.flush() == 4
        assert sorted(d["uid"] for d in store.query()) == ["u2", "u3", "u4", "u5"]
    finally:
        store._conn = real
        store.close()


def test_unserialisable_decision_counted(store: HistoryStore) -> None:
    bad = decision("bad")
    bad.policies = {"x": object()}  # type: ignore[dict-item]
    store.record(change(bad))
    store.record(change(decision("good")))
    store.record("not a change")  # type: ignore[arg-type]
    assert [d["uid"] for d in store.query()] == ["good"]
    assert store.errors["serialize"] == 2


def test_record_after_close(store: HistoryStore) -> None:
    store.close()
    store.record(change(decision("u1")))
    assert store.errors["closed"] == 1
    assert store.flush() == 0 and store.prune() == 0
    with pytest.raises(HistoryError, match="closed"):
        store.query()


def test_threads_record_and_read(clock: Clock) -> None:
    store = HistoryStore(":memory:", clock=clock, flush_every=7)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(100):
                store.record(change(decision(f"t{t}-{i}", ns=f"ns{t}")))
                if i % 25 == 0:
                    store.query(namespace=f"ns{t}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert errors == [] and store.errors == {}
        assert len(store.query(limit=1000)) == 400
    finally:
        store.close()
