"""The HTTP surface: /metrics content negotiation and gzip, /healthz,
/readyz, caching between collections, and the source loops behind it."""

from __future__ import annotations

import asyncio
import gzip
import time

from aiohttp.test_utils import TestClient, TestServer

from accelscope.web import METRICS_ENDPOINT, build_app, parse_listen
from exporter.collect import SnapshotStore, SourceConfig, run_source_loop
from exporter.main import make_registry
from exporter.model import Device, Problem, Snapshot
from exporter.render import RenderOptions
from exporter.sources.mock import MockSource
from tests.helpers import FixedClock


class ScriptedSource:
    """A source whose collect() results are scripted per call."""

    name = "scripted"

    def __init__(self, results):
        self.results = list(results)
        self.calls = 0
        self.started = 0
        self.closed = False

    def start(self):
        self.started += 1

    def collect(self):
        self.calls += 1
        r = self.results[min(self.calls - 1, len(self.results) - 1)]
        if isinstance(r, BaseException):
            raise r
        if callable(r):
            return r()
        return r

    def close(self):
        self.closed = True


def _client(store):
    reg = make_registry(store, RenderOptions(node_name="n1"))
    app = build_app("exporter", reg, ready=store.ready, cache_key=lambda: store.version)
    return TestClient(TestServer(app, host="127.0.0.1"))


async def test_metrics_text_openmetrics_gzip_and_health():
    store = SnapshotStore()
    async with _client(store) as client:
        r = await client.get("/readyz")
        assert r.status == 503
        store.record("mock", MockSource(clock=FixedClock()).collect(), 0.01)
        r = await client.get("/readyz")
        assert r.status == 200
        r = await client.get("/healthz")
        assert r.status == 200 and await r.text() == "ok\n"
        r = await client.get("/metrics")
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = await r.text()
        assert 'hw_gpu_memory_limit_bytes{' in body and "# EOF" not in body
        r = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await r.text()).endswith("# EOF\n")
        r = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
        assert r.headers["Content-Encoding"] == "gzip"
        raw = await r.read()
        assert gzip.decompress(raw).decode() == body


async def test_scrape_is_cached_until_the_store_changes():
    store = SnapshotStore()
    src = MockSource(clock=FixedClock())
    store.record("mock", src.collect(), 0.01)
    renders = 0
    async with _client(store) as client:
        endpoint = client.server.app[METRICS_ENDPOINT]
        original = endpoint.registry.collect

        def counting():
            nonlocal renders
            renders += 1
            return original()

        endpoint.registry.collect = counting
        for _ in range(3):
            await client.get("/metrics")
        assert renders == 1
        store.record("mock", src.collect(), 0.01)
        await client.get("/metrics")
        assert renders == 2


async def test_removed_device_disappears_at_once():
    store = SnapshotStore()
    two = Snapshot("s", 1.0, devices=[Device("GPU-a", "nvidia", "m", index=0), Device("GPU-b", "nvidia", "m", index=1)])
    one = Snapshot("s", 2.0, devices=[Device("GPU-a", "nvidia", "m", index=0)])
    store.record("s", two, 0.0)
    async with _client(store) as client:
        assert "GPU-b" in await (await client.get("/metrics")).text()
        store.record("s", one, 0.0)
        text = await (await client.get("/metrics")).text()
        assert "GPU-b" not in text and "GPU-a" in text


async def test_loop_counts_exceptions_timeouts_and_problems_and_keeps_last_snapshot():
    good = Snapshot("scripted", 1.0, devices=[Device("GPU-a", "nvidia", "m", index=0)],
                    problems=[Problem("parse", "bad field")])

    def slow():
        time.sleep(0.3)
        return good

    src = ScriptedSource([good, RuntimeError("boom"), slow, good])
    store = SnapshotStore()
    stop = asyncio.Event()
    task = asyncio.create_task(run_source_loop(SourceConfig(src, interval=0.01, timeout=0.1), store, stop))
    for _ in range(200):
        await asyncio.sleep(0.02)
        st = store.stats("scripted")
        if st.errors.get("timeout") and st.errors.get("exception") and src.calls >= 4:
            break
    stop.set()
    await task
    st = store.stats("scripted")
    assert st.errors["exception"] == 1
    assert st.errors["timeout"] >= 1
    assert st.errors["parse"] >= 2
    assert src.started == 1 and src.closed
    # the device survived the failed cycles
    assert [d.hw_id for s in store.snapshots() for d in s.devices] == ["GPU-a"]


async def test_start_failure_is_reported_and_retried():
    class Flaky(ScriptedSource):
        def start(self):
            self.started += 1
            if self.started == 1:
                raise OSError("driver not loaded")

    src = Flaky([Snapshot("scripted", 1.0)])
    store = SnapshotStore()
    stop = asyncio.Event()
    task = asyncio.create_task(run_source_loop(SourceConfig(src, interval=0.01, timeout=1), store, stop))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if store.stats("scripted").success:
            break
    stop.set()
    await task
    st = store.stats("scripted")
    assert st.errors["start"] == 1 and st.success and src.started == 2


def test_parse_listen():
    import pytest
    assert parse_listen("0.0.0.0:9417") == ("0.0.0.0", 9417)
    assert parse_listen(":9417") == ("0.0.0.0", 9417)
    assert parse_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("9417")
    with pytest.raises(ValueError):
        parse_listen("h:99999")


async def test_refresh_prerenders_recent_variants_so_scrapes_only_copy_bytes():
    store = SnapshotStore()
    src = MockSource(clock=FixedClock())
    store.record("mock", src.collect(), 0.01)
    async with _client(store) as client:
        endpoint = client.server.app[METRICS_ENDPOINT]
        om = {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"}
        await client.get("/metrics", headers=om)
        await client.get("/metrics")
        calls = 0
        original = endpoint.registry.collect

        def counting():
            nonlocal calls
            calls += 1
            return original()

        endpoint.registry.collect = counting
        store.record("mock", src.collect(), 0.01)
        endpoint.refresh()
        assert calls == 1  # one collect serves both encodings
        r1 = await client.get("/metrics", headers=om, auto_decompress=False)
        r2 = await client.get("/metrics")
        assert calls == 1
        assert gzip.decompress(await r1.read()).decode().endswith("# EOF\n")
        assert "hw_gpu_memory_limit_bytes{" in await r2.text()
