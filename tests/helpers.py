"""Helpers shared by tests: render a store to text, run promtool."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.collect import SnapshotStore, collect_once
from exporter.main import make_registry
from exporter.render import RenderOptions


class FixedClock:
    """A settable clock (Unix seconds) for sources and the runtime."""

    def __init__(self, t: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.t = t

    def __call__(self) -> float:
        return self.t


def scrape(sources, opts: RenderOptions | None = None, *, openmetrics: bool = False,
           zero_durations: bool = True) -> str:
    """Collect each source once and return the exposition text."""
    tick = FixedClock(0.0)
    store = SnapshotStore(clock=tick)
    collect_once(sources, store, clock=tick if zero_durations else __import__("time").monotonic)
    reg = make_registry(store, opts or RenderOptions(node_name="node-a"))
    return (generate_openmetrics(reg) if openmetrics else generate_latest(reg)).decode()


def promtool_check_metrics(text: str) -> str:
    """Run ``promtool check metrics`` on exposition text; fail the test on
    errors; return its output (lint warnings)."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: run 'make test' (it installs the Debian package 'prometheus')")
    res = subprocess.run([exe, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    out = (res.stdout + res.stderr).decode()
    assert res.returncode == 0, out
    return out
