"""A compact workload profile derived from the Alibaba GPU trace, and
scaled-down clusters sampled from it.

The project does not ship the trace (``../shared/trace/PROVENANCE.md``): it
ships **figures computed from it**, small enough to read
(``scheduler_events/data/workload-profile.json``, a few KB):

* the node models with their counts: ``(model, GPUs per node, CPU milli,
  memory MiB) -> number of nodes`` of ``openb_node_list_gpu_node.csv``;
* the pod shape distribution: ``(cpu_milli, memory_mib, num_gpu,
  gpu_milli, gpu_spec) -> number of pods`` of ``openb_pod_list_default.csv``
  (names, times, QoS and phases are not kept);
* provenance: the file names, their SHA-256, and the rows the reader skipped.

:func:`profile_from_trace` computes the profile from the real files (the
committed file must be exactly its output, a test checks it);
``python -m scheduler_events.simulate.profile [--trace-dir DIR] [--out FILE]``
regenerates the file.  :func:`load_profile` reads it (``"embedded"`` = the
committed file); :func:`sample_cluster` builds a scaled-down cluster and a pod
sequence from it, so the simulator and ``make demo`` run without the trace.

Sampling:

* nodes: each node configuration gets ``nodes * count / total`` nodes,
  rounded by the largest-remainder method (so 40 nodes keep the trace's mix:
  18 G2 x 8, 13 T4 x 2, ...); names ``sim-<model>-<nnn>``, deterministic;
* pods: ``pods`` shapes drawn with replacement, weighted by their counts,
  from ``random.Random(seed)``; names ``sim-pod-<nnnnn>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scheduler_events.fragmentation import NodeState, Shape, Workload

from .experiment import DEFAULT_COVERAGE, typical_workload
from .trace import MILLI, TracePod, default_trace_dir, read_nodes, read_pods

PROFILE_FORMAT = "accelscope-workload-profile/1"
NODE_LIST = "openb_node_list_gpu_node.csv"
POD_LIST = "openb_pod_list_default.csv"
#: the committed profile (``--profile embedded``)
EMBEDDED_PROFILE = Path(__file__).resolve().parent.parent / "data" / "workload-profile.json"

NODE_COLUMNS = ("model", "gpus", "cpu_milli", "memory_mib", "count")
SHAPE_COLUMNS = ("cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "count")


class ProfileError(ValueError):
    """A profile file that cannot be used (names the file and what is wrong)."""


@dataclass(frozen=True, slots=True)
class NodeModel:
    """One node configuration of the trace and how many nodes have it."""

    model: str
    gpus: int
    cpu_milli: int
    memory_mib: int
    count: int

    def node(self, name: str) -> NodeState:
        """An empty node of this configuration."""
        return NodeState(name=name, gpu_type=self.model, cpu_milli=self.cpu_milli, memory_mib=self.memory_mib,
                         cpu_free_milli=self.cpu_milli, memory_free_mib=self.memory_mib,
                         gpu_free_milli=[MILLI] * self.gpus)


@dataclass(frozen=True, slots=True)
class ShapeCount:
    """One pod shape (memory included) and how many pods of the trace have it."""

    shape: Shape
    count: int


@dataclass(slots=True)
class Profile:
    """A loaded profile: node models, pod shapes, provenance."""

    node_models: list[NodeModel]
    shapes: list[ShapeCount]
    source: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def total_nodes(self) -> int:
        return sum(m.count for m in self.node_models)

    @property
    def total_gpus(self) -> int:
        return sum(m.count * m.gpus for m in self.node_models)

    @property
    def total_pods(self) -> int:
        return sum(s.count for s in self.shapes)

    def iter_shapes(self) -> Iterator[Shape]:
        """Every pod's shape, each shape repeated ``count`` times (for :func:`typical_workload`)."""
        for sc in self.shapes:
            for _ in range(sc.count):
                yield sc.shape

    def workload(self, coverage: float = DEFAULT_COVERAGE) -> Workload:
        """The target workload M of the profiled pod list (the reference's
        "typical pods" at ``coverage``, memory left out)."""
        return typical_workload(self.iter_shapes(), coverage)

    def models(self) -> set[str]:
        return {m.model for m in self.node_models}


# --------------------------------------------------------------------------- from the trace


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def profile_from_trace(trace_dir: str | Path | None = None, *, node_list: str = NODE_LIST,
                       pod_list: str = POD_LIST) -> dict[str, Any]:
    """The profile (a JSON-ready dict) of ``trace_dir/node_list`` and
    ``trace_dir/pod_list``, read with :func:`~.trace.read_nodes` /
    :func:`~.trace.read_pods` (rows the reader skips are counted in
    ``source.skipped``, never silently dropped).  Deterministic: the same
    files give the same dict.  Raises :class:`~.trace.TraceError`."""
    trace_dir = Path(trace_dir) if trace_dir is not None else default_trace_dir()
    npath, ppath = trace_dir / node_list, trace_dir / pod_list
    nl = read_nodes(npath)
    pl = read_pods(ppath, nodes=nl.nodes)
    configs: Counter[tuple[str, int, int, int]] = Counter(
        (n.gpu_type, len(n.gpu_free_milli), n.cpu_milli, n.memory_mib) for n in nl.nodes)
    nodes = sorted(([*k, c] for k, c in configs.items()), key=lambda r: (-r[4], r[0], -r[1], -r[2], -r[3]))
    shapes: Counter[tuple[int, int, int, int, str]] = Counter(
        (p.shape.cpu_milli, p.shape.memory_mib, p.shape.num_gpu, p.shape.gpu_milli,
         "|".join(sorted(p.shape.gpu_types))) for p in pl.pods)
    rows = sorted(([*k, c] for k, c in shapes.items()),
                  key=lambda r: (-r[5], -r[2], -r[3], -r[0], -r[1], r[4]))
    skipped = {f"nodes.{k}": len(v) for k, v in sorted(nl.skipped.items())}
    skipped.update({f"pods.{k}": len(v) for k, v in sorted(pl.skipped.items())})
    return {
        "format": PROFILE_FORMAT,
        "source": {
            "trace": "Alibaba cluster-trace-gpu-v2023 (github.com/alibaba/clusterdata), FGD paper, USENIX ATC'23",
            "node_list": node_list,
            "pod_list": pod_list,
            "sha256": {node_list: _sha256(npath), pod_list: _sha256(ppath)},
            "skipped": skipped,
            "generator": "python -m scheduler_events.simulate.profile",
        },
        "nodes": {"count": len(nl.nodes), "gpus": nl.total_gpus, "columns": list(NODE_COLUMNS), "models": nodes},
        "pods": {"count": len(pl.pods), "gpu_demand_milli": pl.gpu_demand_milli, "columns": list(SHAPE_COLUMNS),
                 "shapes": rows},
    }


def dumps_profile(profile: dict[str, Any]) -> str:
    """The profile as JSON text: one node model / shape per line (small diffs)."""
    def block(rows: list[list[Any]]) -> str:
        return "[\n" + ",\n".join("      " + json.dumps(r) for r in rows) + "\n    ]"

    head = {k: v for k, v in profile.items() if k not in ("nodes", "pods")}
    text = json.dumps(head, indent=2)[:-2]
    parts = []
    for section, key in (("nodes", "models"), ("pods", "shapes")):
        sec = profile[section]
        fields = [f'    {json.dumps(k)}: {json.dumps(v)}' for k, v in sec.items() if k != key]
        fields.append(f'    {json.dumps(key)}: {block(sec[key])}')
        parts.append(f'  {json.dumps(section)}: {{\n' + ",\n".join(fields) + "\n  }")
    return text + ",\n" + ",\n".join(parts) + "\n}\n"


def write_profile(profile: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(dumps_profile(profile), encoding="utf-8")


# --------------------------------------------------------------------------- load


def _bad(where: str, message: str) -> ProfileError:
    return ProfileError(f"{where}: {message}")


def profile_from_dict(data: Any, where: str = "<profile>") -> Profile:
    """A :class:`Profile` from the JSON dict; :class:`ProfileError` names what is wrong."""
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise _bad(where, f"not an accelscope workload profile (format {PROFILE_FORMAT!r} expected)")
    try:
        ncols = data["nodes"]["columns"]
        nrows = data["nodes"]["models"]
        scols = data["pods"]["columns"]
        srows = data["pods"]["shapes"]
    except (KeyError, TypeError):
        raise _bad(where, "missing nodes.models / pods.shapes") from None
    if list(ncols) != list(NODE_COLUMNS) or list(scols) != list(SHAPE_COLUMNS):
        raise _bad(where, f"unexpected columns (want {NODE_COLUMNS} and {SHAPE_COLUMNS})")
    models: list[NodeModel] = []
    for i, r in enumerate(nrows):
        try:
            m = NodeModel(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
        except (TypeError, ValueError, IndexError):
            raise _bad(where, f"nodes.models[{i}]: {r!r} is not [model, gpus, cpu_milli, memory_mib, count]") from None
        if m.gpus < 1 or m.cpu_milli <= 0 or m.memory_mib <= 0 or m.count < 0 or not m.model:
            raise _bad(where, f"nodes.models[{i}]: {r!r} has a non-positive value or no model")
        models.append(m)
    shapes: list[ShapeCount] = []
    for i, r in enumerate(srows):
        try:
            shape = Shape(cpu_milli=int(r[0]), memory_mib=int(r[1]), num_gpu=int(r[2]), gpu_milli=int(r[3]),
                          gpu_types=frozenset(t for t in str(r[4]).split("|") if t))
            count = int(r[5])
        except (TypeError, ValueError, IndexError) as exc:
            raise _bad(where, f"pods.shapes[{i}]: {r!r}: {exc}") from None
        if count < 0:
            raise _bad(where, f"pods.shapes[{i}]: negative count")
        shapes.append(ShapeCount(shape, count))
    if not models or sum(m.count for m in models) == 0:
        raise _bad(where, "no node model with a count > 0")
    if not shapes or sum(s.count for s in shapes) == 0:
        raise _bad(where, "no pod shape with a count > 0")
    return Profile(models, shapes, dict(data.get("source") or {}), where)


def load_profile(path: str | Path | None = None) -> Profile:
    """Read a profile file; ``None`` or ``"embedded"`` = the committed
    ``scheduler_events/data/workload-profile.json``.  Raises :class:`ProfileError`."""
    p = EMBEDDED_PROFILE if path in (None, "embedded") else Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _bad(str(p), f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise _bad(str(p), f"not JSON: {exc}") from None
    return profile_from_dict(data, str(p))


# --------------------------------------------------------------------------- sampling


def _apportion(counts: list[int], n: int) -> list[int]:
    """Largest-remainder apportionment of ``n`` over ``counts`` (ties: larger count, then order)."""
    total = sum(counts)
    exact = [n * c / total for c in counts]
    out = [math.floor(x) for x in exact]
    rest = n - sum(out)
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - out[i]), -counts[i], i))
    for i in order[:rest]:
        out[i] += 1
    return out


def sample_nodes(profile: Profile, nodes: int) -> list[NodeState]:
    """``nodes`` empty nodes with the profile's mix of node configurations
    (largest-remainder apportionment), named ``sim-<model>-<nnn>``."""
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    models = [m for m in profile.node_models if m.count > 0]
    shares = _apportion([m.count for m in models], nodes)
    out: list[NodeState] = []
    per_model: Counter[str] = Counter()
    for m, k in zip(models, shares):
        for _ in range(k):
            out.append(m.node(f"sim-{m.model.lower()}-{per_model[m.model]:03d}"))
            per_model[m.model] += 1
    return out


def sample_pods(profile: Profile, pods: int, seed: int = 0, *, prefix: str = "sim-pod") -> list[TracePod]:
    """``pods`` pods whose shapes are drawn with replacement from the
    profile, weighted by count (``random.Random(seed)``), in arrival order."""
    if pods < 0:
        raise ValueError(f"pods must be >= 0, got {pods}")
    rng = random.Random(seed)
    shapes = [s for s in profile.shapes if s.count > 0]
    drawn = rng.choices([s.shape for s in shapes], weights=[s.count for s in shapes], k=pods)
    width = max(5, len(str(pods)))
    return [TracePod(name=f"{prefix}-{i:0{width}d}", shape=s, row=0) for i, s in enumerate(drawn)]


def sample_cluster(profile: Profile, nodes: int = 40, pods: int = 400, seed: int = 0) -> tuple[list[NodeState], list[TracePod]]:
    """A scaled-down cluster and pod sequence from ``profile``: see
    :func:`sample_nodes` and :func:`sample_pods`."""
    return sample_nodes(profile, nodes), sample_pods(profile, pods, seed)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scheduler_events.simulate.profile",
                                 description="Compute the workload profile (figures only) from the Alibaba GPU trace.")
    ap.add_argument("--trace-dir", default=None, help="folder of openb_*.csv (default ../shared/trace/cluster-trace-gpu-v2023)")
    ap.add_argument("--node-list", default=NODE_LIST)
    ap.add_argument("--pod-list", default=POD_LIST)
    ap.add_argument("--out", default=str(EMBEDDED_PROFILE), help="output file (default: the embedded profile)")
    args = ap.parse_args(argv)
    from .trace import TraceError

    try:
        prof = profile_from_trace(args.trace_dir, node_list=args.node_list, pod_list=args.pod_list)
    except TraceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_profile(prof, args.out)
    print(f"wrote {args.out}: {prof['nodes']['count']} nodes in {len(prof['nodes']['models'])} configurations, "
          f"{prof['pods']['count']} pods in {len(prof['pods']['shapes'])} shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
