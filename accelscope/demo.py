"""``accelscope demo``: the stack on its embedded default, on loopback.

* the **exporter** in this process: the mock node (whole GPUs, MIG and HAMi
  vGPU slices with tenants) plus a replay of a real A100 MIG capture;
* the **collector** in a child process, replaying the demo HAMi cluster dump
  (``scheduler_events/data/demo-cluster-dump.json``).

The collector listens on the exporter's port + 1.  Both ports are checked
before anything starts; the child dies with the parent (Linux
``PR_SET_PDEATHSIG``) and its temporary history is removed on exit.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import resources

from accelscope.config import ConfigError
from accelscope.logs import setup_logging
from accelscope.web import parse_listen


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


def _wait_ready(url: str, child: subprocess.Popen, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _demo_inventory() -> dict:
    from exporter.sources.mock import DEFAULT_INVENTORY

    inv = dict(DEFAULT_INVENTORY)
    inv["first_index"] = 1  # the replayed A100 is gpu0
    return inv


def run_demo(listen: str, *, once: bool = False) -> int:
    """Run the demo until Ctrl-C (``once``: print one scrape of each and exit)."""
    from exporter.main import add_arguments, run

    capture = resources.files("exporter") / "data" / "demo"
    dump = str(resources.files("scheduler_events") / "data" / "demo-cluster-dump.json")
    host, port = parse_listen(listen)
    collector_listen = f"{host}:{port + 1}"
    p = argparse.ArgumentParser()
    add_arguments(p)
    argv = ["--source", "mock,replay", "--replay", str(capture), "--listen", listen,
            "--node-name", "demo-node", "--interval", "5", "--log-format", "text"]
    if once:
        subprocess.run([sys.executable, "-m", "accelscope.cli", "collector", "--source", "replay", "--replay", dump,
                        "--once", "--history", "off", "--log-level", "error"], check=True)
        args = p.parse_args(argv + ["--once"])
        args.config_sections = {"mock": _demo_inventory()}
        setup_logging("warning", "text")
        return run(args)
    for h, pt in ((host, port), (host, port + 1)):
        if not _port_free(h, pt):
            raise ConfigError(f"port {h}:{pt} is already in use (an earlier demo still running?); stop it, or "
                              f"run 'accelscope demo --listen {h}:<free port>' (the collector takes that port + 1)")
    args = p.parse_args(argv)
    args.config_sections = {"mock": _demo_inventory()}
    setup_logging("info", "text")
    with tempfile.TemporaryDirectory(prefix="accelscope-demo-") as state:
        child = subprocess.Popen(
            [sys.executable, "-m", "accelscope.cli", "collector", "--source", "replay", "--replay", dump,
             "--listen", collector_listen, "--history", f"{state}/history.db", "--log-format", "text",
             "--log-level", "warning"], preexec_fn=_die_with_parent)  # noqa: PLW1509 - only sets PDEATHSIG
        try:
            if not _wait_ready(f"http://{collector_listen}/readyz", child):
                raise ConfigError("the demo collector did not start (see its error above)")
            print(f"accelscope demo\n"
                  f"  exporter (mock node + replayed A100 MIG capture):  curl http://{host}:{port}/metrics\n"
                  f"  collector (replayed HAMi cluster dump):            curl http://{collector_listen}/metrics\n"
                  f"                                                     curl http://{collector_listen}/api/v1/placements\n"
                  f"  why is ml/ranker-2 pending?   .venv/bin/accelscope explain ml/ranker-2 --url http://{collector_listen}\n"
                  f"  fragmentation:                 .venv/bin/accelscope fragmentation report --url http://{collector_listen}\n"
                  f"  (Ctrl-C to stop)", flush=True)
            return run(args)
        finally:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
