"""``accelscope demo``: the whole stack on its embedded default, on loopback.

1. The **simulator** builds a small HAMi cluster from the embedded workload
   profile (derived from Alibaba's cluster-trace-gpu-v2023) and writes the
   Kubernetes objects and events HAMi and kube-scheduler would write, on an
   accelerated clock.
2. The **collector** (a child process) replays that stream at ``--speed``:
   placements, pending pods, fragmentation, the API and ``explain``.
3. The **exporter** (this process) serves one simulated node: mock devices
   with that node's GPU UUIDs and indices and the vGPU slices of the pods
   placed on it (so allocation and usage join on ``hw_id``).  The real
   captures are exercised by ``accelscope exporter --source replay``.

A one-line summary (replay progress, placed, pending, fragmentation rate) is
refreshed while it runs.  Ports are checked first; the child dies with the
parent (Linux ``PR_SET_PDEATHSIG``); temporary files are removed on exit.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from accelscope.config import ConfigError
from accelscope.logs import setup_logging
from accelscope.web import parse_listen

#: the demo cluster: small enough to read, big enough to fragment
DEMO_NODES, DEMO_PODS, DEMO_SECONDS_PER_POD, DEMO_SPEED = 12, 240, 3.0, 12.0


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
        body = r.read()
    return json.loads(body) if "/api/" in url else body.decode()


def _wait_ready(url: str, child: subprocess.Popen, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        try:
            _get(url)
            return True
        except OSError:
            time.sleep(0.2)
    return False


def simulate_stream(path: Path, *, nodes: int = DEMO_NODES, pods: int = DEMO_PODS, seed: int = 7,
                    start: float | None = None) -> tuple[int, Any]:
    """Write the demo's simulated stream to ``path``; returns (events, EmitResult)."""
    from scheduler_events.simulate.emit import Emitter, write_jsonl
    from scheduler_events.simulate.profile import load_profile, sample_cluster

    profile = load_profile("embedded")
    cluster_nodes, cluster_pods = sample_cluster(profile, nodes, pods, seed)
    em = Emitter(cluster_nodes, cluster_pods, "hami-binpack-spread", seed=seed, workload=profile.workload(0.95),
                 start=time.time() if start is None else start, seconds_per_pod=DEMO_SECONDS_PER_POD,
                 depart_fraction=0.3, mean_lifetime_pods=80, namespace="sim")
    n = write_jsonl(em.events(), path)
    return n, em.result


def exporter_inventory(result: Any, stream: Path) -> tuple[str, dict[str, Any]]:
    """(node name, mock inventory) of the simulated node with the most vGPU
    tenants at the end of the simulation: its GPU UUIDs, model and memory,
    and one HAMi vGPU slice per pod still placed there."""
    uids: dict[str, str] = {}
    with stream.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec["kind"] == "Pod" and rec["type"] == "ADDED":
                md = rec["object"]["metadata"]
                uids[md["name"]] = md["uid"]
    per_node: dict[str, list[Any]] = {}
    for p in result.placed.values():
        per_node.setdefault(p.node, []).append(p)
    node = max(per_node, key=lambda n: (len(per_node[n]), n)) if per_node else result.inventory[0]["node"]
    devices = sorted((d for d in result.inventory if d["node"] == node), key=lambda d: d["index"])
    slices: dict[str, list[dict[str, Any]]] = {d["uuid"]: [] for d in devices}
    for p in per_node.get(node, []):
        for uuid, mib, cores in zip(p.devices, p.memory_mib, p.cores):
            if uuid in slices:
                slices[uuid].append({"namespace": "sim", "pod": p.pod, "container": "main",
                                     "memory_gib": round(mib / 1024, 3), "cores": (cores or 100) / 100,
                                     "pod_uid": uids.get(p.pod, "")})
    specs = []
    idle_marked = False
    for d in devices:
        spec: dict[str, Any] = {"model": d["model"], "memory_gib": round(d["memory_mib"] / 1024, 3),
                                "uuids": [d["uuid"]]}
        tenants = slices[d["uuid"]]
        if len(tenants) == 1 and tenants[0]["cores"] >= 1.0:
            # a whole-GPU pod: the device itself is attributed, no slice
            t = tenants[0]
            spec["pod"] = {k: t[k] for k in ("namespace", "pod", "container", "pod_uid")}
        elif tenants:
            if not idle_marked:  # one tenant that holds memory but has not launched a kernel for 2 h
                tenants[0] = dict(tenants[0], idle=True)
                idle_marked = True
            spec["vgpu"] = tenants
        specs.append(spec)
    return node, {"devices": specs, "first_index": 0}  # the node's own GPU indices, as `explain` names them


def _metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _summary_loop(base: str, total: int, stop: threading.Event) -> None:
    tty = sys.stdout.isatty()
    last = ""
    while not stop.wait(2.0):
        try:
            metrics = _get(f"{base}/metrics")
            frag = _get(f"{base}/api/v1/fragmentation")
            pending = _get(f"{base}/api/v1/placements?outcome=pending&limit=1000")
        except (OSError, ValueError):
            continue
        done = _metric_sum(metrics, "accel_collector_object_events_total")
        placed = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("accel_placement_decisions_total{") and 'outcome="placed"' in line)
        c = frag["cluster"]
        line = (f"replay {min(100.0, 100 * done / max(1, total)):5.1f}% | placed {placed:4.0f} | "
                f"pending {pending['count']:3d} | fragmentation {c['fragmentation_rate']:6.1%} of "
                f"{c['free_gpus']:.1f} free GPUs | blocked by fragmentation {len(frag['blocked_by_fragmentation'])}")
        if line != last:
            print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
            last = line


def run_demo(listen: str, *, once: bool = False, speed: float = DEMO_SPEED) -> int:
    """Run the demo until Ctrl-C (``once``: print one scrape of each and exit)."""
    from exporter.main import add_arguments, run

    host, port = parse_listen(listen)
    collector_listen = f"{host}:{port + 1}"
    with tempfile.TemporaryDirectory(prefix="accelscope-demo-") as state:
        stream = Path(state) / "simulated-cluster.jsonl"
        start = time.time() - (0 if not once else DEMO_PODS * DEMO_SECONDS_PER_POD)
        total, result = simulate_stream(stream, start=start)
        node, inventory = exporter_inventory(result, stream)
        p = argparse.ArgumentParser()
        add_arguments(p)
        # the exporter is one simulated node: its GPUs carry that node's UUIDs and indices, so
        # `explain`'s "GPU 5 on sim-g3-000" is accel_index="5" on the exporter
        argv = ["--source", "mock", "--listen", listen,
                "--node-name", node, "--interval", "5", "--log-format", "text", "--pod-uid-label"]
        if once:
            subprocess.run([sys.executable, "-m", "accelscope.cli", "collector", "--source", "replay", "--replay",
                            str(stream), "--once", "--history", "off", "--log-level", "error"], check=True)
            args = p.parse_args(argv + ["--once"])
            args.config_sections = {"mock": inventory}
            setup_logging("warning", "text")
            return run(args)
        for h, pt in ((host, port), (host, port + 1)):
            if not _port_free(h, pt):
                raise ConfigError(f"port {h}:{pt} is already in use (an earlier demo still running?); stop it, or "
                                  f"run 'accelscope demo --listen {h}:<free port>' (the collector takes that "
                                  "port + 1)")
        args = p.parse_args(argv)
        args.config_sections = {"mock": inventory}
        setup_logging("warning", "text")
        child = subprocess.Popen(
            [sys.executable, "-m", "accelscope.cli", "collector", "--source", "replay", "--replay", str(stream),
             "--speed", str(speed), "--listen", collector_listen, "--history", f"{state}/history.db",
             "--log-format", "text", "--log-level", "warning"], preexec_fn=_die_with_parent)  # noqa: PLW1509
        stop = threading.Event()
        try:
            if not _wait_ready(f"http://{collector_listen}/healthz", child):
                raise ConfigError("the demo collector did not start (see its error above)")
            sim = (f"{result.nodes} nodes / {result.gpus} GPUs, {DEMO_PODS} pods, policy {result.policy}, "
                   f"{DEMO_SECONDS_PER_POD * DEMO_PODS / 60:.0f} simulated minutes at {speed:g}x")
            pending = sorted(result.pending)
            example = f"sim/{pending[0]}" if pending else "sim/<pod>"  # pending once the replay reaches it
            print(f"accelscope demo: a simulated HAMi cluster ({sim})\n"
                  f"  exporter (node {node}):         curl http://{host}:{port}/metrics\n"
                  f"  collector:                      curl http://{collector_listen}/metrics\n"
                  f"                                  curl http://{collector_listen}/api/v1/placements?outcome=pending\n"
                  f"  why is a pod pending?           .venv/bin/accelscope explain {example} "
                  f"--url http://{collector_listen}   (pending once the replay gets there)\n"
                  f"  fragmentation:                  .venv/bin/accelscope fragmentation report "
                  f"--url http://{collector_listen}\n"
                  f"  (Ctrl-C to stop)", flush=True)
            threading.Thread(target=_summary_loop, args=(f"http://{collector_listen}", total, stop),
                             daemon=True).start()
            return run(args)
        finally:
            stop.set()
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
            print()
