"""Benchmark: the exporter on a big node (16 GPUs, 256 HAMi vGPU containers).

Builds a node with 16 physical devices (the mock source) and 256 vGPU
containers backed by real-size HAMi-core shared-region files (2 008 953 bytes
each, layout 1.2, written into a temporary directory), then measures:

* collection: CPU time (``time.process_time``) of one collection cycle of
  both sources, p50/p99 over the rounds;
* render: building the families and serialising them after the data changed
  (the first scrape after a collection), p50/p99;
* floor: prometheus_client ``generate_latest`` on the same *pre-built*
  families (what serialisation alone costs), and the ratio render / floor;
* scrape: HTTP GET /metrics on loopback through the real aiohttp app with
  Prometheus' Accept header and gzip, while the sources keep collecting
  (one collection per three scrapes; the endpoint pre-renders after each
  collection, as the running agent does), p50/p99;
* RSS: resident set size of this process at the end (VmRSS), with the
  peak (which includes building the 256 files) for reference.

Prints one JSON object.  Targets (issue 2): scrape p99 < 10 ms, a collection
cycle < 50 ms CPU, RSS < 80 MB.  Run: ``make bench`` or
``python benchmarks/bench_exporter.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from accelscope.web import METRICS_ENDPOINT, build_app  # noqa: E402
from bench_hami_cache import build_region  # noqa: E402
from exporter.collect import SnapshotStore  # noqa: E402
from exporter.main import make_registry  # noqa: E402
from exporter.render import RenderOptions, render_families  # noqa: E402
from exporter.sources.hami_vgpu import HamiVgpuSource  # noqa: E402
from exporter.sources.mock import MockSource  # noqa: E402


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def build_node(root: Path, containers: int) -> None:
    for i in range(containers):
        d = root / f"{i:08x}-0000-4000-8000-{i:012x}_worker-{i % 7}"
        d.mkdir()
        (d / "f2df89ca-28bd-4b23-83c0-212835ac1724.cache").write_bytes(build_region(i, active=2, ndev=1))


class _Frozen:
    def __init__(self, fams):
        self.fams = fams

    def collect(self):
        return self.fams


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
                     "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")


async def http_scrapes(store: SnapshotStore, opts: RenderOptions, sources, n: int,
                       scrapes_per_collection: int = 3) -> list[float]:
    """Scrape like Prometheus (its Accept header, gzip) while the sources keep
    collecting; after each collection the endpoint pre-renders, as the agent does."""
    app = build_app("exporter", make_registry(store, opts), ready=store.ready, cache_key=lambda: store.version)
    endpoint = app[METRICS_ENDPOINT]
    headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
    out = []
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await (await client.get("/metrics", headers=headers)).read()
        for i in range(n):
            if i % scrapes_per_collection == 0:
                for src in sources:
                    snap = src.collect()
                    store.record(snap.source, snap, 0.0)
                await asyncio.to_thread(endpoint.refresh)
            t0 = time.perf_counter()
            r = await client.get("/metrics", headers=headers)
            await r.read()
            out.append(time.perf_counter() - t0)
    return out


def rss_now_mb() -> float:
    """Current resident set size (VmRSS) in MiB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--containers", type=int, default=256)
    ap.add_argument("--devices", type=int, default=16)
    args = ap.parse_args(argv)

    inventory = {"devices": [{"model": "NVIDIA H100 80GB HBM3", "count": args.devices, "memory_gib": 80,
                              "power_limit_watts": 700}]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_node(root, args.containers)
        mock = MockSource(inventory)
        hami = HamiVgpuSource(root)
        mock.start()
        hami.start()
        store = SnapshotStore()
        opts = RenderOptions(node_name="bench-node")
        collect_cpu, render, floor = [], [], []
        for _ in range(args.rounds):
            c0 = time.process_time()
            snaps = [mock.collect(), hami.collect()]
            collect_cpu.append(time.process_time() - c0)
            for s in snaps:
                store.record(s.source, s, 0.0)
            reg = make_registry(store, opts)
            t0 = time.perf_counter()
            body = generate_latest(reg)
            render.append(time.perf_counter() - t0)
            fams = render_families(store.snapshots(), store.all_stats(), opts)
            frozen = CollectorRegistry(auto_describe=False)
            frozen.register(_Frozen(fams))
            t0 = time.perf_counter()
            generate_latest(frozen)
            floor.append(time.perf_counter() - t0)
        scrapes = asyncio.run(http_scrapes(store, opts, [mock, hami], args.rounds * 3))
        series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
        slices = len(snaps[1].slices)
        rss_mb = rss_now_mb()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "devices": args.devices, "vgpu_containers": args.containers, "vgpu_slices": slices, "series": series,
        "body_bytes": len(body), "rounds": args.rounds,
        "collect_cpu_ms_p50": round(statistics.median(collect_cpu) * 1e3, 2),
        "collect_cpu_ms_p99": round(pct(collect_cpu, 0.99) * 1e3, 2),
        "render_ms_p50": round(statistics.median(render) * 1e3, 2),
        "render_ms_p99": round(pct(render, 0.99) * 1e3, 2),
        "floor_generate_latest_ms_p50": round(statistics.median(floor) * 1e3, 2),
        "render_to_floor_ratio": round(statistics.median(render) / statistics.median(floor), 2),
        "scrape_http_ms_p50": round(statistics.median(scrapes) * 1e3, 3),
        "scrape_http_ms_p99": round(pct(scrapes, 0.99) * 1e3, 3),
        "rss_mb": round(rss_mb, 1),
        "peak_rss_mb_incl_building_files": round(peak_mb, 1),
        "targets": {"scrape_p99_ms": 10, "collect_cpu_ms": 50, "rss_mb": 80},
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
