"""End to end with real servers on loopback: Prometheus (Debian package
``prometheus``) scrapes the exporter and the collector while they serve the
demo simulation, with the generated rules loaded (alert ``for`` shortened);
every panel query of every dashboard returns data through Prometheus' HTTP
API; the fragmentation alert fires and reaches Alertmanager (Debian package
``prometheus-alertmanager``), checked through Alertmanager's API.

`make test` installs both packages when missing (as root); the test fails,
not skips, when a binary is absent, so CI cannot pass without running it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from accelscope.demo import exporter_inventory, simulate_stream
from alerts.config import AlertConfig
from alerts.generate import rule_file_text
from dashboards.generate import expand_variables, panel_queries

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(*names: str) -> str:
    for n in names:
        path = shutil.which(n) or (f"/usr/bin/{n}" if os.path.exists(f"/usr/bin/{n}") else None)
        if path:
            return path
    pytest.fail(f"none of {names} found: run 'make test' as root (it installs the Debian packages "
                "prometheus and prometheus-alertmanager) or install them")


def _get(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def _wait(pred, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(step)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    prometheus = _binary("prometheus")
    alertmanager = _binary("prometheus-alertmanager", "alertmanager")
    # 1. the demo simulation, already in the past so the collector takes it in at once
    stream = tmp / "cluster.jsonl"
    _, result = simulate_stream(stream, start=time.time() - 3600)
    node, inventory = exporter_inventory(result, stream)
    (tmp / "exporter.yaml").write_text(yaml.safe_dump({"exporter": {"mock": inventory}}))
    ports = {k: _free_port() for k in ("exporter", "collector", "prometheus", "alertmanager")}
    procs: list[subprocess.Popen] = []
    logs = {}

    def start(name: str, argv: list[str]) -> None:
        logs[name] = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed below
        procs.append(subprocess.Popen(argv, stdout=logs[name], stderr=subprocess.STDOUT, cwd=tmp))

    py = [sys.executable, "-m", "accelscope.cli"]
    start("exporter", py + ["exporter", "--config", str(tmp / "exporter.yaml"), "--source", "mock,replay",
                            "--replay", str(ROOT / "exporter" / "data" / "demo"), "--node-name", node,
                            "--pod-uid-label", "--interval", "1", "--listen", f"127.0.0.1:{ports['exporter']}",
                            "--log-level", "warning"])
    start("collector", py + ["collector", "--source", "replay", "--replay", str(stream), "--history", "off",
                             "--listen", f"127.0.0.1:{ports['collector']}", "--log-level", "warning"])
    (tmp / "am.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "null", "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "null"}]}))
    start("alertmanager", [alertmanager, f"--config.file={tmp / 'am.yml'}", f"--storage.path={tmp / 'am'}",
                           f"--web.listen-address=127.0.0.1:{ports['alertmanager']}", "--cluster.listen-address="])
    cfg = AlertConfig.from_dict({"for_override": "2s", "group_interval": "1s", "fragmentation_min_free_gpus": 0.5})
    (tmp / "rules.yaml").write_text(rule_file_text(cfg))
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "rules.yaml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]},
        "scrape_configs": [
            {"job_name": "accelscope-exporter", "static_configs": [{"targets": [f"127.0.0.1:{ports['exporter']}"]}]},
            {"job_name": "accelscope-collector",
             "static_configs": [{"targets": [f"127.0.0.1:{ports['collector']}"]}]},
        ]}))
    start("prometheus", [prometheus, f"--config.file={tmp / 'prometheus.yml'}",
                         f"--storage.tsdb.path={tmp / 'tsdb'}",
                         f"--web.listen-address=127.0.0.1:{ports['prometheus']}"])
    base = f"http://127.0.0.1:{ports['prometheus']}"
    try:
        def targets_up():
            active = _get(f"{base}/api/v1/targets")["data"]["activeTargets"]
            return len(active) == 2 and all(t["health"] == "up" for t in active)
        _wait(targets_up, 60, "both scrape targets up")
        _wait(lambda: [r for r in _query(base, "accel_collector_synced") if r["value"][1] == "1"], 60,
              "the collector to take in the replay")
        time.sleep(6)  # a few scrapes, so rate() and increase() have two samples
        yield {"prometheus": base, "alertmanager": f"http://127.0.0.1:{ports['alertmanager']}", "tmp": tmp}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs.values():
            f.close()


def _query(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = _get(url)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_every_panel_query_returns_data(stack):
    empty, errors = [], []
    queries = panel_queries()
    assert len(queries) > 100
    for uid, title, expr in queries:
        q = expand_variables(expr, rate_interval="1m", interval="1m", range_="5m")
        try:
            if not _query(stack["prometheus"], q):
                empty.append(f"{uid} / {title}: {q}")
        except (AssertionError, OSError) as exc:
            errors.append(f"{uid} / {title}: {exc}")
    assert not errors, "queries Prometheus rejected:\n" + "\n".join(errors)
    assert not empty, f"{len(empty)} of {len(queries)} panel queries returned no data:\n" + "\n".join(empty)


def test_fragmentation_alert_fires_and_reaches_alertmanager(stack):
    def firing():
        alerts = _get(f"{stack['prometheus']}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "AccelFragmentationHigh" and a["state"] == "firing"]
    assert _wait(firing, 60, "AccelFragmentationHigh firing in Prometheus")

    def in_am():
        url = f"{stack['alertmanager']}/api/v2/alerts?" + urllib.parse.urlencode(
            {"filter": 'alertname="AccelFragmentationHigh"'})
        got = _get(url)
        return [a for a in got if a["status"]["state"] in ("active", "suppressed")]
    received = _wait(in_am, 60, "AccelFragmentationHigh in Alertmanager")
    severities = {a["labels"]["severity"] for a in received}
    assert "critical" in severities or "warning" in severities
    a = received[0]
    assert a["annotations"]["runbook_url"].endswith("#accelfragmentationhigh")
    assert a["annotations"]["summary"] and "{{" not in a["annotations"]["summary"]
