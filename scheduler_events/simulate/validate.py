"""Validate the simulator against the FGD paper's published results.

    python -m scheduler_events.simulate.validate [--trace-dir DIR] [--seeds 42..51]
        [--policies fgd,bestfit] [--quick] [--expected-dir DIR] [--markdown FILE]

Runs the paper's experiment (:mod:`.experiment`) on
``openb_node_list_gpu_node.csv`` (1,213 nodes, 6,212 GPUs) and
``openb_pod_list_default.csv`` for each policy and seed, and compares with the
reference simulator's expected results (``analysis_allo_discrete.csv``,
``analysis_frag_discrete.csv``, ``analysis_frag_ratio_discrete.csv``, rows
``workload = openb_pod_list_default``): the share of GPUs allocated at 100%
arrived demand, mean over the seeds, ours vs the paper's (pass: within
``--tolerance`` percentage points, 1.5 by default), and each curve's mean
absolute deviation over the steps 0..100 (the curves averaged over seeds
first).  Seeds only label runs: ours use Python's RNG, not Go's, so a seed's
run is not the paper's run with that seed; only the means are comparable.

Exit status: 0 when every policy is within tolerance, 1 otherwise, 2 on bad
input.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scheduler_events.fragmentation import Workload

from .experiment import DEFAULT_COVERAGE, DEFAULT_TUNE_RATIO, NODE_ORDERS, ORDERS, TIE_BREAKS, RunResult, run, typical_workload
from .policies import make_policy
from .trace import TraceError, default_trace_dir, read_nodes, read_pods

WORKLOAD = "openb_pod_list_default"
NODE_FILE = "openb_node_list_gpu_node.csv"
#: our policy name -> the suffix of the reference's sc_policy ("06-FGD")
PAPER_POLICY = {"fgd": "FGD", "fgd-exact": "FGD", "bestfit": "BestFit", "random": "Random"}
EXPECTED_FILES = {
    "allo": "analysis_allo_discrete.csv",
    "frag": "analysis_frag_discrete.csv",
    "frag_ratio": "analysis_frag_ratio_discrete.csv",
}
DEFAULT_TOLERANCE = 1.5


@dataclass
class PolicyReport:
    policy: str
    sc_policy: str | None
    runs: list[RunResult]
    #: metric -> per-seed curves from the paper (steps 0..100)
    paper: dict[str, list[list[float]]] = field(default_factory=dict)
    paper_seeds: list[str] = field(default_factory=list)

    def ours_at(self, step: int = 100) -> list[float | None]:
        return [r.at("allo", step) for r in self.runs]

    def mean_curve(self, metric: str) -> list[float | None]:
        out = []
        for k in range(len(self.runs[0].steps)):
            vals = [getattr(r, metric)[k] for r in self.runs if getattr(r, metric)[k] is not None]
            out.append(sum(vals) / len(vals) if vals else None)
        return out

    def paper_curve(self, metric: str) -> list[float] | None:
        rows = self.paper.get(metric)
        if not rows:
            return None
        n = min(len(r) for r in rows)
        return [sum(r[k] for r in rows) / len(rows) for k in range(n)]

    def deviation(self, metric: str) -> tuple[float, float] | None:
        """(mean, max) absolute difference between the seed-averaged curves, steps 0..100."""
        ours, paper = self.mean_curve(metric), self.paper_curve(metric)
        if paper is None:
            return None
        diffs = [abs(a - b) for a, b in zip(ours, paper) if a is not None]
        return sum(diffs) / len(diffs), max(diffs)

    def ours_mean(self) -> float | None:
        """Mean over seeds at 100% arrived demand; ``None`` when no run got
        there (e.g. ``order="shuffle"``: the default list asks for 98%)."""
        vals = [v for v in self.ours_at(100) if v is not None]
        return sum(vals) / len(vals) if vals else None

    def within(self, tolerance: float) -> bool | None:
        ours, paper = self.ours_mean(), self.paper_mean()
        if paper is None:
            return None
        return ours is not None and abs(ours - paper) <= tolerance

    def paper_mean(self) -> float | None:
        c = self.paper_curve("allo")
        return None if c is None else c[100]


def find_expected(expected_dir: Path, policy: str) -> tuple[str | None, dict[str, list[list[float]]], list[str]]:
    """The reference's rows for ``policy`` on the default workload: the exact
    ``sc_policy`` string (looked up, e.g. ``06-FGD``), per-metric curves, seeds."""
    suffix = PAPER_POLICY.get(policy)
    if suffix is None:
        return None, {}, []
    sc_policy = None
    curves: dict[str, list[list[float]]] = {}
    seeds: list[str] = []
    for metric, fname in EXPECTED_FILES.items():
        path = expected_dir / fname
        if not path.is_file():
            if metric == "allo":
                raise TraceError(path, None, "expected results not found")
            continue
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            for col in ("workload", "sc_policy", "seed", "100"):
                if col not in (reader.fieldnames or []):
                    raise TraceError(path, 1, f"missing column {col!r}")
            for row in reader:
                if row["workload"] != WORKLOAD:
                    continue
                sp = row["sc_policy"]
                if sp.split("-", 1)[-1] != suffix:
                    continue
                sc_policy = sp
                try:
                    curve = [float(row[str(k)]) for k in range(101)]
                except (KeyError, ValueError) as exc:
                    raise TraceError(path, reader.line_num, f"bad value: {exc}") from None
                curves.setdefault(metric, []).append(curve)
                if metric == "allo":
                    seeds.append(row["seed"])
    return sc_policy, curves, seeds


def parse_seeds(text: str) -> list[int]:
    """``42..51``, ``42,43,47`` or ``42``."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if ".." in part:
            a, b = part.split("..", 1)
            lo, hi = int(a), int(b)
            if hi < lo:
                raise ValueError(f"empty seed range {part!r}")
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError("no seeds")
    return out


def validate(
    trace_dir: Path,
    expected_dir: Path,
    policies: Sequence[str],
    seeds: Sequence[int],
    *,
    progress=None,
    **run_options,
) -> list[PolicyReport]:
    nodes = read_nodes(trace_dir / NODE_FILE)
    pods = read_pods(trace_dir / f"{WORKLOAD}.csv", nodes=nodes.nodes)
    for lst in (nodes, pods):
        if lst.skipped:
            counts = ", ".join(f"{k}: {len(v)}" for k, v in sorted(lst.skipped.items()))
            print(f"note: {lst.path}: skipped rows ({counts})", file=sys.stderr)
    workload = typical_workload(pods.pods, run_options.pop("coverage", DEFAULT_COVERAGE))
    reports = []
    for name in policies:
        sc_policy, curves, pseeds = find_expected(expected_dir, name)
        runs = []
        for seed in seeds:
            policy = make_policy(name, workload=workload)
            r = run(nodes.nodes, pods.pods, policy, seed, until_pct=100, step_pct=1, workload=workload, **run_options)
            if progress:
                progress(f"{name} seed {seed}: {_fmt(r.at('allo', 100))}% allocated at 100% demand "
                         f"({r.placed} placed, {r.failed} failed, {r.elapsed_s:.1f} s)")
            runs.append(r)
        reports.append(PolicyReport(name, sc_policy, runs, curves, pseeds))
    return reports


def _fmt(v: float | None, nd: int = 2) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def table_text(reports: Sequence[PolicyReport], tolerance: float) -> str:
    lines = []
    hdr = f"{'policy':<20} {'sc_policy':<12} {'seeds':>5} {'ours %':>8} {'paper %':>8} {'diff pp':>8} {'ok':>4}   frag-ratio dev (mean/max pp)   frag dev (mean/max pp)"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for rep in reports:
        ours, paper = rep.ours_mean(), rep.paper_mean()
        diff = None if paper is None or ours is None else ours - paper
        ok = {None: "—", True: "yes", False: "NO"}[rep.within(tolerance)]
        fr = rep.deviation("frag_ratio")
        fa = rep.deviation("frag")
        lines.append(
            f"{rep.policy:<20} {rep.sc_policy or '—':<12} {len(rep.runs):>5} {_fmt(ours):>8} {_fmt(paper):>8} "
            f"{_fmt(diff):>8} {ok:>4}   {_fmt(fr and fr[0])} / {_fmt(fr and fr[1])}"
            f"{'':<20}{_fmt(fa and fa[0])} / {_fmt(fa and fa[1])}"
        )
    lines.append("")
    lines.append("per seed, % of GPUs allocated at 100% arrived demand (ours | paper):")
    for rep in reports:
        ours = " ".join(f"{r.seed}:{_fmt(r.at('allo', 100))}" for r in rep.runs)
        paper = " ".join(f"{s}:{c[100]:.2f}" for s, c in zip(rep.paper_seeds, rep.paper.get("allo", [])))
        lines.append(f"  {rep.policy:<20} ours  {ours}")
        if paper:
            lines.append(f"  {'':<20} paper {paper}")
    return "\n".join(lines)


def table_markdown(reports: Sequence[PolicyReport], tolerance: float) -> str:
    out = [
        "| policy | reference `sc_policy` | seeds | ours: GPUs allocated at 100% | paper | difference (pp) "
        f"| within ±{tolerance:.1f} pp | frag-rate curve, mean / max abs dev (pp) "
        "| fragmented-GPU curve, mean / max abs dev (pp of capacity) |",
        "|---|---|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    for rep in reports:
        ours, paper = rep.ours_mean(), rep.paper_mean()
        diff = None if paper is None or ours is None else ours - paper
        ok = {None: "—", True: "yes", False: "**no**"}[rep.within(tolerance)]
        fr = rep.deviation("frag_ratio")
        fa = rep.deviation("frag")
        out.append(
            f"| {rep.policy} | `{rep.sc_policy or '—'}` | {len(rep.runs)} | {_fmt(ours)}% | {_fmt(paper)}% | "
            f"{'—' if diff is None else f'{diff:+.2f}'} | {ok} | {_fmt(fr and fr[0])} / {_fmt(fr and fr[1])} | "
            f"{_fmt(fa and fa[0])} / {_fmt(fa and fa[1])} |"
        )
    out.append("")
    out.append("Per seed (GPUs allocated at 100% arrived demand, %):")
    out.append("")
    seeds = [r.seed for r in reports[0].runs] if reports else []
    out.append("| policy | " + " | ".join(str(s) for s in seeds) + " | mean |")
    out.append("|---|" + "---:|" * (len(seeds) + 1))
    for rep in reports:
        out.append(f"| {rep.policy} (ours) | " + " | ".join(_fmt(r.at("allo", 100)) for r in rep.runs)
                   + f" | {_fmt(rep.ours_mean())} |")
        pc = rep.paper.get("allo", [])
        if pc:
            cells = [f"{c[100]:.2f}" for c in pc[: len(seeds)]] + [""] * max(0, len(seeds) - len(pc))
            out.append(f"| {rep.policy} (paper; mean of its {len(pc)} seeds) | "
                       + " | ".join(cells + [f"{rep.paper_mean():.2f}"]) + " |")
    return "\n".join(out)


CURVE_STEPS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 92, 94, 96, 98, 100)


def curve_markdown(reports: Sequence[PolicyReport], metric: str = "frag_ratio", steps: Sequence[int] = CURVE_STEPS) -> str:
    """The seed-averaged curve at ``steps``, ours vs the paper."""
    out = ["| arrived GPU demand (%) | " + " | ".join(str(s) for s in steps) + " |",
           "|---|" + "---:|" * len(steps)]
    for rep in reports:
        ours, paper = rep.mean_curve(metric), rep.paper_curve(metric)
        out.append(f"| {rep.policy} ours | " + " | ".join(_fmt(ours[s]) for s in steps) + " |")
        if paper:
            out.append(f"| {rep.policy} paper | " + " | ".join(_fmt(paper[s]) for s in steps) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m scheduler_events.simulate.validate",
        description="Reproduce the FGD paper's allocation results on the Alibaba openb trace.",
    )
    ap.add_argument("--trace-dir", type=Path, default=None,
                    help="folder with openb_*.csv (default: ../shared/trace/cluster-trace-gpu-v2023)")
    ap.add_argument("--expected-dir", type=Path, default=None,
                    help="folder with analysis_*_discrete.csv (default: fgd-simulator-expected-results next to the trace folder)")
    ap.add_argument("--seeds", default="42..51", help="seeds, e.g. 42..51 or 42,43 (default 42..51)")
    ap.add_argument("--policies", default="fgd,bestfit", help="comma-separated: fgd, fgd-exact, bestfit, random, hami-<node>-<gpu>")
    ap.add_argument("--quick", action="store_true", help="one seed (the first of --seeds)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="pass band in percentage points (1.5)")
    ap.add_argument("--coverage", type=float, default=DEFAULT_COVERAGE, help="share of pods the target workload M covers (0.95)")
    ap.add_argument("--order", choices=ORDERS, default="tune", help="pod arrival order (tune: the reference's)")
    ap.add_argument("--tune-ratio", type=float, default=DEFAULT_TUNE_RATIO, help="workload tuning target, x capacity (1.3)")
    ap.add_argument("--tie-break", choices=TIE_BREAKS, default="first", help="equal scores: first node in the seeded node order, or random")
    ap.add_argument("--node-order", choices=NODE_ORDERS, default="shuffle", help="node order for ties (shuffle: seeded)")
    ap.add_argument("--no-memory", action="store_true", help="do not filter nodes on memory")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the tables as Markdown to this file")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-run progress on stderr")
    args = ap.parse_args(argv)

    trace_dir = args.trace_dir or default_trace_dir()
    expected_dir = args.expected_dir or (trace_dir.parent / "fgd-simulator-expected-results")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        ap.error(f"--seeds: {exc}")
    if args.quick:
        seeds = seeds[:1]
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    try:
        for p in policies:
            make_policy(p, workload=Workload(()))  # checks the name only
    except ValueError as exc:
        ap.error(str(exc))
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    try:
        reports = validate(
            trace_dir, expected_dir, policies, seeds, progress=progress,
            coverage=args.coverage, order=args.order, tune_ratio=args.tune_ratio,
            tie_break=args.tie_break, node_order=args.node_order, check_memory=not args.no_memory,
        )
    except (TraceError, OSError) as exc:
        hint = "" if args.trace_dir else (" (the trace is read from ../shared/trace/ beside the project; "
                                          "point --trace-dir at your copy, or set ACCELSCOPE_SHARED)")
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t0
    print(f"openb_pod_list_default on {NODE_FILE}: {len(seeds)} seed(s), {elapsed:.1f} s "
          f"({os.cpu_count()} CPUs visible, one used)")
    print(table_text(reports, args.tolerance))
    if args.markdown:
        text = [table_markdown(reports, args.tolerance), "",
                "Fragmentation rate (F_N(M) in % of free GPU), mean over seeds:", "",
                curve_markdown(reports, "frag_ratio"), "",
                "Fragmented GPU (F_N(M) in % of GPU capacity), mean over seeds:", "",
                curve_markdown(reports, "frag"), "",
                "GPUs allocated (% of capacity), mean over seeds:", "",
                curve_markdown(reports, "allo")]
        args.markdown.write_text("\n".join(text) + "\n")
    ok = all(r.within(args.tolerance) is not False for r in reports)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
