"""Benchmark: the scheduler-event collector on a synthetic large cluster (issue 3).

Streams a recorded JSON-lines file (made by ``gen_cluster_stream.py``: by
default 5,000 nodes x 8 GPUs and ``--pods`` pods) through

* **the floor**: read every line and ``json.loads`` it, nothing else;
* **the pipeline as ``accelscope collector`` wires it**
  (``scheduler_events.main.Collector``, replay source, history off):
  ``ReplayStream`` -> ``Pipeline.feed`` -> ``DecisionEngine`` ->
  ``CollectorMetrics`` + ``DecisionLogger`` + ``PlacementTracer``.  The log
  lines go through the real JSON log handler into ``/dev/null``
  (``--log-sink discard``: the message is built, the line is not formatted);
  the tracer has ``delay_s=0`` and a span exporter that drops the spans
  (the SDK's ``BatchSpanProcessor`` and its worker thread stay as wired).

Single-threaded feeding, as the collector's consumer thread does it (a
``tick`` every 1,000 events, as ``Collector.replay``).  Reports, as one JSON
object on stdout:

* events/s of both passes (wall clock and process CPU time) and their ratio;
* decision latency: the time ``Pipeline.feed`` takes for events that produce
  at least one change (event in -> metric, log line and span out), p50 / p99
  / max, and for all events;
* RSS: ``VmRSS`` from ``/proc/self/status`` before the stream, after the
  nodes, and at the end, divided by the peak number of tracked pods (no
  ``tracemalloc`` anywhere near the timed run); ``VmHWM``;
* the time of a ``/metrics`` render (``generate_latest``, twice) at the end;
* the engine's error counters (the synthetic input should decode cleanly),
  change counts, traces and log lines emitted, garbage-collector pauses;
* with ``--profile N``: a second pass under ``cProfile`` and the top ``N``
  functions by own time and by cumulative time;
* with ``--memory-breakdown``: after the timed pass, the memory attributed to
  the engine's structures and the outputs (a ``sys.getsizeof`` walk).

``--time-limit S`` stops the pipeline (and profile) pass after S seconds and
reports on what was fed; ``--logger-usage empty`` is a diagnostic that gives
the decision logger no device usage, to show what the rest costs.

Default run (about 10 seconds on 2 cores):
``python benchmarks/bench_collector.py`` (5,000 nodes, 2,000 pods).  Full size
(issue 3; about 2.2 GB of stream; many hours with that engine, see
docs/performance.md): ``python benchmarks/bench_collector.py --pods 100000``.  ``--stream FILE`` reuses
a stream made by ``gen_cluster_stream.py``; otherwise one is generated into a
temporary directory and removed afterwards (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from types import FunctionType, MethodType, ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import SpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from prometheus_client.exposition import generate_latest  # noqa: E402

from accelscope.logs import setup_logging  # noqa: E402
from scheduler_events.main import Collector, add_arguments  # noqa: E402
from scheduler_events.outputs.log import DecisionLogger  # noqa: E402
from scheduler_events.outputs.traces import PlacementTracer  # noqa: E402
from scheduler_events.sources.replay import ReplayStream  # noqa: E402

TARGET_EVENTS_PER_S = 20_000
TARGET_P99_S = 0.050
TARGET_BYTES_PER_POD = 2048


# ---------------------------------------------------------------- helpers
def proc_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process in bytes."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) * 1024
    return out


def rss() -> int:
    return proc_status()["VmRSS"]


def pct(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)


class EndedSpans(SpanProcessor):
    """Counts the spans the tracer ended (to tell dropped ones from exported ones)."""

    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span) -> None:
        self.ended += 1


class DropExporter(SpanExporter):
    """Counts and drops spans (the OTLP exporter's place, without the network)."""

    def __init__(self) -> None:
        self.spans = 0
        self.ended = EndedSpans()  # added to the provider: spans ended, exported or not

    def export(self, spans) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class CountingLog:
    """``DecisionLogger.emit``: count, then hand the line to the real JSON
    logger (``forward``) or drop it."""

    def __init__(self, forward) -> None:
        self.lines = 0
        self.forward = forward

    def __call__(self, name, level, **fields) -> None:
        self.lines += 1
        if self.forward is not None:
            self.forward(name, level, **fields)


class GcPauses:
    """Garbage-collector pauses by generation (gc.callbacks; cheap)."""

    def __init__(self) -> None:
        self.count = Counter()
        self.total = Counter()
        self.max = Counter()
        self._t = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            d = time.perf_counter() - self._t
            g = info["generation"]
            self.count[g] += 1
            self.total[g] += d
            if d > self.max[g]:
                self.max[g] = d

    def report(self) -> dict:
        return {f"gen{g}": {"collections": self.count[g], "total_s": round(self.total[g], 3),
                            "max_ms": ms(self.max[g])} for g in sorted(self.count)}


def build_collector(log_sink: str, logger_usage: str = "live"):
    """The collector as ``accelscope collector --source replay`` wires it
    (history off), plus the tracer with a dropping exporter and ``delay_s=0``.
    ``logger_usage="empty"`` (a diagnostic, not the benchmark) gives the
    decision logger an empty device usage instead of the engine's."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)  # the collector's own options and defaults, so new ones are wired as shipped
    args = parser.parse_args(["--source", "replay", "--replay", os.devnull, "--history", "off",
                              "--cluster-name", "bench"])
    col = Collector(args)
    exporter = DropExporter()
    col.tracer = PlacementTracer(exporter=exporter, cluster_name="bench", delay_s=0)
    col.tracer.provider.add_span_processor(exporter.ended)
    col.pipeline.outputs.append(col.tracer)
    if log_sink == "devnull":
        from accelscope.logs import event

        forward = event
    else:
        forward = None
    sink = CountingLog(forward)
    for out in col.pipeline.outputs:
        if isinstance(out, DecisionLogger):
            out.emit = sink
            if logger_usage == "empty":
                out.usage = dict
    return col, exporter, sink


def deep_size(obj, seen: set[int]) -> int:
    """Approximate bytes reachable from ``obj`` (``sys.getsizeof`` of each
    object not in ``seen``; follows containers, ``__dict__`` and ``__slots__``).
    Used after the timed run only, to attribute memory."""
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen or isinstance(o, (type, ModuleType, FunctionType, MethodType)):
            continue
        seen.add(i)
        total += sys.getsizeof(o)
        if isinstance(o, (str, bytes, int, float, bool)) or o is None:
            continue
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset, deque)):
            stack.extend(o)
        else:
            d = getattr(o, "__dict__", None)
            if d is not None:
                stack.append(d)
            for cls in type(o).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    v = getattr(o, name, None)
                    if v is not None:
                        stack.append(v)
    return total


def memory_breakdown(col) -> dict:
    """Where the collector's memory sits, in bytes (approximate, shared
    objects counted once, in this order)."""
    eng, seen = col.engine, set()
    keep = []  # temporaries stay alive, so their ids in ``seen`` are not reused

    def tmp(o):
        keep.append(o)
        return o

    # node names and interned constants are shared: count the nodes first
    parts = {"engine.nodes": deep_size(eng.nodes, seen)}
    tracked = list(eng.pods.values())
    parts["tracked: node verdicts"] = sum(deep_size(t.decision.verdicts, seen) for t in tracked)
    parts["tracked: rejections (with node names)"] = sum(deep_size(t.decision.rejections, seen) for t in tracked)
    parts["tracked: attempt history"] = sum(deep_size(t.history, seen) for t in tracked)
    parts["tracked: seen event keys"] = sum(deep_size(t.seen_events, seen) for t in tracked)
    parts["tracked: rest of the decision"] = deep_size(eng.pods, seen)
    parts["engine.finished (verdicts included)"] = deep_size(eng.finished, seen)
    parts["engine: other indexes"] = deep_size(tmp({k: v for k, v in vars(eng).items()
                                                   if k not in ("pods", "nodes", "finished")}), seen)
    frag = getattr(col, "fragmentation", None)
    if frag is not None:
        parts["fragmentation view (built at the /metrics render)"] = deep_size(frag, seen)
    for out in col.pipeline.outputs:
        parts[f"output {type(out).__name__}"] = deep_size(tmp(vars(out)), seen) if hasattr(out, "__dict__") else 0
    n = max(1, len(tracked))
    return {"bytes": parts, "per_pod_tracked_at_end": {k: round(v / n) for k, v in parts.items()},
            "tracked_pods": len(tracked)}


# ---------------------------------------------------------------- passes
def floor_pass(path: str) -> dict:
    """Read every line and json.loads it (what ReplayStream cannot avoid)."""
    loads = json.loads
    n = 0
    c0, t0 = time.process_time(), time.perf_counter()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line:
                loads(line)
                n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"events": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "events_per_s": round(n / wall), "events_per_cpu_s": round(n / cpu)}


def pipeline_pass(path: str, n_events: int, log_sink: str, time_limit: float = 0.0, logger_usage: str = "live",
                  breakdown: bool = False, rss_every: int = 20_000) -> dict:
    col, exporter, sink = build_collector(log_sink, logger_usage)
    pipeline, engine = col.pipeline, col.engine
    lat = array("d", bytes(8 * n_events))  # preallocated: not part of the growth measured
    changed = bytearray(n_events)
    kinds: Counter[str] = Counter()
    gcp = GcPauses()
    gc.collect()
    rss_before = rss()
    rss_after_nodes = None
    t_nodes, n_nodes = 0.0, 0
    samples: list[tuple[int, int, int]] = []  # (event index, tracked pods, VmRSS)
    peak_tracked = 0
    feed, tick, perf = pipeline.feed, pipeline.tick, time.perf_counter
    stream = ReplayStream(path)
    gc.callbacks.append(gcp)
    i = 0
    stopped_early = False
    c0, t0 = time.process_time(), perf()
    try:
        for ev in stream:
            if time_limit and not i & 255 and perf() - t0 > time_limit:
                stopped_early = True
                break
            if rss_after_nodes is None and ev.kind != "Node":
                t_nodes, n_nodes = perf() - t0, i
                rss_after_nodes = rss()
            if ev.received > col.replay_clock:
                col.replay_clock = ev.received
            s = perf()
            changes = feed(ev)
            lat[i] = perf() - s
            if changes:
                changed[i] = 1
                for c in changes:
                    kinds[c.kind] += 1
            i += 1
            if i % 1000 == 0:
                tick()
            tracked = len(engine.pods)
            if tracked > peak_tracked:
                peak_tracked = tracked
            if i % rss_every == 0:
                samples.append((i, tracked, rss()))
        tick()
        wall, cpu = perf() - t0, time.process_time() - c0
    finally:
        gc.callbacks.remove(gcp)
    t_flush = perf()
    col.tracer.force_flush()
    flush_s = perf() - t_flush
    col.replay_done.set()
    st = proc_status()
    rss_end = st["VmRSS"]
    samples.append((i, len(engine.pods), rss_end))
    # /metrics at the end (what a scrape after the replay costs)
    renders = []
    body = b""
    for _ in range(2):
        t = perf()
        body = generate_latest(col.registry)
        renders.append(perf() - t)
    n = i
    lat_all = sorted(lat[:n])
    lat_chg = sorted(lat[j] for j in range(n) if changed[j])
    per_pod = (rss_end - rss_before) / peak_tracked if peak_tracked else None
    per_pod_pods_only = (rss_end - (rss_after_nodes or rss_before)) / peak_tracked if peak_tracked else None
    held_verdicts = sum(len(t.decision.verdicts) for t in engine.pods.values())
    held_verdicts += sum(len(d.verdicts) for d in engine.finished.values())
    outcomes = Counter(t.decision.outcome for t in engine.pods.values())
    result = {
        "events": n,
        "stopped_at_time_limit": stopped_early,
        "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        "events_per_s": round(n / wall), "events_per_cpu_s": round(n / cpu),
        "node_phase": {"events": n_nodes, "wall_s": round(t_nodes, 3),
                       "events_per_s": round(n_nodes / t_nodes) if t_nodes else None},
        "pod_phase": {"events": n - n_nodes, "wall_s": round(wall - t_nodes, 3),
                      "events_per_s": round((n - n_nodes) / (wall - t_nodes)) if wall > t_nodes else None},
        "latency_changed_ms": {"events": len(lat_chg), "p50": ms(pct(lat_chg, 0.50)), "p90": ms(pct(lat_chg, 0.90)),
                               "p99": ms(pct(lat_chg, 0.99)), "p999": ms(pct(lat_chg, 0.999)),
                               "max": ms(lat_chg[-1] if lat_chg else None)},
        "latency_all_ms": {"p50": ms(pct(lat_all, 0.50)), "p99": ms(pct(lat_all, 0.99)),
                           "max": ms(lat_all[-1] if lat_all else None)},
        "memory": {
            "rss_before_stream_mb": round(rss_before / 2**20, 1),
            "rss_after_nodes_mb": round((rss_after_nodes or rss_before) / 2**20, 1),
            "rss_end_mb": round(rss_end / 2**20, 1),
            "vm_hwm_mb": round(st["VmHWM"] / 2**20, 1),
            "peak_tracked_pods": peak_tracked,
            "tracked_pods_end": len(engine.pods),
            "finished_decisions_kept": len(engine.finished),
            "node_verdicts_held": held_verdicts,
            "bytes_per_tracked_pod": round(per_pod) if per_pod is not None else None,
            "bytes_per_tracked_pod_excluding_nodes": round(per_pod_pods_only) if per_pod_pods_only else None,
            "bytes_per_node": round(((rss_after_nodes or rss_before) - rss_before) / max(1, len(engine.nodes))),
            "samples": [{"event": e, "tracked": t, "rss_mb": round(r / 2**20, 1)} for e, t, r in samples],
        },
        "metrics_render_s": [round(r, 3) for r in renders],
        "metrics_body_bytes": len(body),
        "metrics_series": body.count(b"\n") - body.count(b"\n#"),
        "tracer_force_flush_s": round(flush_s, 3),
        "changes": dict(kinds),
        "outcomes_tracked": dict(outcomes),
        "traces": col.tracer.traces, "spans_ended": exporter.ended.ended, "spans_exported": exporter.spans,
        "spans_dropped_by_batch_processor": exporter.ended.ended - exporter.spans, "log_lines": sink.lines,
        "engine_errors": dict(engine.errors), "output_errors": dict(pipeline.output_errors),
        "tracer_errors": dict(col.tracer.errors), "replay_errors": dict(stream.errors),
        "gc": gcp.report(),
    }
    if breakdown:
        t = perf()
        result["memory"]["breakdown"] = memory_breakdown(col)
        result["memory"]["breakdown"]["seconds"] = round(perf() - t, 1)
    col.close()
    return result


def profile_pass(path: str, log_sink: str, top: int, time_limit: float = 0.0, logger_usage: str = "live") -> dict:
    col, _, _ = build_collector(log_sink, logger_usage)
    prof = cProfile.Profile()
    feed, tick = col.pipeline.feed, col.pipeline.tick
    n = 0
    t0 = time.perf_counter()
    prof.enable()
    for i, ev in enumerate(ReplayStream(path)):
        if time_limit and not i & 255 and time.perf_counter() - t0 > time_limit:
            break
        n += 1
        if ev.received > col.replay_clock:
            col.replay_clock = ev.received
        feed(ev)
        if i % 1000 == 999:
            tick()
    tick()
    prof.disable()
    col.close()
    st = pstats.Stats(prof, stream=io.StringIO())
    total = st.total_tt

    def rows(key: str) -> list[dict]:
        st.sort_stats(key)
        out = []
        for func in st.fcn_list[:top]:
            cc, nc, tt, ct, _ = st.stats[func]
            fname, line, name = func
            try:
                fname = str(Path(fname).resolve().relative_to(ROOT))
            except ValueError:
                fname = fname.split("site-packages/")[-1]
            out.append({"function": f"{fname}:{line}({name})", "calls": nc, "tottime_s": round(tt, 3),
                        "cumtime_s": round(ct, 3), "cum_share": round(ct / total, 3) if total else None})
        return out

    return {"events": n, "profiled_total_s": round(total, 3), "by_tottime": rows("tottime"),
            "by_cumtime": rows("cumulative")}


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stream", help="a stream made by gen_cluster_stream.py (default: generate one)")
    p.add_argument("--nodes", type=int, default=5000, help="nodes of the generated stream (default 5000)")
    p.add_argument("--pods", type=int, default=2000, help="pods of the generated stream (default 2000, a few "
                   "minutes with the current engine; the issue's full size is 100000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gen-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for gen_cluster_stream.py (repeatable, e.g. --gen-arg=--event-apis=both)")
    p.add_argument("--keep", action="store_true", help="keep the generated stream")
    p.add_argument("--log-sink", choices=("devnull", "discard"), default="devnull",
                   help="devnull: decision log lines through the JSON log handler into /dev/null (default); "
                   "discard: the message is built, the line is dropped before formatting")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also run a cProfile pass and report the top N functions (0 = no)")
    p.add_argument("--profile-only", action="store_true", help="skip the timed passes (with --profile)")
    p.add_argument("--time-limit", type=float, default=0.0, metavar="S",
                   help="stop the pipeline (and profile) pass after S seconds and report on the events fed so far; "
                   "rates and the ratio stay comparable (0 = the whole stream)")
    p.add_argument("--memory-breakdown", action="store_true",
                   help="after the timed pass, attribute memory to the engine's structures and the outputs "
                   "(sys.getsizeof walk; slow on big runs)")
    p.add_argument("--logger-usage", choices=("live", "empty"), default="live",
                   help="diagnostic: 'empty' gives the decision logger no device usage (no 'largest free' detail "
                   "in messages), to show what the rest of the pipeline costs; not the benchmark")
    args = p.parse_args(argv)

    setup_logging("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 - lives for the process
    tmpdir = None
    report: dict = {"machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                                "cpu_model": _cpu_model()},
                    "settings": {"log_sink": args.log_sink, "logger_usage": args.logger_usage,
                                 "time_limit_s": args.time_limit}}
    try:
        if args.stream:
            path = args.stream
        else:
            tmpdir = tempfile.mkdtemp(prefix="accelscope-bench-")
            path = os.path.join(tmpdir, f"cluster-{args.nodes}n-{args.pods}p.jsonl")
            t = time.perf_counter()
            # a child process, so the generator's memory is not in this one's RSS
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_cluster_stream.py"),
                            "--nodes", str(args.nodes), "--pods", str(args.pods), "--seed", str(args.seed),
                            "--out", path, *args.gen_arg], check=True, stderr=subprocess.DEVNULL)
            report["generate_s"] = round(time.perf_counter() - t, 1)
        report["stream"] = {"path": path, "bytes": os.path.getsize(path)}
        if not args.profile_only:
            floor = floor_pass(path)
            report["floor"] = floor
            pipe = pipeline_pass(path, floor["events"], args.log_sink, args.time_limit, args.logger_usage,
                                 args.memory_breakdown)
            report["pipeline"] = pipe
            mem = pipe["memory"]
            p99 = pipe["latency_changed_ms"]["p99"]
            # per event, so a pass stopped by --time-limit stays comparable
            report["ratio_to_floor"] = {"wall": round(floor["events_per_s"] / pipe["events_per_s"], 2),
                                        "cpu": round(floor["events_per_cpu_s"] / pipe["events_per_cpu_s"], 2)}
            report["targets"] = {
                "events_per_s": {"value": pipe["events_per_s"], "target": f">= {TARGET_EVENTS_PER_S}",
                                 "met": pipe["events_per_s"] >= TARGET_EVENTS_PER_S},
                "decision_latency_p99_ms": {"value": p99, "target": f"< {TARGET_P99_S * 1000:g}",
                                            "met": p99 is not None and p99 < TARGET_P99_S * 1000},
                "bytes_per_tracked_pod": {"value": mem["bytes_per_tracked_pod"], "target": f"<= {TARGET_BYTES_PER_POD}",
                                          "met": mem["bytes_per_tracked_pod"] is not None
                                          and mem["bytes_per_tracked_pod"] <= TARGET_BYTES_PER_POD},
            }
            gc.collect()
        if args.profile:
            report["profile"] = profile_pass(path, args.log_sink, args.profile, args.time_limit, args.logger_usage)
    finally:
        if tmpdir and not args.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)
    print(json.dumps(report, indent=1))
    return 0


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


if __name__ == "__main__":
    sys.exit(main())
