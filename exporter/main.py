"""``accelscope exporter``: the node agent's entry point.

Thin: it turns options into sources (see :func:`build_sources`), starts one
collection loop per source, serves ``/metrics`` and optionally pushes OTLP.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from accelscope.config import ConfigError, annotate_help, load_yaml
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
from exporter.collect import SnapshotStore, SourceConfig, StoreCollector, collect_once, run_source_loop
from exporter.render import RenderOptions

VENDOR_SOURCES = ("amd", "ascend", "hygon", "kunlunxin", "cambricon", "iluvatar", "metax", "moorethreads")
SOURCES = ("auto", "nvml", "hami-vgpu", "mock", "replay") + VENDOR_SOURCES
DEFAULT_LISTEN = "0.0.0.0:9417"
DEFAULT_HAMI_DIR = "/usr/local/vgpu/containers"
DEFAULT_POD_RESOURCES = "/var/lib/kubelet/pod-resources/kubelet.sock"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the exporter's options (see docs/configuration in README.md)."""
    p.add_argument("--config", metavar="FILE", help="YAML config file; options go under 'exporter:' "
                   "(env ACCELSCOPE_EXPORTER_CONFIG)")
    p.add_argument("--source", default="nvml,hami-vgpu",
                   help=f"comma-separated sources to run: {', '.join(SOURCES)}; 'auto' = the vendor backends whose "
                   "device nodes are on this node (chosen by /dev and sysfs, not by tool name)")
    p.add_argument("--host-root", default="/", metavar="DIR",
                   help="where the host's /dev and /sys are visible (e.g. /host in a container)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT to serve /metrics on")
    p.add_argument("--replay", metavar="PATH", help="file or directory of captured nvidia-smi output "
                   "for the replay source (-q -x XML, --query-gpu CSV, -L, --query-compute-apps)")
    p.add_argument("--hami-vgpu-dir", default=DEFAULT_HAMI_DIR, metavar="DIR",
                   help="HAMi-core shared-region directory (<podUID>_<container>/*.cache), read-only")
    p.add_argument("--mock-inventory", metavar="FILE",
                   help="YAML inventory for the mock source (default: the built-in demo node)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between collections of each source")
    p.add_argument("--timeout", type=float, default=8.0, help="seconds before a collection counts as timed out")
    p.add_argument("--node-name", default=os.environ.get("NODE_NAME", ""),
                   help="value of the k8s_node_name label (falls back to $NODE_NAME)")
    p.add_argument("--pod-uid-label", action="store_true",
                   help="always fill k8s_pod_uid on attributed series (cardinality: one value per pod)")
    p.add_argument("--per-process", action="store_true",
                   help="emit accel_process_memory_usage_bytes per process (opt-in)")
    p.add_argument("--web-config", metavar="FILE",
                   help="exporter-toolkit web-config file for TLS and basic auth")
    p.add_argument("--otlp-endpoint", metavar="URL", default="",
                   help="push the same metrics over OTLP/HTTP to this endpoint (e.g. http://collector:4318); "
                   "empty = off")
    p.add_argument("--otlp-interval", type=float, default=30.0, help="seconds between OTLP pushes")
    p.add_argument("--kube-api", choices=("auto", "on", "off"), default="auto",
                   help="resolve pod names for HAMi vGPU slices through the Kubernetes API "
                   "(auto: when running in a cluster)")
    p.add_argument("--pod-resources-socket", default=DEFAULT_POD_RESOURCES, metavar="PATH",
                   help="kubelet PodResources socket for pod attribution of devices and slices; used when it "
                   "exists; 'off' to disable")
    p.add_argument("--attribution-interval", type=float, default=10.0,
                   help="seconds between PodResources refreshes (off the scrape path)")
    p.add_argument("--once", action="store_true",
                   help="collect every source once, print /metrics to stdout and exit")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   help="log level")
    p.add_argument("--log-format", default="json", choices=("json", "text"), help="log format")
    annotate_help(p, "exporter")


def parse_sources(value: str) -> list[str]:
    """Split and check ``--source``; raises ConfigError on an unknown name."""
    names = [s.strip() for s in value.split(",") if s.strip()]
    bad = [n for n in names if n not in SOURCES]
    if bad or not names:
        raise ConfigError(f"--source: unknown source(s) {', '.join(bad) or '(none given)'}; "
                          f"choose from {', '.join(SOURCES)}")
    return names


def build_sources(args: argparse.Namespace, resolver: Any = None) -> list[SourceConfig]:
    """Instantiate the selected sources with their loop settings.

    Per-source ``interval``/``timeout`` may be set in the config file under
    ``exporter: {sources: {nvml: {interval: 5}}}``.  ``resolver``: a
    :class:`PodNameResolver` for HAMi vGPU pod names (see :func:`build_pod_resolver`).
    Raises ConfigError.
    """
    names = parse_sources(args.source)
    sections = getattr(args, "config_sections", {}) or {}
    unknown = set(sections) - {"sources", "mock"}
    if unknown:
        raise ConfigError(f"config: unknown exporter section(s) {', '.join(sorted(unknown))}; valid: mock, sources")
    per_source = sections.get("sources", {}) or {}
    for name, opts in per_source.items():
        if name not in SOURCES:
            raise ConfigError(f"config: exporter.sources.{name}: unknown source; valid: {', '.join(SOURCES)}")
        bad = set(opts or {}) - {"interval", "timeout"}
        if bad:
            raise ConfigError(f"config: exporter.sources.{name}: unknown option(s) {', '.join(sorted(bad))}; "
                              "valid: interval, timeout")
    out: list[SourceConfig] = []
    expanded: list[str] = []
    for name in names:
        if name == "auto":
            from exporter.sources.vendor_cli import detect_backends
            found = [b.name for b in detect_backends(args.host_root)]
            event("auto_sources", sources=found, host_root=args.host_root)
            expanded += [n for n in found if n not in expanded]
        elif name not in expanded:
            expanded.append(name)
    for name in expanded:
        if name in VENDOR_SOURCES:
            from exporter.sources.vendor_cli import BACKENDS, make_source
            backend = next(b for b in BACKENDS if b.name == name)
            opts = per_source.get(name, {}) or {}
            timeout = float(opts.get("timeout", args.timeout))
            tool_timeout = min(5.0, 0.9 * timeout / (1 + len(backend.extra_argv)))
            src: Any = make_source(backend, root=args.host_root, timeout=tool_timeout)
        elif name == "nvml":
            from exporter.sources.nvml import NvmlSource
            src = NvmlSource(per_process=args.per_process)
        elif name == "hami-vgpu":
            from exporter.sources.hami_vgpu import HamiVgpuSource
            src = HamiVgpuSource(args.hami_vgpu_dir, pod_resolver=resolver.lookup if resolver else None)
        elif name == "mock":
            from exporter.sources.mock import MockSource
            inventory = None
            if args.mock_inventory:
                try:
                    inventory = load_yaml(args.mock_inventory)
                except ConfigError as exc:
                    raise ConfigError(f"--mock-inventory: {exc}") from exc
            elif "mock" in (getattr(args, "config_sections", {}) or {}):
                inventory = args.config_sections["mock"]
            try:
                src = MockSource(inventory)
            except ValueError as exc:
                raise ConfigError(f"mock inventory: {exc}") from exc
        else:  # replay
            if not args.replay:
                raise ConfigError("--source replay needs --replay PATH (a capture file or directory)")
            if not Path(args.replay).exists():
                raise ConfigError(f"--replay {args.replay}: no such file or directory")
            from exporter.sources.replay import ReplaySource
            src = ReplaySource(args.replay)
        opts = per_source.get(name, {}) or {}
        interval, timeout = float(opts.get("interval", args.interval)), float(opts.get("timeout", args.timeout))
        if interval <= 0 or timeout <= 0:
            raise ConfigError(f"source {name}: interval and timeout must be > 0 seconds (got {interval}, {timeout})")
        out.append(SourceConfig(src, interval, timeout))
    return out


def build_pod_resolver(args: argparse.Namespace):
    """The node's pod list through the Kubernetes API (``--kube-api``), or
    None: it names HAMi vGPU pods and feeds the PodResources fallback."""
    if args.kube_api == "off":
        return None
    if args.kube_api == "auto" and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    from exporter.attribution.k8s_pods import PodNameResolver

    return PodNameResolver(node_name=args.node_name)


def build_attributor(args: argparse.Namespace, resolver: Any = None):
    """The kubelet PodResources attributor, when its socket exists (or was
    asked for explicitly); None otherwise.  Its annotation fallback reads the
    resolver's pod list (no second API list)."""
    sock = args.pod_resources_socket
    if not sock or sock == "off":
        return None
    if not os.path.exists(sock) and sock == DEFAULT_POD_RESOURCES:
        return None  # not on a Kubernetes node: nothing to attribute through
    from exporter.attribution.podresources import DeviceAttributor

    if args.attribution_interval <= 0:
        raise ConfigError("--attribution-interval must be > 0 seconds")
    return DeviceAttributor(socket=sock, interval=args.attribution_interval,
                            list_pods=resolver.pods if resolver is not None else None)


def render_options(args: argparse.Namespace) -> RenderOptions:
    return RenderOptions(node_name=args.node_name, pod_uid_label=args.pod_uid_label,
                         per_process=args.per_process)


def make_registry(store: SnapshotStore, opts: RenderOptions) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, opts))
    return registry


def run(args: argparse.Namespace) -> int:
    """Run the exporter until SIGINT/SIGTERM.  Returns the exit status."""
    resolver = build_pod_resolver(args)
    sources = build_sources(args, resolver)
    attributor = build_attributor(args, resolver)
    store = SnapshotStore(attributor=attributor)
    opts = render_options(args)
    registry = make_registry(store, opts)
    if args.once:
        if resolver is not None:
            resolver.refresh_once()
        if attributor is not None:
            attributor.refresh()
        collect_once([c.source for c in sources], store)
        sys.stdout.write(generate_latest(registry).decode())
        for c in sources:
            c.source.close()
        failed = [st.source for st in store.all_stats() if not st.success]
        if failed:
            print(f"accelscope: {', '.join(failed)}: collection failed (see accel_exporter_collect_errors_total "
                  "and the log above)", file=sys.stderr)
            return 1
        return 0
    web_cfg = web_config_from_option(args.web_config)
    host, port = parse_listen(args.listen)
    return asyncio.run(_serve(args, sources, store, registry, web_cfg, host, port, attributor, resolver))


async def _serve(args, sources, store, registry, web_cfg, host, port, attributor=None, resolver=None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread
            pass
    middlewares, ssl_ctx = tls_and_auth(web_cfg)
    app = build_app("exporter", registry, ready=store.ready, cache_key=lambda: store.version,
                    middlewares=middlewares)
    runner = await start_site(app, host, port, ssl_ctx)
    refresher = asyncio.create_task(refresh_loop(app[METRICS_ENDPOINT], lambda: store.version, stop))
    scheme = "https" if ssl_ctx else "http"
    event("exporter_listening", url=f"{scheme}://{host}:{port}/metrics",
          sources=[c.source.name for c in sources])
    tasks = [asyncio.create_task(run_source_loop(c, store, stop)) for c in sources]
    pusher = None
    if args.otlp_endpoint:
        from exporter.otlp import OtlpPusher
        pusher = OtlpPusher(store, render_options(args), args.otlp_endpoint, args.otlp_interval)
        pusher.start()
    if resolver is not None:
        resolver.start()
    if attributor is not None:
        attributor.start()
    await stop.wait()
    event("exporter_stopping")
    await asyncio.gather(*tasks, refresher, return_exceptions=True)
    if pusher is not None:
        pusher.shutdown()
    if resolver is not None:
        resolver.stop()
    if attributor is not None:
        attributor.stop()
    await runner.cleanup()
    return 0


__all__ = ["add_arguments", "build_sources", "run"]
