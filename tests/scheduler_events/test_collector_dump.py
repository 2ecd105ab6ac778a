"""The collector end to end on the demo cluster dump (real HAMi annotation
values, events and FailedScheduling texts from the references):
explanations, metrics (checked by promtool), the HTTP API, `accelscope
explain` offline and online, and the same cluster served by the fake
Kubernetes API through the real `kubernetes` client."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import kubernetes
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from accelscope.cli import main
from accelscope.web import build_app
from scheduler_events.api import routes
from scheduler_events.decisions import DecisionEngine
from scheduler_events.explain import explain
from scheduler_events.outputs.log import DecisionLogger
from scheduler_events.outputs.metrics import CollectorMetrics
from scheduler_events.pipeline import Pipeline
from scheduler_events.sources.kube import KubeSource
from scheduler_events.sources.replay import ReplayStream
from tests.fakes.fake_kube_api import FakeKubeAPI
from tests.helpers import promtool_check_metrics

ROOT = Path(__file__).resolve().parents[2]
DUMP = ROOT / "scheduler_events" / "data" / "demo-cluster-dump.json"
NOW = 1795169500.0  # the dump's latest timestamp, 2026-11-20T10:11:40Z
GIB = 1024**3
RANKER = ("ml/ranker-2 is pending for 11m 40s. 24 scheduling attempts failed (hami-scheduler). 0 of 4 nodes fit. "
          "3 nodes: GPUs lack free memory (needs 20 GiB per GPU; the largest free is 16.4 GiB on gpu-node-a GPU 1). "
          "1 node: not enough nvidia.com/gpu. Trace 7d4bf9c21e3a4b5c8d6e0f1a2b3c4d5e.")


def _pipeline(lines=None):
    engine = DecisionEngine()
    pipe = Pipeline(engine)
    metrics = CollectorMetrics(engine, now=lambda: NOW, lock=pipe.lock)
    emit = (lambda name, level, **f: lines.append(f)) if lines is not None else (lambda *a, **k: None)
    pipe.outputs = [metrics, DecisionLogger(engine.device_usage, emit=emit)]
    return engine, pipe, metrics


def _replayed(lines=None):
    engine, pipe, metrics = _pipeline(lines)
    stream = ReplayStream(DUMP)
    pipe.feed_all(stream)
    assert stream.format == "dump" and not stream.errors
    return engine, pipe, metrics


def test_explanations_of_the_demo_dump():
    engine, _, _ = _replayed()
    assert engine.errors == {}
    usage = engine.device_usage()
    assert explain(engine.decision("ml", "ranker-2"), usage, NOW).text == RANKER
    assert explain(engine.decision("research", "train-8x"), usage, NOW).text == (
        "research/train-8x is pending for 9m 40s. 9 scheduling attempts failed (default-scheduler). "
        "0 of 4 nodes fit. 3 nodes: not enough nvidia.com/gpu. 1 node: untolerated taint {dedicated: infer}. "
        "Trace d4e5f6a700004000800000000000dd05.")
    assert explain(engine.decision("voice", "asr-0"), usage, NOW).text == (
        "voice/asr-0 was placed on gpu-node-a (GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448 15.6 GiB). "
        "It was bound 5s after creation, running after 30s. Trace 5c8316be0c88479c85fc475f3874d05f.")
    assert explain(engine.decision("batch", "stuck-alloc"), usage, NOW).text.startswith(
        "batch/stuck-alloc failed to start on gpu-node-b: the device plugin failed to allocate")
    # the CPU-only pod is not tracked
    assert engine.decision("shop", "web-0") is None


def test_decision_fields_of_the_pending_pod():
    engine, _, _ = _replayed()
    d = engine.decision("ml", "ranker-2")
    assert (d.outcome, d.scheduler, d.attempt, d.nodes_total, d.nodes_fit) == ("pending", "hami-scheduler", 24, 4, 0)
    assert d.message_source == "condition"
    assert [(r.code, r.source, r.nodes, r.devices) for r in d.rejections] == [
        ("CardInsufficientMemory", "hami", 3, 5), ("insufficient_resource", "kube-scheduler", 1, None)]
    assert d.rejections[0].node_names == ["gpu-node-a", "gpu-node-b", "gpu-node-c"]
    assert {v.node: v.fit for v in d.verdicts.values()} == {"gpu-node-a": False, "gpu-node-b": False,
                                                            "gpu-node-c": False}
    req = d.requests[0]
    assert (req.resource, req.count, req.memory_bytes, req.core_ratio) == ("nvidia.com/gpu", 1, 20480 * 1024**2, 0.6)
    assert d.trace_id == "7d4bf9c21e3a4b5c8d6e0f1a2b3c4d5e"


def test_one_log_line_per_decision():
    lines: list[dict] = []
    _replayed(lines)
    by_pod = {}
    for f in lines:
        by_pod.setdefault(f"{f['namespace']}/{f['pod']}", []).append(f["outcome"])
    assert by_pod == {"voice/asr-0": ["placed"], "voice/tts-1": ["placed"], "llm/chat-70b-0": ["placed"],
                      "llm/chat-70b-1": ["placed"], "infer/embed-3": ["placed"],
                      "batch/stuck-alloc": ["placed", "failed"], "research/train-8x": ["pending"],
                      "ml/ranker-2": ["pending"]}
    ranker = next(f for f in lines if f["pod"] == "ranker-2")
    assert ranker["message"] == RANKER
    assert ranker["trace_id"] == "7d4bf9c21e3a4b5c8d6e0f1a2b3c4d5e"
    assert ranker["reasons"][0] == {"code": "CardInsufficientMemory", "source": "hami", "nodes": 3, "devices": 5}


def _samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_exact_values_and_promtool():
    _, _, metrics = _replayed()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics)
    text = generate_latest(reg).decode()
    promtool_check_metrics(text)
    s = _samples(text)
    assert s[("accel_placement_attempts_total", (("result", "unschedulable"), ("scheduler", "hami-scheduler")))] == 24
    assert s[("accel_placement_rejections_total", (("reason", "CardInsufficientMemory"), ("reason_source", "hami"),
                                                   ("scheduler", "hami-scheduler")))] == 72  # 3 nodes x 24 attempts
    assert s[("accel_pending_pods", (("k8s_namespace_name", "ml"), ("reason", "CardInsufficientMemory"),
                                     ("scheduler", "hami-scheduler")))] == 1
    assert s[("accel_pending_oldest_seconds", (("k8s_namespace_name", "ml"), ("scheduler", "hami-scheduler")))] == 700
    dev = (("accel_index", "1"), ("hw_id", "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"),
           ("hw_model", "Tesla V100-PCIE-32GB"), ("hw_vendor", "nvidia"), ("k8s_node_name", "gpu-node-a"))
    assert s[("accel_device_memory_registered_bytes", dev)] == 32768 * 1024**2
    assert s[("accel_device_memory_allocated_bytes", dev)] == 16000 * 1024**2
    assert s[("accel_device_shared_containers", dev)] == 1
    assert s[("accel_device_share_limit", dev)] == 10
    h100 = (("accel_index", "0"), ("hw_id", "GPU-4f026841-54b1-eb28-d2c2-2339b9682ec1"),
            ("hw_model", "NVIDIA H100 80GB HBM3"), ("hw_vendor", "nvidia"), ("k8s_node_name", "gpu-node-b"))
    # chat-70b-0 (70000 MiB, 80%) plus the failed-allocation pod still holding 4000 MiB, as HAMi counts it
    assert s[("accel_device_memory_allocated_bytes", h100)] == 74000 * 1024**2
    assert s[("accel_device_cores_allocated_ratio", h100)] == 0.8
    assert s[("accel_placement_phase_duration_seconds_count", (("phase", "created_to_bound"),
                                                               ("scheduler", "hami-scheduler")))] == 6
    om = generate_openmetrics(reg).decode()
    assert '# {trace_id="5c8316be0c88479c85fc475f3874d05f"}' in om or 'trace_id="' in om


async def test_http_api_and_explain_against_it():
    _, pipe, metrics = _replayed()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics)
    app = build_app("collector", reg, ready=lambda: True, extra_routes=routes(pipe, now=lambda: NOW))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        r = await client.get("/api/v1/placements", params={"outcome": "pending"})
        body = await r.json()
        assert r.status == 200 and body["count"] == 2
        assert {d["name"] for d in body["items"]} == {"ranker-2", "train-8x"}
        r = await client.get("/api/v1/placements", params={"reason": "CardInsufficientMemory"})
        assert [d["name"] for d in (await r.json())["items"]] == ["ranker-2"]
        r = await client.get("/api/v1/placements", params={"node": "gpu-node-b"})
        assert {d["name"] for d in (await r.json())["items"]} == {"chat-70b-0", "chat-70b-1", "stuck-alloc"}
        r = await client.get("/api/v1/placements", params={"outcome": "bogus"})
        assert r.status == 400
        r = await client.get("/api/v1/placements/ml/ranker-2")
        body = await r.json()
        assert body["explanation"] == RANKER
        assert body["decision"]["primary_reason"] == "CardInsufficientMemory"
        assert body["facts"]["largest_free_memory_bytes"] == (32768 - 16000) * 1024**2
        r = await client.get("/api/v1/placements/ml/nope")
        assert r.status == 404
        url = str(client.make_url("/"))
        out = await _run_cli(["explain", "ml/ranker-2", "--url", url])
        assert out == (0, RANKER + "\n")
        code, text = await _run_cli(["explain", "ml/ranker-2", "--url", url, "--format", "json"])
        assert code == 0 and json.loads(text)["decision"]["attempt"] == 24


async def _run_cli(argv):
    import asyncio
    import contextlib
    import io

    buf = io.StringIO()

    def call():
        with contextlib.redirect_stdout(buf):
            return main(argv)

    code = await asyncio.to_thread(call)
    return code, buf.getvalue()


def test_explain_offline_from_the_dump(capsys):
    assert main(["explain", "ml/ranker-2", "--from", str(DUMP)]) == 0
    assert capsys.readouterr().out == RANKER + "\n"
    assert main(["explain", "ml/nobody", "--from", str(DUMP)]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["explain", "no-slash", "--from", str(DUMP)]) == 2


def test_explain_without_a_collector_is_a_clear_error(capsys):
    assert main(["explain", "ml/ranker-2", "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach a collector" in err and "--from FILE" in err


def test_collector_once_on_replay_passes_promtool(capsys):
    assert main(["collector", "--source", "replay", "--replay", str(DUMP), "--once", "--history", "off",
                 "--log-level", "error"]) == 0
    text = capsys.readouterr().out
    promtool_check_metrics(text)
    assert "accel_collector_synced 1.0" in text


def test_same_cluster_through_the_fake_api_and_the_real_client():
    """Serve the dump's objects from the fake API server and follow them
    with KubeSource (list + watch through the kubernetes client): the
    decisions equal those from the offline replay."""
    items = json.loads(DUMP.read_text())["items"]
    offline, _, _ = _replayed()
    engine, pipe, _ = _pipeline()
    with FakeKubeAPI() as api:
        for obj in items:
            kind = obj["kind"]
            res = {"Node": "nodes", "Pod": "pods", "Event": "events"}[kind]
            api.create(res, obj)
        client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=api.url))
        src = KubeSource(client, kinds=("Node", "Pod", "Event"), watch_timeout=5, rng=random.Random(1),
                         sleep=lambda s: time.sleep(0.01))
        stop = threading.Event()
        worker = threading.Thread(target=pipe.run_queue, args=(stop,), daemon=True)
        worker.start()
        src.start(pipe.submit)
        try:
            assert src.wait_synced(10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (pipe.backlog() or engine.orphans_pending()):
                time.sleep(0.02)
        finally:
            src.stop()
            stop.set()
            worker.join(5)
    for ns, name in [("ml", "ranker-2"), ("research", "train-8x"), ("voice", "asr-0"), ("batch", "stuck-alloc")]:
        a, b = engine.decision(ns, name), offline.decision(ns, name)
        assert (a.outcome, a.primary_reason, a.attempt, a.node, a.nodes_total) == \
               (b.outcome, b.primary_reason, b.attempt, b.node, b.nodes_total), f"{ns}/{name}"
        assert [(r.code, r.nodes) for r in a.rejections] == [(r.code, r.nodes) for r in b.rejections]


@pytest.fixture(autouse=True)
def _quiet_logs():
    import logging
    logging.getLogger("accelscope").setLevel(logging.ERROR)
    yield
    logging.getLogger("accelscope").setLevel(logging.INFO)


def test_pending_pod_deleted_is_counted_and_explained():
    engine, pipe, metrics = _replayed()
    pod = next(o for o in json.loads(DUMP.read_text())["items"] if o["metadata"]["name"] == "ranker-2")
    from scheduler_events.stream import ObjectEvent
    changes = pipe.feed(ObjectEvent("Pod", "DELETED", pod, NOW + 60))
    assert [c.kind for c in changes] == ["deleted"]
    d = engine.decision("ml", "ranker-2")
    assert d.outcome == "deleted" and d.finished == NOW + 60
    assert explain(d, {}, NOW + 60).text.startswith("ml/ranker-2 was deleted while pending after 12m 40s.")
    assert metrics.decisions[("hami-scheduler", "deleted")] == 1



def test_fragmentation_report_on_the_dump(capsys):
    assert main(["fragmentation", "report", "--from", str(DUMP), "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    c = body["cluster"]
    # free GPU per device = min(free core share, free memory share), HAMi register minus allocations:
    # V100 #0 0 (100% cores taken), V100 #1 1-16000/32768 -> 0.512, H100s 1-74000/81559 -> 0.093 and
    # 0.8 cores -> 0.2 vs 1-70000/81559 -> 0.142, T4 1-12000/15360 -> 0.219 (milli-GPU, rounded)
    assert c["free_gpus"] == pytest.approx(0.512 + 0.093 + 0.142 + 0.219, abs=1e-9)
    assert body["workload"]["source"] == "configured"  # 8 tracked pods < 20: the trace-derived mix
    assert body["blocked_by_fragmentation"] == ["ml/ranker-2"]
    assert 0 < c["fragmentation_rate"] <= 1
    assert [n["node"] for n in body["nodes"]][:1] == ["gpu-node-a"]
    assert set(body["repack"]) >= {"movable_pods", "recovered_gpus", "unplaced_pods"}
    assert main(["fragmentation", "report", "--from", str(DUMP)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Fragmentation rate ")
    assert "Pending pods blocked by fragmentation (their request fits the cluster's free total but no single node): 1: ml/ranker-2." in text


def test_explain_against_a_server_that_is_not_a_collector(capsys):
    import http.server

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"404 page not found")

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        assert main(["explain", "ml/ranker-2", "--url", f"127.0.0.1:{srv.server_port}"]) == 2
    finally:
        srv.shutdown()
    assert "is not an accelscope collector" in capsys.readouterr().err


def test_explain_never_quotes_a_free_amount_that_would_have_fit():
    """HAMi counts one reason per GPU: when the GPU with the most free memory
    failed on compute, saying "the largest free is 18 GiB" for a 10 GiB request
    would contradict the reason."""
    engine, _, _ = _replayed()
    d = engine.decision("ml", "ranker-2")

    class Usage:
        def largest_free(self, nodes, what):
            return (40 * GIB, "gpu-node-b", 1, "GPU-x") if what == "memory" else (0.1, "gpu-node-b", 1, "GPU-x")

    text = explain(d, Usage(), NOW).text
    assert "the largest free is 40 GiB" not in text
    assert "the GPUs with that much free memory, such as gpu-node-b GPU 1, fail on another reason" in text


async def test_api_list_says_when_it_is_truncated():
    _, pipe, metrics = _replayed()
    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics)
    app = build_app("collector", reg, ready=lambda: True, extra_routes=routes(pipe, now=lambda: NOW))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        body = await (await client.get("/api/v1/placements", params={"outcome": "pending", "limit": "1"})).json()
        assert (body["count"], body["total"], body["truncated"]) == (1, 2, True)
        body = await (await client.get("/api/v1/placements", params={"outcome": "pending"})).json()
        assert (body["count"], body["total"], body["truncated"]) == (2, 2, False)


def test_repack_estimate_is_bounded_inline():
    from scheduler_events.fragmentation_view import FragmentationView

    engine, _, _ = _replayed()
    view = FragmentationView(engine, min_pods=3)
    view.refresh()
    view.repack_budget = 1
    r = view.repack_estimate()
    assert "over the inline budget" in r["skipped"] and r["recovered_gpus"] == 0.0
    view.repack_budget = None
    assert "skipped" not in view.repack_estimate()
