"""Optional OTLP/HTTP push of the exporter's data under the OTel names.

The same snapshots that feed ``/metrics`` are observed by OpenTelemetry SDK
observable instruments named by ``MetricSpec.otel_name`` (``hw.gpu.memory.usage``,
``hw.energy``...), with the spec's UCUM unit and OTel attribute names
(``hw.id``, ``k8s.pod.name``; map in ``exporter.schema.OTEL_ATTRIBUTES``).
Empty label values are left out.  ``k8s.node.name`` and ``service.name`` are
resource attributes.  Self-metrics (no ``otel_name``) are not pushed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from accelscope import __version__
from exporter import schema as S
from exporter.collect import SnapshotStore
from exporter.render import RenderOptions, render_families


class OtlpPusher:
    """Push the store's latest data every ``interval`` seconds.

    ``endpoint``: OTLP/HTTP base URL (``http://collector:4318``); ``/v1/metrics``
    is appended unless present.  ``exporter``: inject a MetricExporter
    (tests); default OTLPMetricExporter over HTTP/protobuf.
    """

    def __init__(self, store: SnapshotStore, opts: RenderOptions, endpoint: str, interval: float = 30.0,
                 exporter: MetricExporter | None = None) -> None:
        self.store = store
        self.opts = opts
        if exporter is None:
            url = endpoint.rstrip("/")
            if not url.endswith("/v1/metrics"):
                url += "/v1/metrics"
            exporter = OTLPMetricExporter(endpoint=url)
        self._reader = PeriodicExportingMetricReader(exporter, export_interval_millis=interval * 1000)
        attrs = {"service.name": "accelscope-exporter", "service.version": __version__}
        if opts.node_name:
            attrs["k8s.node.name"] = opts.node_name
        self.provider = MeterProvider(resource=Resource.create(attrs), metric_readers=[self._reader])
        self._lock = threading.Lock()
        self._cache_version = -1
        self._cache: dict[str, list[Observation]] = {}
        meter = self.provider.get_meter("accelscope.exporter", __version__)
        for spec in S.ALL:
            if spec.otel_name is None:
                continue
            cb = self._callback(spec.name)
            unit = spec.unit
            if spec.otel_instrument == "counter":
                meter.create_observable_counter(spec.otel_name, [cb], unit=unit, description=spec.help)
            elif spec.otel_instrument == "updowncounter":
                meter.create_observable_up_down_counter(spec.otel_name, [cb], unit=unit, description=spec.help)
            else:
                meter.create_observable_gauge(spec.otel_name, [cb], unit=unit, description=spec.help)

    def _observations(self) -> dict[str, list[Observation]]:
        with self._lock:
            if self._cache_version != self.store.version:
                out: dict[str, list[Observation]] = {}
                for fam in render_families(self.store.snapshots(), [], self.opts):
                    for sample in fam.samples:
                        name = sample.name
                        if name.endswith("_created"):
                            continue
                        attrs = {S.OTEL_ATTRIBUTES.get(k, k): v for k, v in sample.labels.items() if v != ""}
                        out.setdefault(name, []).append(Observation(sample.value, attrs))
                self._cache = out
                self._cache_version = self.store.version
            return self._cache

    def _callback(self, prom_name: str):
        def cb(_: CallbackOptions) -> Iterable[Observation]:
            return list(self._observations().get(prom_name, ()))
        return cb

    def start(self) -> None:
        """Nothing to do: the periodic reader starts with the provider."""

    def force_flush(self) -> bool:
        return self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()
