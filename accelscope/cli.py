"""``accelscope``: one console script, one subcommand per agent.

  accelscope exporter   the node agent (device metrics on /metrics)
  accelscope collector  the cluster agent (placement decisions, /api/v1/placements)
  accelscope explain    why is NAMESPACE/POD pending (or placed where it is)
  accelscope fragmentation report   how much free capacity the workload cannot use
  accelscope simulate   trace-driven cluster simulator (feeds the collector)
  accelscope demo       the stack on its embedded default (no cluster, no GPU)
  accelscope version    print the version

Thin by design: each subcommand's options and behaviour live in its agent
(``exporter.main`` ...); this module only dispatches and turns
configuration errors into one readable line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

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
    from scheduler_events.main import add_report_arguments

    frag = sub.add_parser("fragmentation", help="fragmentation of free accelerator capacity (FGD)",
                          description="Measure how much free accelerator capacity the cluster's workload cannot "
                          "use (FGD's F_N(M), Weng et al. ATC'23).")
    fsub = frag.add_subparsers(dest="fragmentation_command", metavar="<subcommand>")
    rep = fsub.add_parser("report", help="report the cluster's fragmentation",
                          description="Cluster fragmentation rate, fragmented and free GPUs, the most fragmented "
                          "nodes, stranded devices, the largest placeable shapes, pending pods blocked by "
                          "fragmentation, and what an FGD repack of movable pods would recover.")
    add_report_arguments(rep)
    from scheduler_events.simulate.cli import add_arguments as simulate_args

    sim = sub.add_parser("simulate", help="replay a workload through a placement policy (trace-driven simulator)",
                         description="Simulate a cluster from the embedded workload profile or Alibaba's "
                         "cluster-trace-gpu-v2023 files (--trace-dir) under a placement policy (HAMi binpack/"
                         "spread, FGD, best-fit, random) and write the Kubernetes objects and events HAMi and "
                         "kube-scheduler would write, as a stream the collector replays.")
    simulate_args(sim)
    demo = sub.add_parser("demo", help="run the stack on its embedded default (no cluster, no GPU)",
                          description="Start the exporter on the built-in mock node (whole GPUs, MIG and HAMi vGPU "
                          "slices) plus a replay of a real A100 MIG capture, and the collector on a replayed HAMi "
                          "cluster dump; print the URLs and commands to try.")
    demo.add_argument("--listen", default="127.0.0.1:9417",
                      help="HOST:PORT of the exporter; the collector takes PORT+1 (default %(default)s)")
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
        if pre.command == "fragmentation":
            if pre.fragmentation_command != "report":
                parser.parse_args(["fragmentation", "--help"])
            setup_logging("warning", "text")
            from scheduler_events.main import run_report
            return run_report(pre)
        if pre.command == "simulate":
            from scheduler_events.simulate.cli import run as run_simulate
            return run_simulate(pre)
        if pre.command == "demo":
            from accelscope.demo import run_demo
            return run_demo(pre.listen, once=pre.once)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
