"""Reader for Alibaba's ``cluster-trace-gpu-v2023`` (the "openb" GPU trace of
the FGD paper): ``openb_node_list_*.csv`` and ``openb_pod_list_*.csv``.

Node list columns: ``sn, cpu_milli, memory_mib, gpu, model``.
Pod list columns: ``name, cpu_milli, memory_mib, num_gpu, gpu_milli`` and,
except in the ``multigpu*`` files, ``gpu_spec, qos, pod_phase,
creation_time, deletion_time, scheduled_time``.

Bad input is never dropped silently:

* a structural problem (file missing, a required column missing, a value that
  is not an integer) raises :class:`TraceError`, which names the file and the
  row (row 1 is the header, so data rows start at 2, as a spreadsheet shows);
* a row that parses but cannot be simulated is skipped and counted in
  ``skipped`` (reason -> list of row numbers): negative or zero values where
  they are not allowed, an unknown GPU model, a pod that asks for more than
  any node has (only when the nodes are passed to :func:`read_pods`).

What counts as "not allowed":

* node: ``cpu_milli <= 0`` or ``memory_mib <= 0`` (``nonpositive_capacity``),
  ``gpu < 0`` (``negative_gpu``), ``gpu > 0`` with an empty ``model``
  (``gpu_without_model``), a model outside ``known_models``
  (``unknown_gpu_model``).  A node with ``gpu = 0`` is kept (it can still run
  CPU-only pods) and counted in ``without_gpus``; the FGD experiment uses
  ``openb_node_list_gpu_node.csv``, which has none.
* pod: a negative ``cpu_milli``/``memory_mib``/``num_gpu``/``gpu_milli``
  (``negative_value``); ``num_gpu > 0`` with ``gpu_milli <= 0``
  (``zero_gpu_milli``); ``num_gpu = 0`` with ``gpu_milli > 0``
  (``gpu_milli_without_gpu``); ``gpu_milli > 1000`` (``gpu_milli_over_1000``:
  one device is 1000 milli); ``num_gpu > 1`` with ``gpu_milli < 1000``
  (``multi_gpu_partial``: the trace's GPU-sharing model has no multi-GPU
  share); a ``gpu_spec`` entry outside ``known_models``
  (``unknown_gpu_model``); and, when ``nodes`` is given, a pod that no empty
  node could host (``larger_than_any_node``).  Zero CPU or memory is allowed
  for a pod (Kubernetes allows zero requests; the default trace has one pod
  with ``memory_mib = 0``).

``gpu_spec`` is a ``|``-separated list of acceptable models (``V100M16|V100M32``);
duplicates are merged and the list becomes ``Shape.gpu_types`` (empty = any
model).  Empty time fields (``scheduled_time`` of pods never scheduled) read
as ``None``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scheduler_events.fragmentation import NodeState, Shape

#: GPU models the trace and the reference simulator know.  G1/G2/G3 are
#: Alibaba's undisclosed internal codes.
KNOWN_GPU_MODELS = frozenset(
    {"G1", "G2", "G3", "T4", "P100", "V100M16", "V100M32", "A10",
     "P4", "M40", "1080", "2080", "3090", "A100"}
)

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
POD_OPTIONAL_COLUMNS = ("gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time")

MILLI = 1000


class TraceError(ValueError):
    """A trace file that cannot be read: names the file and the row."""

    def __init__(self, path: str | os.PathLike, row: int | None, message: str):
        self.path = str(path)
        self.row = row
        where = f"{self.path}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {message}")


@dataclass(slots=True)
class TracePod:
    """One pod of a pod list: its request as a :class:`Shape`, plus the
    trace's times (seconds from the trace's origin) and labels."""

    name: str
    shape: Shape
    row: int
    qos: str | None = None
    phase: str | None = None
    creation_time: int | None = None
    deletion_time: int | None = None
    scheduled_time: int | None = None


@dataclass(slots=True)
class NodeList:
    path: str
    nodes: list[NodeState]
    #: reason -> row numbers of the rows that were skipped
    skipped: dict[str, list[int]] = field(default_factory=dict)
    #: names of kept nodes that have no GPU
    without_gpus: list[str] = field(default_factory=list)

    @property
    def total_gpus(self) -> int:
        return sum(len(n.gpu_free_milli) for n in self.nodes)

    def skipped_count(self) -> int:
        return sum(len(v) for v in self.skipped.values())


@dataclass(slots=True)
class PodList:
    path: str
    pods: list[TracePod]
    skipped: dict[str, list[int]] = field(default_factory=dict)

    def skipped_count(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    @property
    def gpu_demand_milli(self) -> int:
        return sum(p.shape.gpu_demand_milli for p in self.pods)


# -- helpers ---------------------------------------------------------------


def _open_rows(path: Path, required: Sequence[str]) -> tuple[list[str], Iterable[tuple[int, dict[str, str]]]]:
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceError(path, None, f"cannot open: {exc.strerror or exc}") from exc
    reader = csv.DictReader(fh)
    header = reader.fieldnames
    if not header:
        fh.close()
        raise TraceError(path, 1, "empty file, no header")
    header = [h.strip() for h in header]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        fh.close()
        raise TraceError(path, 1, f"missing column(s) {', '.join(missing)} (header: {','.join(header)})")

    def rows():
        with fh:
            for row in reader:
                if None in row:  # more fields than the header
                    raise TraceError(path, reader.line_num, f"{len(header) + len(row[None])} fields, header has {len(header)}")
                if all(v is None or v.strip() == "" for v in row.values()):
                    continue  # blank line
                yield reader.line_num, row

    return header, rows()


def _int(path: Path, line: int, row: dict[str, str | None], column: str, *, optional: bool = False) -> int | None:
    raw = row.get(column)
    if raw is None:
        if optional:
            return None
        raise TraceError(path, line, f"column {column!r} is missing (short row)")
    raw = raw.strip()
    if raw == "":
        if optional:
            return None
        raise TraceError(path, line, f"column {column!r} is empty")
    try:
        return int(raw)
    except ValueError:
        try:
            value = float(raw)
        except ValueError:
            raise TraceError(path, line, f"column {column!r}: {raw!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")) or value != int(value):
            raise TraceError(path, line, f"column {column!r}: {raw!r} is not an integer")
        return int(value)


def _skip(skipped: dict[str, list[int]], reason: str, line: int) -> None:
    skipped.setdefault(reason, []).append(line)


# -- node list -------------------------------------------------------------


def read_nodes(path: str | os.PathLike, *, known_models: frozenset[str] | None = KNOWN_GPU_MODELS) -> NodeList:
    """Read an ``openb_node_list_*.csv``; each kept row becomes an empty
    :class:`NodeState` (all CPU, memory and GPUs free; ``gpu`` devices of
    1000 milli each).  ``known_models=None`` accepts any model name."""
    path = Path(path)
    _, rows = _open_rows(path, NODE_COLUMNS)
    out = NodeList(path=str(path), nodes=[])
    seen: set[str] = set()
    for line, row in rows:
        name = (row.get("sn") or "").strip()
        if not name:
            raise TraceError(path, line, "empty node name (column 'sn')")
        if name in seen:
            raise TraceError(path, line, f"duplicate node name {name!r}")
        cpu = _int(path, line, row, "cpu_milli")
        mem = _int(path, line, row, "memory_mib")
        gpus = _int(path, line, row, "gpu")
        model = (row.get("model") or "").strip()
        if cpu <= 0 or mem <= 0:
            _skip(out.skipped, "nonpositive_capacity", line)
            continue
        if gpus < 0:
            _skip(out.skipped, "negative_gpu", line)
            continue
        if gpus > 0 and not model:
            _skip(out.skipped, "gpu_without_model", line)
            continue
        if model and known_models is not None and model not in known_models:
            _skip(out.skipped, "unknown_gpu_model", line)
            continue
        seen.add(name)
        node = NodeState(
            name=name,
            gpu_type=model,
            cpu_milli=cpu,
            memory_mib=mem,
            cpu_free_milli=cpu,
            memory_free_mib=mem,
            gpu_free_milli=[MILLI] * gpus,
        )
        if gpus == 0:
            out.without_gpus.append(name)
        out.nodes.append(node)
    return out


# -- pod list --------------------------------------------------------------


def _largest_fits(nodes: Sequence[NodeState]):
    """A quick "could any empty node host this shape" test: the capacities of
    each distinct node model."""
    profiles = {(n.gpu_type, n.cpu_milli, n.memory_mib, len(n.gpu_free_milli)) for n in nodes}

    def fits_some(shape: Shape) -> bool:
        for gpu_type, cpu, mem, ngpu in profiles:
            if shape.cpu_milli > cpu or shape.memory_mib > mem:
                continue
            if shape.num_gpu == 0:
                return True
            if shape.num_gpu > ngpu:
                continue
            if shape.gpu_types and gpu_type not in shape.gpu_types:
                continue
            return True
        return False

    return fits_some


def read_pods(
    path: str | os.PathLike,
    *,
    nodes: Sequence[NodeState] | None = None,
    known_models: frozenset[str] | None = KNOWN_GPU_MODELS,
) -> PodList:
    """Read an ``openb_pod_list_*.csv`` into :class:`TracePod` records, in
    file order.  With ``nodes``, pods that no empty node could host are
    skipped and counted (``larger_than_any_node``)."""
    path = Path(path)
    header, rows = _open_rows(path, POD_COLUMNS)
    has = set(header)
    out = PodList(path=str(path), pods=[])
    fits_some = _largest_fits(nodes) if nodes is not None else None
    for line, row in rows:
        name = (row.get("name") or "").strip()
        if not name:
            raise TraceError(path, line, "empty pod name (column 'name')")
        cpu = _int(path, line, row, "cpu_milli")
        mem = _int(path, line, row, "memory_mib")
        num = _int(path, line, row, "num_gpu")
        milli = _int(path, line, row, "gpu_milli")
        times = {
            col: _int(path, line, row, col, optional=True) if col in has else None
            for col in ("creation_time", "deletion_time", "scheduled_time")
        }
        spec = (row.get("gpu_spec") or "").strip() if "gpu_spec" in has else ""
        if min(cpu, mem, num, milli) < 0:
            _skip(out.skipped, "negative_value", line)
            continue
        if num > 0 and milli == 0:
            _skip(out.skipped, "zero_gpu_milli", line)
            continue
        if num == 0 and milli > 0:
            _skip(out.skipped, "gpu_milli_without_gpu", line)
            continue
        if milli > MILLI:
            _skip(out.skipped, "gpu_milli_over_1000", line)
            continue
        if num > 1 and milli < MILLI:
            _skip(out.skipped, "multi_gpu_partial", line)
            continue
        types = frozenset(t.strip() for t in spec.split("|") if t.strip())
        if types and known_models is not None and not types <= known_models:
            _skip(out.skipped, "unknown_gpu_model", line)
            continue
        shape = Shape(cpu_milli=cpu, num_gpu=num, gpu_milli=milli, gpu_types=types, memory_mib=mem)
        if fits_some is not None and not fits_some(shape):
            _skip(out.skipped, "larger_than_any_node", line)
            continue
        out.pods.append(
            TracePod(
                name=name,
                shape=shape,
                row=line,
                qos=(row.get("qos") or "").strip() or None,
                phase=(row.get("pod_phase") or "").strip() or None,
                **times,
            )
        )
    return out


def default_trace_dir() -> Path:
    """``../shared/trace/cluster-trace-gpu-v2023`` next to the project root,
    or ``$ACCELSCOPE_SHARED/trace/cluster-trace-gpu-v2023``."""
    root = Path(__file__).resolve().parents[2]
    shared = Path(os.environ.get("ACCELSCOPE_SHARED", root.parent / "shared"))
    return shared / "trace" / "cluster-trace-gpu-v2023"
