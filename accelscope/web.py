"""The aiohttp server both agents use: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` serves the Prometheus text format (0.0.4), or OpenMetrics when
the scraper's ``Accept`` header asks for it, gzip-compressed when
``Accept-Encoding`` allows.  The body is rendered from a prometheus_client
registry and cached per content type until ``cache_key()`` changes, so a
scrape between two collection cycles only copies bytes.

TLS and basic auth come from an exporter-toolkit web-config file
(:mod:`accelscope.webconfig`).
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from accelscope import __version__

#: where build_app stores the MetricsEndpoint on the application
METRICS_ENDPOINT = web.AppKey("metrics_endpoint", object)

LANDING = """<!doctype html>
<html><head><title>accelscope {name}</title></head>
<body><h1>accelscope {name} {version}</h1>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/healthz">/healthz</a></li>
<li><a href="/readyz">/readyz</a></li>{extra}</ul></body></html>
"""


class _Frozen:
    """A registry stand-in that yields families collected once."""

    def __init__(self, families: list) -> None:
        self._families = families

    def collect(self):
        return self._families


class MetricsEndpoint:
    """Renders a registry, caching bytes per (cache key, content type, gzip).

    ``cache_key``: returns a value that changes whenever the data changes
    (for the exporter: the snapshot store's version).  ``None`` disables
    caching.  On a change the registry is collected once and every requested
    encoding is serialised from that one set of families.  ``refresh()``
    renders the recently requested variants ahead of the next scrape (the
    agents call it from a worker thread after each collection), so a scrape
    normally only copies bytes.  Thread-safe.
    """

    def __init__(self, registry: CollectorRegistry, cache_key: Callable[[], Hashable] | None = None,
                 max_staleness: float = 0.0) -> None:
        self.registry = registry
        self.cache_key = cache_key
        #: serve a cached body up to this many seconds old even if the data moved on
        #: (the collector's data changes with every event; rendering a large cluster takes seconds)
        self.max_staleness = max_staleness
        self.last_render_s = 0.0
        self._cache: dict[tuple[str, bool], tuple[Hashable, bytes, float]] = {}
        self._families: tuple[Hashable, _Frozen] | None = None
        self._recent: dict[tuple[str, bool], None] = {}
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()

    def _frozen(self, key: Hashable) -> _Frozen:
        with self._lock:
            if self._families is not None and self._families[0] == key:
                return self._families[1]
        frozen = _Frozen(list(self.registry.collect()))
        with self._lock:
            self._families = (key, frozen)
        return frozen

    def render(self, accept: str | None, accept_encoding: str | None) -> tuple[bytes, str, bool]:
        """Return ``(body, content_type, gzipped)`` for the given request headers."""
        encoder, content_type = choose_encoder(accept or "")
        use_gzip = "gzip" in (accept_encoding or "")
        ck = (content_type, use_gzip)
        if self.cache_key is None:
            body = encoder(self.registry)
            return (gzip.compress(body, compresslevel=5) if use_gzip else body), content_type, use_gzip
        key = self.cache_key()
        with self._lock:
            hit = self._cache.get(ck)
            self._recent[ck] = None
            while len(self._recent) > 4:
                self._recent.pop(next(iter(self._recent)))
        if hit is not None and (hit[0] == key or time.monotonic() - hit[2] < self.max_staleness):
            return hit[1], content_type, use_gzip
        with self._render_lock:
            t0 = time.monotonic()
            body = encoder(self._frozen(key))
            if use_gzip:
                body = gzip.compress(body, compresslevel=5)
            self.last_render_s = time.monotonic() - t0
        with self._lock:
            self._cache[ck] = (key, body, time.monotonic())
        return body, content_type, use_gzip

    def refresh(self) -> None:
        """Render every recently requested variant for the current data."""
        if self.cache_key is None:
            return
        with self._lock:
            variants = list(self._recent)
            self._cache.clear()  # a refresh re-renders; stale bodies must not be served instead
        for content_type, use_gzip in variants:
            accept = content_type if "openmetrics" in content_type else ""
            self.render(accept, "gzip" if use_gzip else "")

    async def handle(self, request: web.Request) -> web.Response:
        body, content_type, gz = self.render(request.headers.get("Accept"), request.headers.get("Accept-Encoding"))
        headers = {"Content-Type": content_type}
        if gz:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)


async def refresh_loop(endpoint: MetricsEndpoint, version: Callable[[], Hashable], stop: "asyncio.Event",
                       poll: float = 0.2) -> None:
    """Until ``stop`` is set: when ``version()`` changes, pre-render the
    endpoint's recent variants in a worker thread.  After a render it waits
    at least twice as long as the render took (and ``max_staleness``), so a
    large cluster's seconds-long render never takes more than a third of a core."""
    seen = None
    while not stop.is_set():
        v = version()
        wait = poll
        if v != seen:
            seen = v
            await asyncio.to_thread(endpoint.refresh)
            wait = max(poll, 2 * endpoint.last_render_s, endpoint.max_staleness)
        try:
            await asyncio.wait_for(stop.wait(), wait)
        except asyncio.TimeoutError:
            pass


def build_app(name: str, registry: CollectorRegistry, *, ready: Callable[[], bool],
              cache_key: Callable[[], Hashable] | None = None, max_staleness: float = 0.0,
              middlewares: Iterable[Any] = (),
              extra_routes: Iterable[web.RouteDef] = (),
              links: Iterable[str] = ()) -> web.Application:
    """Create the aiohttp application.

    ``name``: the agent (``exporter``, ``collector``) for the landing page.
    ``ready``: ``/readyz`` answers 200 when it returns True, else 503.
    ``middlewares``: e.g. the web-config auth middleware.
    """
    endpoint = MetricsEndpoint(registry, cache_key, max_staleness)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: no collection cycle has finished yet\n")

    extra = "".join(f'<li><a href="{p}">{p}</a></li>' for p in links)

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=LANDING.format(name=name, version=__version__, extra=extra),
                            content_type="text/html")

    app = web.Application(middlewares=list(middlewares))
    app.add_routes([web.get("/metrics", endpoint.handle), web.get("/healthz", healthz),
                    web.get("/readyz", readyz), web.get("/", index), *extra_routes])
    app[METRICS_ENDPOINT] = endpoint
    return app


def parse_listen(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:9400``, ``:9400`` = all interfaces).

    Raises :class:`accelscope.config.ConfigError` (a ValueError) with a
    readable message on a bad value.
    """
    from accelscope.config import ConfigError

    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen must be HOST:PORT (for example 0.0.0.0:9417), got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


async def start_site(app: web.Application, host: str, port: int,
                     ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    """Start serving ``app``; returns the runner (call ``cleanup()`` to stop)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        from accelscope.config import ConfigError

        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                          "(is another accelscope already running? choose another --listen)") from exc
    return runner


def web_config_from_option(path: str | None):
    """Load ``--web-config PATH`` (None when not given).

    Returns a :class:`accelscope.webconfig.WebConfig`; raises
    :class:`accelscope.config.ConfigError` with the file and key at fault.
    """
    if not path:
        return None
    from accelscope.config import ConfigError
    from accelscope.webconfig import WebConfigError, load_web_config

    try:
        return load_web_config(path)
    except WebConfigError as exc:
        raise ConfigError(str(exc)) from exc


def tls_and_auth(web_cfg) -> tuple[list, ssl.SSLContext | None]:
    """The aiohttp middlewares and server SSL context of a web-config
    (health endpoints stay open so probes work)."""
    if web_cfg is None:
        return [], None
    mw = web_cfg.middleware(exempt=("/healthz", "/readyz"))
    return ([mw] if mw is not None else []), web_cfg.ssl_context()
