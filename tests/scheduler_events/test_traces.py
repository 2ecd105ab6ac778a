"""Placement traces: the real OTLP/HTTP span exporter posts protobuf to a
receiver on loopback, which decodes ``ExportTraceServiceRequest``; the
traces are checked against the decisions the engine rebuilt from the HAMi
cluster dump."""

from __future__ import annotations

import copy
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from scheduler_events.decisions import Change, DecisionEngine
from scheduler_events.model import NodeVerdict, PlacementDecision, Rejection
from scheduler_events.outputs.traces import PlacementTracer, to_ns
from scheduler_events.sources.replay import ReplayStream
from scheduler_events.stream import ObjectEvent

DUMP = Path(__file__).resolve().parents[2] / "scheduler_events" / "data" / "demo-cluster-dump.json"


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        self.server.received.append((self.path, self.headers.get("Content-Type"), req))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _value(v):
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def _attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


def _received(server):
    """(resource attributes, spans) of every request; every request must be
    a protobuf POST to /v1/traces."""
    resources, spans = [], []
    for path, ctype, req in server.received:
        assert path == "/v1/traces" and ctype == "application/x-protobuf"
        for rs in req.resource_spans:
            resources.append(_attrs(rs.resource.attributes))
            for ss in rs.scope_spans:
                assert ss.scope.name == "accelscope.scheduler_events"
                spans.extend(ss.spans)
    return resources, spans


def _by_trace(spans) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {}
    for s in spans:
        out.setdefault(s.trace_id.hex(), []).append(s)
    return out


def _named(spans) -> dict[str, Span]:
    names = [s.name for s in spans]
    assert len(names) == len(set(names)), names
    return {s.name: s for s in spans}


def _tracer(server, **kw) -> PlacementTracer:
    return PlacementTracer(f"http://127.0.0.1:{server.server_port}", service_name="collector-test",
                           cluster_name="lab-1", resource_attributes={"deployment.environment": "test"}, **kw)


def _replay(tracer: PlacementTracer) -> DecisionEngine:
    engine = DecisionEngine()
    for ev in ReplayStream(DUMP):
        for ch in engine.apply(ev):
            tracer.on_change(ch)
    return engine


def test_dump_placements_reach_an_otlp_receiver(receiver):
    tracer = _tracer(receiver)
    engine = _replay(tracer)
    assert tracer.force_flush(5000)
    resources, spans = _received(receiver)
    assert resources and all(r["service.name"] == "collector-test" and r["k8s.cluster.name"] == "lab-1"
                             and r["deployment.environment"] == "test" and r["service.version"]
                             for r in resources)
    traces = _by_trace(spans)
    placed = {"voice/asr-0", "voice/tts-1", "llm/chat-70b-0", "llm/chat-70b-1", "infer/embed-3"}
    # one trace per running or failed placement; the pending pods have none yet
    expected = {engine.decision(*k.split("/")).trace_id for k in placed | {"batch/stuck-alloc"}}
    assert set(traces) == expected
    assert tracer.traces == 6 and not tracer.errors
    for tid, ss in traces.items():
        roots = [s for s in ss if not s.parent_span_id]
        assert len(roots) == 1
        assert all(s.parent_span_id == roots[0].span_id for s in ss if s is not roots[0])
        assert len({s.span_id for s in ss}) == len(ss)

    # voice/asr-0: placed by HAMi on gpu-node-a and running
    asr = engine.decision("voice", "asr-0")
    assert asr.uid == "5c8316be-0c88-479c-85fc-475f3874d05f"
    tid = "5c8316be0c88479c85fc475f3874d05f"
    assert tid == asr.uid.replace("-", "")
    spans_asr = _named(traces[tid])
    assert set(spans_asr) == {"placement", "pending", "filter", "bind", "allocate"}
    root = spans_asr["placement"]
    assert root.kind == Span.SPAN_KIND_INTERNAL
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (asr.created * 10**9, asr.running * 10**9)
    assert root.start_time_unix_nano == 1_795_168_860 * 10**9
    expected_times = {
        "pending": (asr.created, asr.filtered),
        "filter": (asr.filtered, asr.bound),
        "bind": (asr.bound, asr.allocated),
        "allocate": (asr.allocated, asr.running),
    }
    for name, (start, end) in expected_times.items():
        s = spans_asr[name]
        assert (s.start_time_unix_nano, s.end_time_unix_nano) == (int(start) * 10**9, int(end) * 10**9), name
        assert s.status.code == Status.STATUS_CODE_UNSET
        assert "accelscope.clock_skew" not in _attrs(s.attributes)
    assert _attrs(root.attributes) == {
        "k8s.pod.name": "asr-0",
        "k8s.pod.uid": asr.uid,
        "k8s.namespace.name": "voice",
        "k8s.node.name": "gpu-node-a",
        "k8s.statefulset.name": "asr",
        "accelscope.scheduler": "hami-scheduler",
        "accelscope.reporter": "hami-scheduler",
        "accelscope.outcome": "placed",
        "accelscope.attempts": asr.attempt,
        "accelscope.devices": ["GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"],
        "accelscope.nodes.total": 3,
        "accelscope.nodes.fit": 1,
    }
    assert root.status.code == Status.STATUS_CODE_OK
    filt = spans_asr["filter"]
    assert [e.name for e in filt.events] == ["node.evaluated"]
    ev = filt.events[0]
    assert ev.time_unix_nano == 1_795_168_864 * 10**9
    assert _attrs(ev.attributes) == {"k8s.node.name": "gpu-node-a", "accelscope.node.fit": True,
                                     "accelscope.node.score": 0.98, "accelscope.node.reasons": []}
    assert not spans_asr["pending"].events

    # batch/stuck-alloc: bound on gpu-node-b, HAMi allocation failed
    stuck = engine.decision("batch", "stuck-alloc")
    spans_stuck = _named(traces[stuck.trace_id])
    assert set(spans_stuck) == {"placement", "pending", "filter", "bind"}
    root = spans_stuck["placement"]
    assert root.status.code == Status.STATUS_CODE_ERROR
    assert root.status.message == "AllocateFailed"
    ra = _attrs(root.attributes)
    assert ra["accelscope.outcome"] == "failed" and ra["accelscope.primary_reason"] == "AllocateFailed"
    assert ra["k8s.node.name"] == "gpu-node-b"
    assert ra["accelscope.devices"] == ["GPU-4f026841-54b1-eb28-d2c2-2339b9682ec1"]
    # the bind phase never completed: it ends at the failure, in error
    bind = spans_stuck["bind"]
    assert bind.start_time_unix_nano == int(stuck.bound) * 10**9
    assert bind.end_time_unix_nano == root.end_time_unix_nano == 1_795_169_500 * 10**9
    assert bind.status.code == Status.STATUS_CODE_ERROR and bind.status.message == "AllocateFailed"
    assert spans_stuck["filter"].status.code == Status.STATUS_CODE_UNSET

    # every other running placement: five spans whose times are the decision's
    for key in placed:
        d = engine.decision(*key.split("/"))
        ss = _named(traces[d.trace_id])
        assert len(ss) == 5
        r = ss["placement"]
        assert (r.start_time_unix_nano, r.end_time_unix_nano) == (to_ns(d.created), to_ns(d.running))
        assert ss["allocate"].end_time_unix_nano == to_ns(d.running)
        assert r.status.code == Status.STATUS_CODE_OK

    # nothing is traced twice: replaying the changes again adds nothing
    n = len(spans)
    for d in engine.decisions():
        if d.running is not None:
            tracer.on_change(Change("running", d, d.running))
    tracer.force_flush(5000)
    assert len(_received(receiver)[1]) == n
    tracer.shutdown()


def test_pending_pod_is_traced_when_deleted(receiver):
    tracer = _tracer(receiver)
    engine = _replay(tracer)
    ranker = engine.decision("ml", "ranker-2")
    assert ranker.outcome == "pending"
    assert tracer.force_flush(5000)
    assert ranker.trace_id not in _by_trace(_received(receiver)[1])

    pod = next(i for i in json.loads(DUMP.read_text())["items"]
               if i["kind"] == "Pod" and i["metadata"]["name"] == "ranker-2")
    deleted_at = 1_795_169_600.25
    changes = engine.apply(ObjectEvent("Pod", "DELETED", copy.deepcopy(pod), received=deleted_at))
    assert [c.kind for c in changes] == ["deleted"]
    for ch in changes:
        tracer.on_change(ch)
    assert tracer.force_flush(5000)
    traces = _by_trace(_received(receiver)[1])
    assert ranker.trace_id == "7d4bf9c21e3a4b5c8d6e0f1a2b3c4d5e"
    spans = _named(traces[ranker.trace_id])
    assert set(spans) == {"placement", "pending"}
    root, pending = spans["placement"], spans["pending"]
    assert root.start_time_unix_nano == pending.start_time_unix_nano == 1_795_168_800 * 10**9
    assert root.end_time_unix_nano == pending.end_time_unix_nano == 1_795_169_600 * 10**9 + 250_000_000
    assert root.status.code == Status.STATUS_CODE_ERROR
    assert root.status.message.startswith("CardInsufficientMemory: 0/4 nodes are available")
    assert pending.status.code == Status.STATUS_CODE_ERROR
    ra = _attrs(root.attributes)
    assert ra["accelscope.outcome"] == "deleted"
    assert ra["accelscope.primary_reason"] == "CardInsufficientMemory"
    assert ra["accelscope.attempts"] == ranker.attempt
    assert ra["k8s.statefulset.name"] == "ranker"
    assert "k8s.node.name" not in ra and "accelscope.devices" not in ra
    assert (ra["accelscope.nodes.total"], ra["accelscope.nodes.fit"]) == (4, 0)

    rejected = [_attrs(e.attributes) for e in pending.events if e.name == "placement.rejected"]
    assert rejected == [
        {"accelscope.reason.code": "CardInsufficientMemory", "accelscope.reason.source": "hami",
         "accelscope.reason.nodes": 3, "accelscope.reason.devices": 5,
         "accelscope.reason.node_names": ["gpu-node-a", "gpu-node-b", "gpu-node-c"]},
        {"accelscope.reason.code": "insufficient_resource", "accelscope.reason.source": "kube-scheduler",
         "accelscope.reason.nodes": 1, "accelscope.reason.detail": "nvidia.com/gpu"},
    ]
    nodes = [_attrs(e.attributes) for e in pending.events if e.name == "node.evaluated"]
    assert nodes == [{"k8s.node.name": n, "accelscope.node.fit": False,
                      "accelscope.node.reasons": ["CardInsufficientMemory"]}
                     for n in ("gpu-node-a", "gpu-node-b", "gpu-node-c")]
    assert all(e.time_unix_nano == pending.end_time_unix_nano for e in pending.events)
    assert len(pending.events) == 5
    tracer.shutdown()


def test_clock_skew_is_clamped_and_marked(receiver):
    d = PlacementDecision(uid="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", namespace="ns", name="skewed",
                          scheduler="hami-scheduler", created=1000.0, filtered=999.5, bound=1001.0,
                          allocated=1000.75, running=1002.0, outcome="placed", node="n1", attempt=1)
    d.verdicts["n1"] = NodeVerdict("n1", True, 7.5)
    d.verdicts["n2"] = NodeVerdict("n2", False, reasons=[Rejection("CardTypeMismatch", "hami", 1)])
    tracer = _tracer(receiver)
    tracer.on_change(Change("running", d, d.running))
    assert tracer.force_flush(5000)
    _, spans = _received(receiver)
    assert {s.trace_id.hex() for s in spans} == {"0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d"}
    ss = _named(spans)
    assert set(ss) == {"placement", "pending", "filter", "bind", "allocate"}
    # filtered before created: pending is clamped to zero length at created
    pending = ss["pending"]
    assert pending.start_time_unix_nano == pending.end_time_unix_nano == 1000 * 10**9
    assert _attrs(pending.attributes) == {"accelscope.clock_skew": True}
    # allocated before bound: bind clamped at bound
    bind = ss["bind"]
    assert bind.start_time_unix_nano == bind.end_time_unix_nano == 1001 * 10**9
    assert _attrs(bind.attributes) == {"accelscope.clock_skew": True}
    # the others are taken as they are
    assert (ss["filter"].start_time_unix_nano, ss["filter"].end_time_unix_nano) == (999_500_000_000, 1001 * 10**9)
    assert (ss["allocate"].start_time_unix_nano, ss["allocate"].end_time_unix_nano) == (1_000_750_000_000,
                                                                                      1002 * 10**9)
    assert "accelscope.clock_skew" not in _attrs(ss["filter"].attributes)
    assert "accelscope.clock_skew" not in _attrs(ss["placement"].attributes)
    # node events: fit first, on the filter span at its start
    events = [(e.name, e.time_unix_nano, _attrs(e.attributes)) for e in ss["filter"].events]
    assert events == [
        ("node.evaluated", 999_500_000_000, {"k8s.node.name": "n1", "accelscope.node.fit": True,
                                             "accelscope.node.score": 7.5, "accelscope.node.reasons": []}),
        ("node.evaluated", 999_500_000_000, {"k8s.node.name": "n2", "accelscope.node.fit": False,
                                             "accelscope.node.reasons": ["CardTypeMismatch"]}),
    ]
    tracer.shutdown()


def test_running_before_created_clamps_the_root(receiver):
    d = PlacementDecision(uid="11111111-2222-4333-8444-555555555555", namespace="ns", name="early",
                          created=2000.0, bound=1990.0, running=1995.0, outcome="placed", node="n1")
    tracer = _tracer(receiver)
    tracer.on_change(Change("placed", d, d.bound))  # not terminal: ignored
    tracer.on_change(Change("running", d, d.running))
    assert tracer.force_flush(5000)
    ss = _named(_received(receiver)[1])
    # pending ends at bound (no filter), clamped; no allocated -> no bind/allocate span
    assert set(ss) == {"placement", "pending"}
    root = ss["placement"]
    assert root.start_time_unix_nano == root.end_time_unix_nano == 2000 * 10**9
    assert _attrs(root.attributes)["accelscope.clock_skew"] is True
    assert _attrs(ss["pending"].attributes)["accelscope.clock_skew"] is True
    tracer.shutdown()


def test_trace_waits_for_late_events_and_is_emitted_once():
    """Built ``delay_s`` after the terminal change (so late Events land
    first), on a later change or tick; a UID is traced once."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    now = [100.0]
    mem = InMemorySpanExporter()
    tracer = PlacementTracer(exporter=mem, delay_s=5.0, clock=lambda: now[0])
    d = PlacementDecision(uid="22222222-3333-4444-8555-666666666666", namespace="ns", name="late",
                          created=10.0, filtered=11.0, bound=12.0, allocated=13.0, running=14.0,
                          outcome="placed", node="n1")
    tracer.on_change(Change("running", d, d.running))
    tracer.on_change(Change("running", d, d.running))
    tracer.tick()
    assert tracer.traces == 0
    d.verdicts["n1"] = NodeVerdict("n1", True, 1.0)  # the FilteringSucceed event arrives late
    now[0] = 105.0
    assert tracer.tick() == 1
    tracer.on_change(Change("failed", d, 20.0))
    assert tracer.force_flush(5000)
    spans = mem.get_finished_spans()
    assert tracer.traces == 1 and len(spans) == 5
    assert {s.context.trace_id for s in spans} == {0x22222222333344448555666666666666}
    filt = next(s for s in spans if s.name == "filter")
    assert [e.attributes["k8s.node.name"] for e in filt.events] == ["n1"]
    tracer.shutdown()
