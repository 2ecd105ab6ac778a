"""OTLP push: a real OTLP/HTTP exporter posting protobuf to a receiver on
loopback; the metrics arrive under the OTel names, units and attributes."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from exporter.collect import SnapshotStore, collect_once
from exporter.otlp import OtlpPusher
from exporter.render import RenderOptions
from exporter.sources.mock import MockSource
from tests.helpers import FixedClock


class _Receiver(BaseHTTPRequestHandler):
    requests: list[ExportMetricsServiceRequest] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        req = ExportMetricsServiceRequest()
        req.ParseFromString(body)
        type(self).requests.append((self.path, self.headers.get("Content-Type"), req))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_push_reaches_an_otlp_receiver_with_otel_names():
    _Receiver.requests = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        store = SnapshotStore()
        collect_once([MockSource(clock=FixedClock())], store)
        pusher = OtlpPusher(store, RenderOptions(node_name="node-a"),
                            f"http://127.0.0.1:{server.server_port}", interval=3600)
        assert pusher.force_flush()
        pusher.shutdown()
    finally:
        server.shutdown()
    assert _Receiver.requests, "no OTLP request received"
    path, ctype, req = _Receiver.requests[0]
    assert path == "/v1/metrics" and ctype == "application/x-protobuf"
    rm = req.resource_metrics[0]
    res = {a.key: a.value.string_value for a in rm.resource.attributes}
    assert res["k8s.node.name"] == "node-a" and res["service.name"] == "accelscope-exporter"
    metrics = {m.name: m for sm in rm.scope_metrics for m in sm.metrics}
    assert {"hw.gpu.memory.limit", "hw.energy", "hw.status", "accel.slice.memory.limit", "hw.power"} <= set(metrics)
    lim = metrics["hw.gpu.memory.limit"]
    assert lim.unit == "By"
    assert lim.sum.is_monotonic is False  # UpDownCounter
    values = {}
    for dp in lim.sum.data_points:
        attrs = {a.key: (a.value.string_value or a.value.int_value) for a in dp.attributes}
        values[attrs["hw.name"]] = dp.as_double or dp.as_int
        assert "k8s.node.name" in attrs and "hw.id" in attrs
    assert values == {"gpu0": 80 * 1024**3, "gpu1": 80 * 1024**3, "gpu2": 40 * 1024**3, "gpu3": 48 * 1024**3}
    energy = metrics["hw.energy"]
    assert energy.unit == "J" and energy.sum.is_monotonic is True
    assert metrics["hw.power"].gauge.data_points
    assert "accel.exporter.collect.errors" not in metrics  # self-metrics stay on /metrics
