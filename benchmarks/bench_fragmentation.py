"""Benchmark: FGD fragmentation model, full recompute and one incremental update.

Builds the 1,213 GPU nodes of Alibaba's ``openb_node_list_gpu_node.csv``
(``../shared/trace/cluster-trace-gpu-v2023/``; a synthetic cluster with the same
model counts when the file is not found), fills them with random placements of
the 12 most frequent task shapes of ``openb_pod_list_default.csv`` (or 12
synthetic shapes) up to a random per-node target, and times

* ``full``: :meth:`ClusterFragmentation.recompute` with the node-state memo
  cleared first (what a workload change costs), 1,213 nodes x 12 shapes;
* ``incremental``: one random placement or removal on one node, then
  :meth:`ClusterFragmentation.set_node` for it, memo cleared first (the
  uncached cost), and the same followed by reading :meth:`rate`;
* ``full_without_memo``: F_n(M) of every node computed from scratch (no
  sharing between identical nodes), the worst case of a full recompute;
* ``floor``: a plain loop summing the free GPU of every node, same run.

Prints one JSON object.  Not part of the test suite.  Run:
``python benchmarks/bench_fragmentation.py [--rounds N] [--updates N] [--seed N]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler_events.fragmentation import (  # noqa: E402
    ClusterFragmentation,
    NodeState,
    Shape,
    Workload,
    fits,
    place,
    unplace,
)

TRACE = ROOT.parent / "shared" / "trace" / "cluster-trace-gpu-v2023"

# (cpu_milli, gpus, model, count): the node list's composition (PROVENANCE.md)
SYNTHETIC_NODES = [
    (8000, 2, "P100", 2), (8000, 1, "P100", 3), (8000, 1, "V100M16", 19), (16000, 2, "P100", 107),
    (32000, 4, "V100M16", 28), (48000, 4, "V100M32", 9), (64000, 8, "V100M16", 7), (64000, 2, "P100", 22),
    (82000, 8, "V100M16", 1), (96000, 4, "T4", 17), (96000, 8, "V100M32", 21), (96000, 8, "G2", 549),
    (104000, 2, "T4", 387), (128000, 1, "A10", 2), (128000, 8, "G3", 39),
]
SYNTHETIC_SHAPES = [
    (3152, 1, 810), (11300, 1, 1000), (11400, 1, 1000), (3152, 1, 1000), (11908, 1, 470), (12500, 0, 0),
    (8000, 1, 470), (12000, 1, 1000), (32000, 0, 0), (18708, 1, 1000), (11908, 1, 650), (4000, 1, 320),
]


def load_nodes() -> tuple[list[NodeState], str]:
    path = TRACE / "openb_node_list_gpu_node.csv"
    nodes = []
    if path.is_file():
        with path.open(newline="") as fh:
            for r in csv.DictReader(fh):
                cpu, mem, g = int(r["cpu_milli"]), int(r["memory_mib"]), int(r["gpu"])
                nodes.append(NodeState(r["sn"], r["model"], cpu, mem, cpu, mem, [1000] * g))
        return nodes, str(path)
    i = 0
    for cpu, g, model, count in SYNTHETIC_NODES:
        for _ in range(count):
            nodes.append(NodeState(f"node-{i:04d}", model, cpu, 262144, cpu, 262144, [1000] * g))
            i += 1
    return nodes, "synthetic"


def load_workload() -> tuple[Workload, str]:
    path = TRACE / "openb_pod_list_default.csv"
    if path.is_file():
        counts: Counter[Shape] = Counter()
        with path.open(newline="") as fh:
            for r in csv.DictReader(fh):
                counts[Shape(int(r["cpu_milli"]), int(r["num_gpu"]), int(r["gpu_milli"]))] += 1
        top = counts.most_common(12)
        return Workload.from_weights(top), str(path)
    return Workload.from_weights([(Shape(*s), 12 - i) for i, s in enumerate(SYNTHETIC_SHAPES)]), "synthetic"


def fill(nodes, shapes, rng) -> list[tuple[str, Shape, list[int]]]:
    placed = []
    for n in nodes:
        target = rng.random() * len(n.gpu_free_milli) * 1000
        for _ in range(40):
            if len(n.gpu_free_milli) * 1000 - sum(n.gpu_free_milli) >= target:
                break
            s = rng.choice(shapes)
            g = fits(n, s)
            if g is not None:
                place(n, s, g)
                placed.append((n.name, s, g))
    return placed


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--updates", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    nodes, node_src = load_nodes()
    workload, shape_src = load_workload()
    shapes = [s for s, _ in workload.shapes]
    placed = fill(nodes, shapes, rng)
    by_name = {n.name: n for n in nodes}
    cf = ClusterFragmentation(workload)
    for n in nodes:
        cf.set_node(n)
    distinct = len({(n.gpu_type, n.cpu_free_milli, tuple(sorted(n.gpu_free_milli))) for n in nodes})

    pc = time.perf_counter_ns
    full, floor = [], []
    for _ in range(args.rounds):
        t0 = pc()
        s = 0
        for n in nodes:
            s += sum(n.gpu_free_milli)
        t1 = pc()
        cf._c.memo.clear()
        t2 = pc()
        cf.recompute()
        cf.rate()
        t3 = pc()
        floor.append(t1 - t0)
        full.append(t3 - t2)

    memo_keys = len(cf._c.memo)
    # the same recompute without the memo: every node's F_n(M) computed from scratch
    c = cf._c
    keys = [c.key(n.gpu_type, n.cpu_free_milli, n.gpu_free_milli) for n in nodes]
    nomemo = []
    for _ in range(args.rounds):
        t0 = pc()
        for k in keys:
            c.compute(k)
        nomemo.append(pc() - t0)

    inc, inc_rate = [], []
    for i in range(args.updates):
        if placed and rng.random() < 0.5:
            name, s, g = placed.pop(rng.randrange(len(placed)))
            node = by_name[name]
            unplace(node, s, g)
        else:
            node = rng.choice(nodes)
            s = rng.choice(shapes)
            g = fits(node, s)
            if g is not None:
                place(node, s, g)
                placed.append((node.name, s, g))
        cf._c.memo.clear()
        t0 = pc()
        cf.set_node(node)
        t1 = pc()
        cf.rate()
        t2 = pc()
        inc.append(t1 - t0)
        inc_rate.append(t2 - t0)

    ms = lambda ns: round(ns / 1e6, 3)  # noqa: E731
    us = lambda ns: round(ns / 1e3, 1)  # noqa: E731
    out = {
        "nodes": len(nodes),
        "nodes_source": node_src,
        "shapes": len(shapes),
        "shapes_source": shape_src,
        "gpus": sum(len(n.gpu_free_milli) for n in nodes),
        "distinct_node_states": distinct,
        "allocated_share": round(1 - cf.free_milli / (1000 * sum(len(n.gpu_free_milli) for n in nodes)), 4),
        "fragmentation_rate": round(cf.rate(), 4),
        "full_recompute_ms": {"p50": ms(statistics.median(full)), "p99": ms(pct(full, 0.99))},
        "floor_sum_free_ms": {"p50": ms(statistics.median(floor)), "p99": ms(pct(floor, 0.99))},
        "full_over_floor": round(statistics.median(full) / statistics.median(floor), 1),
        "memo_keys": memo_keys,
        "full_without_memo_ms": {"p50": ms(statistics.median(nomemo)), "p99": ms(pct(nomemo, 0.99))},
        "incremental_set_node_us": {"p50": us(statistics.median(inc)), "p99": us(pct(inc, 0.99))},
        "incremental_set_node_and_rate_us": {"p50": us(statistics.median(inc_rate)), "p99": us(pct(inc_rate, 0.99))},
        "rounds": args.rounds,
        "updates": args.updates,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
