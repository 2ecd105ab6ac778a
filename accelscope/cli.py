"""``accelscope``: one console script, one subcommand per agent.

  accelscope exporter   the node agent (device metrics on /metrics)
  accelscope collector  the cluster agent (placement decisions, /api/v1/placements)
  accelscope explain    why is NAMESPACE/POD pending (or placed where it is)
  accelscope demo       the stack on its embedded default (no cluster, no GPU)
  accelscope version    print the version

Thin by design: each subcommand's options and behaviour live in its agent
(``exporter.main`` ...); this module only dispatches and turns
configuration errors into one readable line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from accelscope import __version__
from accelscope.config import ConfigError, resolve
from accelscope.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="accelscope",
        description="Observability for shared, heterogeneous AI-accelerator clusters on Kubernetes.",
        epilog="Run 'accelscope <command> --help' for a command's options.")
    p.add_argument("--version", action="version", version=f"accelscope {__version__}")
    sub = p.add_subparsers(dest="command", metavar="<command>")
    from exporter.main import add_arguments as exporter_args

    ex = sub.add_parser("exporter", help="run the device exporter (node agent)",
                        description="Serve every accelerator and virtual slice on this node in one "
                        "vendor-neutral schema (OpenTelemetry hw.* names) on /metrics.")
    exporter_args(ex)
    from scheduler_events.main import add_arguments as collector_args
    from scheduler_events.main import add_explain_arguments

    col = sub.add_parser("collector", help="run the scheduler-event collector (cluster agent)",
                         description="Rebuild every accelerator placement decision (HAMi, kube-scheduler, "
                         "Volcano) from the Kubernetes API or a recording, and publish it as metrics, one JSON "
                         "log line per decision, OTLP traces, a SQLite history and /api/v1/placements.")
    collector_args(col)
    exp = sub.add_parser("explain", help="explain one pod's placement (why is it pending?)",
                         description="Ask a running collector, or read a kubectl dump or recorded stream "
                         "(--from), and print a short plain explanation of the pod's placement.")
    add_explain_arguments(exp)
    demo = sub.add_parser("demo", help="run the stack on its embedded default (mock node + a real capture)",
                          description="Start the exporter on the built-in mock node (whole GPUs, MIG and "
                          "HAMi vGPU slices) plus a replay of a real A100 MIG capture, and print the URL.")
    demo.add_argument("--listen", default="127.0.0.1:9417", help="HOST:PORT to serve on")
    demo.add_argument("--once", action="store_true", help="print one scrape and exit")
    sub.add_parser("version", help="print the version")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    pre, _ = parser.parse_known_args(argv)
    try:
        if pre.command == "exporter":
            sub = parser._subparsers._group_actions[0].choices["exporter"]  # noqa: SLF001
            args = resolve(sub, argv[1:], "exporter")
            setup_logging(args.log_level, args.log_format)
            from exporter.main import run
            return run(args)
        if pre.command == "collector":
            sub = parser._subparsers._group_actions[0].choices["collector"]  # noqa: SLF001
            args = resolve(sub, argv[1:], "collector")
            setup_logging(args.log_level, args.log_format)
            from scheduler_events.main import run as run_collector
            return run_collector(args)
        if pre.command == "explain":
            setup_logging("warning", "text")
            from scheduler_events.main import run_explain
            return run_explain(pre)
        if pre.command == "demo":
            return _demo(pre)
        if pre.command == "version":
            print(f"accelscope {__version__}")
            return 0
        parser.print_help()
        return 2
    except ConfigError as exc:
        print(f"accelscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _demo(pre: argparse.Namespace) -> int:
    """Exporter (mock node + replayed capture) in this process, collector
    (replaying the demo cluster dump) in a child process."""
    import subprocess
    import tempfile

    from exporter.main import add_arguments, run

    data = resources.files("exporter") / "data" / "demo"
    dump = str(resources.files("scheduler_events") / "data" / "demo-cluster-dump.json")
    host, _, port = pre.listen.rpartition(":")
    collector_listen = f"{host}:{int(port) + 1}"
    if pre.once:
        subprocess.run([sys.executable, "-m", "accelscope.cli", "collector", "--source", "replay", "--replay", dump,
                        "--once", "--history", "off", "--log-level", "error"], check=True)
    else:
        state = tempfile.mkdtemp(prefix="accelscope-demo-")
        child = subprocess.Popen([sys.executable, "-m", "accelscope.cli", "collector", "--source", "replay",
                                  "--replay", dump, "--listen", collector_listen, "--history",
                                  f"{state}/history.db", "--log-format", "text", "--log-level", "warning"])
    p = argparse.ArgumentParser()
    add_arguments(p)
    argv = ["--source", "mock,replay", "--replay", str(data), "--listen", pre.listen,
            "--node-name", "demo-node", "--interval", "5", "--log-format", "text"]
    if pre.once:
        argv.append("--once")
    args = p.parse_args(argv)
    args.config_sections = {"mock": _demo_inventory()}
    setup_logging("warning" if pre.once else "info", "text")
    if pre.once:
        return run(args)
    print(f"accelscope demo\n"
          f"  exporter (mock node + replayed A100 MIG capture):  curl http://{host}:{port}/metrics\n"
          f"  collector (replayed HAMi cluster dump):            curl http://{collector_listen}/metrics\n"
          f"                                                     curl http://{collector_listen}/api/v1/placements\n"
          f"  why is ml/ranker-2 pending?  .venv/bin/accelscope explain ml/ranker-2 --url http://{collector_listen}\n"
          f"  (Ctrl-C to stop)", flush=True)
    try:
        return run(args)
    finally:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()


def _demo_inventory() -> dict:
    from exporter.sources.mock import DEFAULT_INVENTORY

    inv = dict(DEFAULT_INVENTORY)
    inv["first_index"] = 1  # the replayed A100 is gpu0
    return inv


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
