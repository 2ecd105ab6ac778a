"""``accelscope collector`` and ``accelscope explain``: thin entry points.

The collector follows the Kubernetes API (``--source kube``) or replays a
recorded stream or dump (``--source replay --replay FILE``), rebuilds every
placement decision and publishes it as metrics (``/metrics``), one JSON log
line per decision, OTLP traces (``--otlp-endpoint``), the SQLite history
(``--history``) and the read API (``/api/v1/placements``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from accelscope.config import ConfigError, annotate_help
from accelscope.logs import event
from accelscope.web import (
    METRICS_ENDPOINT,
    build_app,
    parse_listen,
    refresh_loop,
    start_site,
    tls_and_auth,
    web_config_from_option,
)
from scheduler_events.api import routes
from scheduler_events.decisions import DecisionEngine
from scheduler_events.explain import explain
from scheduler_events.fragmentation_view import FragmentationView
from scheduler_events.leader import DEFAULT_LEASE_NAME, LeaderElector, LeaderGate, namespace_from_environment
from scheduler_events.decisions import Change
from scheduler_events.outputs.log import DecisionLogger
from scheduler_events.outputs.metrics import CollectorMetrics
from scheduler_events.pipeline import Pipeline, Recorder, any_of
from scheduler_events.sources.replay import ReplayStream

DEFAULT_LISTEN = "0.0.0.0:9418"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the collector's options."""
    p.add_argument("--config", metavar="FILE", help="YAML config file; options go under 'collector:' "
                   "(env ACCELSCOPE_COLLECTOR_CONFIG)")
    p.add_argument("--source", default="kube", choices=("kube", "replay"),
                   help="kube: list+watch the Kubernetes API; replay: read --replay FILE")
    p.add_argument("--replay", metavar="FILE", help="recorded JSON-lines stream or 'kubectl get pods,nodes,events "
                   "-A -o json' dump to replay")
    p.add_argument("--speed", type=float, default=0.0,
                   help="replay pacing: 0 = as fast as possible, 1 = real time, 60 = a minute per second")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT for /metrics and /api/v1")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster, else ~/.kube/config)")
    p.add_argument("--namespace", help="follow pods and events of one namespace only (default: all)")
    p.add_argument("--pod-label-selector", help="label selector for the pods to follow")
    p.add_argument("--scheduler-name", action="append", default=[], metavar="NAME=KIND",
                   help="treat Events from NAME as scheduler KIND (kube-scheduler, hami, volcano); repeatable")
    p.add_argument("--history", default="accelscope-history.db", metavar="PATH",
                   help="SQLite history of decisions (outlives the 1-hour Event TTL); 'off' to disable")
    p.add_argument("--history-max-age", type=float, default=7 * 86400, help="seconds of history to keep")
    p.add_argument("--record", metavar="FILE", help="also append every received object event to FILE (JSON lines)")
    p.add_argument("--otlp-endpoint", default="", metavar="URL",
                   help="send one trace per placement over OTLP/HTTP (e.g. http://otel-collector:4318); empty = off")
    p.add_argument("--cluster-name", default="", help="k8s.cluster.name resource attribute of traces")
    p.add_argument("--web-config", metavar="FILE", help="exporter-toolkit web-config file for TLS and basic auth")
    p.add_argument("--fragmentation-coverage", type=_ratio, default=0.6,
                   help="share of observed pods whose shapes form the target workload M (0-1]")
    p.add_argument("--fragmentation-top-nodes", type=int, default=20,
                   help="per-node fragmentation series for the N most fragmented nodes")
    p.add_argument("--leader-elect", action="store_true",
                   help="one of several replicas: only the holder of a coordination.k8s.io/v1 Lease writes --history "
                   "and pushes traces; every replica serves /metrics and /api/v1 (needs --source kube)")
    p.add_argument("--leader-election-namespace", default="", metavar="NS",
                   help="namespace of the Lease (default: $POD_NAMESPACE, else the service account's namespace)")
    p.add_argument("--leader-election-lease-name", default=DEFAULT_LEASE_NAME, metavar="NAME",
                   help="name of the Lease")
    p.add_argument("--once", action="store_true",
                   help="with --source replay: replay, print /metrics to stdout and exit")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"), help="log level")
    p.add_argument("--log-format", default="json", choices=("json", "text"), help="log format")
    annotate_help(p, "collector")


def replay_events(path: str | Path):
    """``(stream, iterator)`` over a recorded file; ConfigError (one line)
    when it can't be read or is neither format."""
    stream = ReplayStream(path)
    try:
        return stream, iter(stream)
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def _ratio(v: str) -> float:
    x = float(v)
    if not 0 < x <= 1:
        raise ValueError(f"expected a share in (0, 1], got {v}")
    return x


def _scheduler_names(values: list[str] | str) -> dict[str, str]:
    if isinstance(values, str):
        values = [v for v in values.split(",") if v]
    out = {}
    for v in values:
        name, sep, kind = v.partition("=")
        if not sep or not name or not kind:
            raise ConfigError(f"--scheduler-name expects NAME=KIND, got {v!r}")
        out[name.strip()] = kind.strip()
    return out


class Collector:
    """The wired collector: pipeline, outputs and (optionally) history and traces."""

    def __init__(self, args: argparse.Namespace, *, clock=time.time) -> None:
        # The engine keeps many long-lived small objects; CPython's default thresholds run a full
        # collection every few thousand events (measured: half the run time at 5,000 nodes). Fewer, later.
        gc.set_threshold(50_000, 20, 50)
        self.args = args
        self.clock = clock
        self.engine = DecisionEngine(scheduler_names=_scheduler_names(args.scheduler_name), clock=clock)
        self.replay_clock = 0.0
        self.history = None
        if args.history and args.history != "off":
            from scheduler_events.outputs.history import HistoryError, HistoryStore
            try:
                # replay: ages are measured on the recording's clock, so nothing just written is pruned
                self.history = HistoryStore(args.history, max_age_seconds=args.history_max_age, clock=self.now)
            except HistoryError as exc:
                raise ConfigError(str(exc)) from exc
        self.tracer = None
        if args.otlp_endpoint:
            from scheduler_events.outputs.traces import PlacementTracer
            self.tracer = PlacementTracer(args.otlp_endpoint, cluster_name=args.cluster_name or None)
        self.source: Any = None
        self.replay_done = threading.Event()
        self.replay_clock = 0.0
        self.pipeline = Pipeline(self.engine)
        self.fragmentation = FragmentationView(self.engine, coverage=args.fragmentation_coverage,
                                               top_n=args.fragmentation_top_nodes)
        self.elector: LeaderElector | None = None
        self.metrics = CollectorMetrics(self.engine, now=self.now, extra_stats=self._source_stats,
                                        synced=self._synced, lock=self.pipeline.lock,
                                        fragmentation=self.fragmentation, leader=self.is_leader)
        outputs: list[Any] = [self.metrics, DecisionLogger(lambda: self.engine)]
        gated = getattr(args, "leader_elect", False)
        if self.history is not None:
            out = _HistoryOutput(self.history)
            outputs.append(LeaderGate(out, self.is_leader, on_gain=self._backfill_history,
                                      on_loss=lambda o: o.store.flush()) if gated else out)
        if self.tracer is not None:
            outputs.append(LeaderGate(self.tracer, self.is_leader) if gated else self.tracer)
        self.pipeline.outputs = outputs
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.metrics)

    def is_leader(self) -> bool:
        """True without --leader-elect; with it, while this replica holds the Lease."""
        if not getattr(self.args, "leader_elect", False):
            return True
        return self.elector is not None and self.elector.is_leader

    def _backfill_history(self, out: Any) -> None:
        """On takeover, write what the engine knows (upserts are idempotent)."""
        now = self.now()
        out.store.record_all(Change("filtered", t.decision, now) for t in self.engine.pods.values())

    def now(self) -> float:
        """Wall time live; in a replay, the time of the latest replayed object,
        so ages ("pending for 12m") are those of the recording."""
        if self.args.source == "replay" and self.replay_clock:
            return self.replay_clock
        return self.clock()

    def _source_stats(self) -> dict[str, dict[str, int]]:
        if self.source is not None and hasattr(self.source, "stats_snapshot"):
            return self.source.stats_snapshot()
        return {}

    def _synced(self) -> bool:
        if self.args.source == "replay":
            return self.replay_done.is_set()
        return bool(self.source is not None and self.source.synced())

    def replay(self, path: str, speed: float = 0.0, stop: threading.Event | None = None) -> int:
        """Feed a recorded file through the pipeline; returns events fed."""
        stream, events = replay_events(path)
        n = 0
        first_t = wall0 = None
        for ev in events:
            if stop is not None and stop.is_set():
                break
            if speed > 0 and ev.received:
                if first_t is None:
                    first_t, wall0 = ev.received, time.monotonic()
                delay = (ev.received - first_t) / speed - (time.monotonic() - wall0)
                if delay > 0:
                    if stop is not None:
                        if stop.wait(min(delay, 3600)):
                            break
                    else:
                        time.sleep(min(delay, 3600))
            if ev.received > self.replay_clock:
                self.replay_clock = ev.received
            self.pipeline.feed(ev)
            n += 1
            if n % 1000 == 0:
                self.pipeline.tick()
        self.pipeline.tick()
        for k, v in stream.errors.items():
            self.engine.errors[f"replay_{k}"] += v
        self.replay_done.set()
        return n

    def close(self) -> None:
        if self.tracer is not None:
            self.tracer.shutdown()
        if self.history is not None:
            self.history.close()


class _HistoryOutput:
    """Pipeline output writing to the SQLite history (batched; ``tick``
    flushes a quiet pipeline's queue)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def on_change(self, change) -> None:
        self.store.record(change)

    def tick(self) -> None:
        self.store.flush()


def run(args: argparse.Namespace) -> int:
    """Run the collector until SIGINT/SIGTERM (or, with --once, one replay)."""
    if args.leader_elect:
        if args.source != "kube":
            raise ConfigError("--leader-elect needs --source kube")
        if not (args.leader_election_namespace or namespace_from_environment()):
            raise ConfigError("--leader-elect: set --leader-election-namespace (or POD_NAMESPACE)")
    if args.source == "replay":
        if not args.replay:
            raise ConfigError("--source replay needs --replay FILE")
        if not Path(args.replay).is_file():
            raise ConfigError(f"--replay {args.replay}: no such file")
        replay_events(args.replay)  # fail now, in one line, on a file that is neither format
    col = Collector(args)
    try:
        if args.once:
            if args.source != "replay":
                raise ConfigError("--once needs --source replay")
            col.replay(args.replay)
            sys.stdout.write(generate_latest(col.registry).decode())
            return 0
        web_cfg = web_config_from_option(args.web_config)
        host, port = parse_listen(args.listen)
        return asyncio.run(_serve(col, web_cfg, host, port))
    finally:
        col.close()


async def _serve(col: Collector, web_cfg, host: str, port: int) -> int:
    args = col.args
    stop = asyncio.Event()
    tstop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    middlewares, ssl_ctx = tls_and_auth(web_cfg)
    app = build_app("collector", col.registry, ready=col._synced, cache_key=lambda: col.pipeline.processed,
                    max_staleness=5.0,
                    middlewares=middlewares,
                    extra_routes=routes(col.pipeline, history=col.history, now=col.now,
                                        fragmentation=col.fragmentation),
                    links=["/api/v1/placements", "/api/v1/fragmentation"])
    runner = await start_site(app, host, port, ssl_ctx)
    refresher = asyncio.create_task(refresh_loop(app[METRICS_ENDPOINT], lambda: col.pipeline.processed, stop))
    event("collector_listening", url=f"{'https' if ssl_ctx else 'http'}://{host}:{port}", source=args.source)
    recorder = Recorder(args.record) if args.record else None
    if args.source == "replay":
        worker = threading.Thread(target=col.replay, args=(args.replay, args.speed, tstop), daemon=True)
        worker.start()
    else:
        from scheduler_events.sources.kube import KubeSource
        try:
            col.source = KubeSource.from_environment(
                kubeconfig=args.kubeconfig, namespace=args.namespace, pod_label_selector=args.pod_label_selector)
        except Exception as exc:  # noqa: BLE001 - kubernetes raises several config errors
            await runner.cleanup()
            raise ConfigError(f"cannot reach the Kubernetes API: {exc}") from exc
        if args.leader_elect:
            col.elector = LeaderElector(col.source.api_client,
                                        namespace=args.leader_election_namespace or namespace_from_environment(),
                                        name=args.leader_election_lease_name)
            col.elector.start()
        worker = threading.Thread(target=col.pipeline.run_queue, args=(tstop,), daemon=True)
        worker.start()
        col.source.start(any_of(recorder, col.pipeline.submit) if recorder else col.pipeline.submit)
    await stop.wait()
    event("collector_stopping")
    tstop.set()
    if col.source is not None:
        col.source.stop()
    await asyncio.to_thread(worker.join, 5)
    if col.elector is not None:
        if col.history is not None:
            col.history.flush()  # commit what was recorded while leading
        if col.tracer is not None and col.elector.is_leader:
            await asyncio.to_thread(col.tracer.force_flush, 5000)
        await asyncio.to_thread(col.elector.stop)  # step down and release the Lease
    await refresher
    if recorder is not None:
        recorder.close()
    await runner.cleanup()
    return 0


# ---------------------------------------------------------------- explain
def collector_url(url: str) -> str:
    """``--url`` (or ``$ACCELSCOPE_COLLECTOR_URL``) as a base URL; ``http://`` is assumed."""
    import os

    base = os.environ.get("ACCELSCOPE_COLLECTOR_URL", url).strip().rstrip("/")
    return base if "://" in base else f"http://{base}"


def fetch_json(base: str, path: str) -> dict[str, Any] | None:
    """GET ``base + path`` from a collector; None on the collector's own 404.
    Raises ConfigError when the server can't be reached or isn't a collector."""
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:  # noqa: S310 - user-given collector URL
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"null")
        except ValueError:
            payload = None
        if exc.code == 404 and isinstance(payload, dict) and "error" in payload:
            return None
        raise ConfigError(f"{base} answered HTTP {exc.code} and is not an accelscope collector "
                          f"(is --url the collector's address, port 9418 by default?)") from exc
    except ValueError as exc:
        raise ConfigError(f"{base} did not answer with JSON; is it an accelscope collector?") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach a collector at {base} ({getattr(exc, 'reason', exc)}); start one with "
                          f"'accelscope collector' or work offline with --from FILE") from exc



def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pod", metavar="NAMESPACE/POD", help="the pod to explain")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="explain offline from a 'kubectl get pods,nodes,events -A -o json' dump or a recorded "
                   "stream, instead of asking a running collector")
    p.add_argument("--url", default="http://127.0.0.1:9418",
                   help="base URL of a running collector (env ACCELSCOPE_COLLECTOR_URL; default %(default)s)")
    p.add_argument("--format", default="text", choices=("text", "json"), help="output format (default %(default)s)")


def run_explain(args: argparse.Namespace) -> int:
    """Print the explanation; exit 0 when known, 1 when the pod is unknown."""
    ns, sep, name = args.pod.partition("/")
    if not sep or not ns or not name:
        raise ConfigError(f"expected NAMESPACE/POD, got {args.pod!r}")
    if args.from_file:
        if not Path(args.from_file).is_file():
            raise ConfigError(f"--from {args.from_file}: no such file")
        engine = DecisionEngine()
        _, events = replay_events(args.from_file)
        last = 0.0
        for ev in events:
            engine.apply(ev)
            last = max(last, ev.received)
        d = engine.decision(ns, name)
        if d is None:
            print(f"accelscope: {ns}/{name} not found in {args.from_file} (the collector follows pods that request "
                  "an accelerator, carry HAMi/Volcano annotations or use another scheduler)", file=sys.stderr)
            return 1
        x = explain(d, engine, last or None)
        body = {"decision": d.to_dict(), "explanation": x.text, "facts": x.facts,
                "history": engine.history(ns, name)}
    else:
        base = collector_url(args.url)
        body = fetch_json(base, f"/api/v1/placements/{urllib.request.quote(ns)}/{urllib.request.quote(name)}")
        if body is None:
            print(f"accelscope: the collector at {base} has no placement for {ns}/{name}", file=sys.stderr)
            return 1
    if args.format == "json":
        print(json.dumps(body, indent=2, default=str))
    else:
        print(body.get("explanation") or json.dumps(body["decision"], default=str))
    return 0


# ---------------------------------------------------------------- fragmentation report
def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="offline: a 'kubectl get pods,nodes -A -o json' dump or a recorded stream (default: ask a "
                   "running collector)")
    p.add_argument("--url", default="http://127.0.0.1:9418",
                   help="base URL of a running collector (env ACCELSCOPE_COLLECTOR_URL; default %(default)s)")
    p.add_argument("--format", default="text", choices=("text", "json"), help="output format (default %(default)s)")
    p.add_argument("--coverage", type=_ratio, default=0.6, help="target-workload coverage for --from (default 0.6)")
    p.add_argument("--top", type=int, default=10, help="most fragmented nodes to list (default 10)")


def fragmentation_body(view: FragmentationView) -> dict[str, Any]:
    """The report's JSON shape (also ``GET /api/v1/fragmentation``)."""
    view.refresh()
    body = view.summary().to_dict()
    body["repack"] = view.repack_estimate()
    return body


def run_report(args: argparse.Namespace) -> int:
    if args.from_file:
        if not Path(args.from_file).is_file():
            raise ConfigError(f"--from {args.from_file}: no such file")
        engine = DecisionEngine()
        for ev in replay_events(args.from_file)[1]:
            engine.apply(ev)
        view = FragmentationView(engine, coverage=args.coverage, top_n=args.top)
        view.repack_budget = None  # offline: take the time it takes
        body = fragmentation_body(view)
    else:
        body = fetch_json(collector_url(args.url), "/api/v1/fragmentation")
        if body is None:
            raise ConfigError("the collector has no fragmentation view")
    if args.format == "json":
        print(json.dumps(body, indent=2))
    else:
        print(render_report(body, top=args.top))
    return 0


def render_report(body: dict[str, Any], top: int = 10) -> str:
    """Plain-text form of the report."""
    c = body["cluster"]
    wl = body["workload"]
    shapes = ", ".join(f"{s['shape']} {s['popularity']:.0%}" for s in wl["shapes"])
    lines = [f"Fragmentation rate {c['fragmentation_rate']:.1%}: {c['fragmented_gpus']:.2f} of "
             f"{c['free_gpus']:.2f} free GPUs cannot serve the target workload ({wl['source']}: {shapes})."]
    for model, m in c.get("by_model", {}).items():
        lines.append(f"  {model}: {m['fragmented_gpus']:.2f} of {m['free_gpus']:.2f} free GPUs fragmented")
    if body["nodes"]:
        lines.append("Most fragmented nodes:")
        for n in body["nodes"][:top]:
            lines.append(f"  {n['node']} ({n['gpu_model']}): {n['fragmented_gpus']:.2f} of {n['free_gpus']:.2f} "
                         f"free GPUs ({n['fragmentation']:.0%})")
    if body["stranded"]:
        lines.append("Stranded (free GPUs on nodes out of another resource):")
        for s in body["stranded"][:top]:
            lines.append(f"  {s['node']}: {s['free_gpus']:.2f} GPUs, out of {s['reason']}")
    else:
        lines.append("Stranded: none.")
    lines.append("Largest placeable, per target shape:")
    for row in body["largest_placeable"]:
        lines.append(f"  {row['shape']}: {row['placeable']} more pod(s); {row['unplaceable_free_gpus']:.2f} free "
                     f"GPUs unusable for it")
    blocked = body["blocked_by_fragmentation"]
    shown = ", ".join(blocked[:top]) + (f" and {len(blocked) - top} more" if len(blocked) > top else "")
    lines.append(f"Pending pods blocked by fragmentation (their request fits the cluster's free total but no "
                 f"single node): {len(blocked)}{': ' + shown if blocked else ''}.")
    r = body.get("repack")
    if r:
        if r.get("skipped"):
            lines.append(f"Repack by FGD: not estimated ({r['skipped']}).")
        elif r["unplaced_pods"]:
            lines.append(f"Repack by FGD: {r['unplaced_pods']} of {r['movable_pods']} movable pods would not fit "
                         f"back into the cluster as it is, so a repack is not safe to estimate.")
        else:
            lines.append(f"Repack by FGD of {r['movable_pods']} movable pod(s) would recover "
                         f"{r['recovered_gpus']:.2f} GPUs ({r['fragmented_gpus_before']:.2f} -> "
                         f"{r['fragmented_gpus_after']:.2f} fragmented).")
    return "\n".join(lines)
