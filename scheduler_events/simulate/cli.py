"""``accelscope simulate``: run the trace-driven simulator and write the
Kubernetes object events HAMi and kube-scheduler would have written, as a
recorded stream the collector replays (``accelscope collector --replay FILE``).

    accelscope simulate [--profile embedded|PATH | --trace-dir DIR] [--nodes N] [--pods N]
        [--policy hami-binpack-spread|fgd|bestfit|random|hami-<node>-<gpu>|fgd-exact] [--seed S]
        [--seconds-per-pod S] [--start UNIX] [--departures FRACTION] [--lifetime PODS]
        [--out FILE.jsonl|-]

Input: the embedded workload profile (figures derived from Alibaba's GPU
trace, :mod:`.profile`) scaled down to ``--nodes``/``--pods`` (default 40
and 400), or the real trace files with ``--trace-dir`` (every node and pod
unless ``--nodes``/``--pods`` take a seeded sample / the first pods of the
arrival order).  Output: one summary line (placed, failed, % of GPUs
allocated, fragmentation rate), on stderr when the events go to stdout.

Exit status: 0, or 2 on bad input (a trace or profile file that cannot be
read, an unknown policy), with one line naming the problem.

The lead wires it as a subcommand::

    from scheduler_events.simulate.cli import add_arguments, run
    add_arguments(sub.add_parser("simulate", ...)); ... return run(args)

and ``python -m scheduler_events.simulate`` runs it on its own.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from .emit import Emitter, write_jsonl
from .experiment import DEFAULT_COVERAGE, pod_sequence, typical_workload
from .policies import POLICY_NAMES
from .profile import NODE_LIST, POD_LIST, ProfileError, load_profile, sample_cluster
from .trace import TraceError, read_nodes, read_pods

DEFAULT_NODES = 40
DEFAULT_PODS = 400
DEFAULT_POLICY = "hami-binpack-spread"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``simulate`` options."""
    src = p.add_argument_group("input")
    src.add_argument("--profile", default="embedded", metavar="embedded|PATH",
                     help="workload profile to sample the cluster and pods from (default: %(default)s, the "
                          "figures derived from Alibaba's cluster-trace-gpu-v2023)")
    src.add_argument("--trace-dir", default=None, metavar="DIR",
                     help="read the real trace files (openb_*.csv) from DIR instead of the profile")
    src.add_argument("--node-list", default=NODE_LIST, help="node list file in --trace-dir (default %(default)s)")
    src.add_argument("--pod-list", default=POD_LIST, help="pod list file in --trace-dir (default %(default)s)")
    src.add_argument("--order", choices=("shuffle", "trace"), default="shuffle",
                     help="with --trace-dir: pods in a seeded shuffle (the FGD experiment's order) or by "
                          "creation time (default %(default)s)")
    src.add_argument("--nodes", type=int, default=None,
                     help=f"nodes (default {DEFAULT_NODES} from the profile; every node of the trace)")
    src.add_argument("--pods", type=int, default=None,
                     help=f"pods (default {DEFAULT_PODS} from the profile; every pod of the trace)")
    sim = p.add_argument_group("simulation")
    sim.add_argument("--policy", default=DEFAULT_POLICY,
                     help=f"placement policy: {', '.join(POLICY_NAMES)} or hami-<binpack|spread>-<binpack|spread> "
                          "(default %(default)s)")
    sim.add_argument("--seed", type=int, default=42, help="seed of the sample, the node order and the policy (default %(default)s)")
    sim.add_argument("--coverage", type=float, default=DEFAULT_COVERAGE,
                     help="share of pods the target workload M covers, for FGD and the fragmentation rate (default %(default)s)")
    sim.add_argument("--split-count", type=int, default=None,
                     help="HAMi deviceSplitCount registered per GPU (default: the HAMi policy's 10; for other "
                          "policies the smallest count that never binds)")
    sim.add_argument("--departures", type=float, default=0.0, metavar="FRACTION",
                     help="share of placed pods deleted later, so the cluster breathes (default %(default)s)")
    sim.add_argument("--lifetime", type=float, default=100.0, metavar="PODS",
                     help="mean lifetime of departing pods, in pod arrivals (default %(default)s)")
    out = p.add_argument_group("output")
    out.add_argument("--seconds-per-pod", type=float, default=1.0,
                     help="simulated seconds between two arrivals (default %(default)s)")
    out.add_argument("--start", type=float, default=None, metavar="UNIX",
                     help="Unix time of the first event (default: now)")
    out.add_argument("--namespace", default="sim", help="namespace of the simulated pods (default %(default)s)")
    out.add_argument("--out", default=None, metavar="FILE.jsonl",
                     help="write the events as JSON lines (the collector's recorded-stream format); '-' = stdout")


def _inputs(args: argparse.Namespace):
    """(nodes, pods, workload M) from the profile or the trace."""
    if args.nodes is not None and args.nodes < 1:
        raise ValueError(f"--nodes must be >= 1, got {args.nodes}")
    if args.pods is not None and args.pods < 0:
        raise ValueError(f"--pods must be >= 0, got {args.pods}")
    if not 0.0 < args.coverage <= 1.0:
        raise ValueError(f"--coverage must be in (0, 1], got {args.coverage}")
    if args.trace_dir is None:
        profile = load_profile(args.profile)
        nodes, pods = sample_cluster(profile, args.nodes or DEFAULT_NODES,
                                     DEFAULT_PODS if args.pods is None else args.pods, args.seed)
        return nodes, pods, profile.workload(args.coverage)
    d = Path(args.trace_dir)
    nl = read_nodes(d / args.node_list)
    pl = read_pods(d / args.pod_list, nodes=nl.nodes)
    for what, lst in (("node", nl), ("pod", pl)):
        if lst.skipped_count():
            detail = ", ".join(f"{k} {len(v)}" for k, v in sorted(lst.skipped.items()))
            print(f"{lst.path}: skipped {lst.skipped_count()} {what} row(s): {detail}", file=sys.stderr)
    rng = random.Random(args.seed)
    nodes = sorted(nl.nodes, key=lambda n: n.name)
    if args.nodes is not None and args.nodes < len(nodes):
        nodes = sorted(rng.sample(nodes, args.nodes), key=lambda n: n.name)
    total = sum(1000 * len(n.gpu_free_milli) for n in nodes)
    seq = pod_sequence(pl.pods, total, rng, order=args.order, tune_ratio=0)
    if args.pods is not None:
        seq = seq[: args.pods]
    return nodes, seq, typical_workload(pl.pods, args.coverage)


def run(args: argparse.Namespace) -> int:
    """Run ``simulate``; returns the exit status."""
    try:
        nodes, pods, workload = _inputs(args)
        em = Emitter(nodes, pods, args.policy, seed=args.seed, workload=workload,
                     start=time.time() if args.start is None else args.start,
                     seconds_per_pod=args.seconds_per_pod, split_count=args.split_count,
                     depart_fraction=args.departures, mean_lifetime_pods=args.lifetime,
                     namespace=args.namespace)
    except (TraceError, ProfileError, ValueError) as exc:
        print(f"accelscope simulate: {exc}", file=sys.stderr)
        return 2
    try:
        if args.out is not None:
            write_jsonl(em.events(), args.out)
        else:
            for _ in em.events():
                pass
    except OSError as exc:
        print(f"accelscope simulate: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    res = em.result
    line = res.summary()
    if res.mismatches:
        line += f"; {len(res.mismatches)} policy/HAMi-model disagreements (first: {res.mismatches[0]})"
    print(line, file=sys.stderr if args.out == "-" else sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scheduler_events.simulate",
                                description="Simulate HAMi/kube-scheduler placements on a trace-derived cluster and "
                                            "emit the Kubernetes objects and events as a recorded stream.")
    add_arguments(p)
    return run(p.parse_args(argv))
