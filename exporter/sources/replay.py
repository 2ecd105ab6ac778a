"""Replay source: snapshots from captured vendor-tool output on disk.

Reads one file, or every regular file directly inside a directory (hidden
files and sub-directories are skipped), detects each file's format from its
*content* (never its name), parses it with the matching pure parser and
merges what the files say about the same device:

* ``nvidia-smi -q -x`` XML (root element ``nvidia_smi_log``);
* ``nvidia-smi -q`` text (the ``==============NVSMI LOG==============`` banner);
* ``nvidia-smi --query-gpu=... --format=csv`` (header with ``index``/``uuid``/
  ``name``/``pci.bus_id`` fields) and ``--query-compute-apps`` CSV (header
  with ``pid`` and ``used_gpu_memory``/``process_name``);
* ``nvidia-smi -L`` (``GPU 0: ... (UUID: GPU-...)`` lines).

Devices are matched by ``hw_id`` (the UUID), and when one side has no UUID,
by serial number or PCI bus id.  Per field, the richest record wins (the one
reporting the most fields; ties go to the more detailed format: XML, then
``-q`` text, then CSV, then ``-L``).  MIG slices are matched by ``hw_id`` or
by (parent, MIG device index), so a ``-q -x`` slice (``gi1/ci0``, memory)
and a ``-L`` slice (``MIG-`` UUID, profile) become one.  Two records with
the same id but different models are still merged, with a ``conflict``
Problem.  Processes are kept once per (pid, physical device), pointing at
the MIG slice when any capture names it (``--query-compute-apps`` names only
the GPU).

Unknown or unreadable files become a :class:`Problem` (``unknown_format``,
``io``, ``too_large``, or the parser's own kinds), never an exception.
Files are re-read on every :meth:`ReplaySource.collect`; a file whose bytes
have not changed reuses its previous parse.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from pathlib import Path

from exporter.model import Device, Parsed, Problem, Slice, Snapshot
from exporter.parsers import (
    amd_smi,
    cnmon,
    hy_smi,
    ixsmi,
    mthreads_gmi,
    mx_smi,
    npu_smi,
    nvidia_smi_csv,
    nvidia_smi_list,
    nvidia_smi_text,
    nvidia_smi_xml,
    xpu_smi,
)

#: Files larger than this are skipped with a ``too_large`` Problem.
MAX_FILE_BYTES = nvidia_smi_xml.MAX_INPUT_CHARS

_SNIFF_CHARS = 4096
_XML_ROOT = re.compile(r"<nvidia_smi_log[\s>/]")
_LIST_LINE = re.compile(r"^GPU\s+\d+:.*\(UUID:")


def _is_xml(head: str) -> bool:
    return head.lstrip().startswith("<") and _XML_ROOT.search(head) is not None


def _is_text(head: str) -> bool:
    return nvidia_smi_text.BANNER in head


def _first_line(head: str) -> str:
    return next((line for line in head.splitlines() if line.strip()), "")


def _is_list(head: str) -> bool:
    return _LIST_LINE.match(_first_line(head)) is not None


def _csv_kind(head: str) -> str | None:
    first = _first_line(head)
    if "," not in first:
        return None
    return nvidia_smi_csv.header_kind(first)


#: (format name, detector over the first 4 KiB, parser, merge rank).
FORMATS: tuple[tuple[str, Callable[[str], bool], Callable[[str], Parsed], int], ...] = (
    ("nvidia-smi-xml", _is_xml, nvidia_smi_xml.parse, 4),
    ("nvidia-smi-text", _is_text, nvidia_smi_text.parse, 3),
    ("nvidia-smi-list", _is_list, nvidia_smi_list.parse, 1),
    ("nvidia-smi-query-gpu", lambda head: _csv_kind(head) == "query-gpu", nvidia_smi_csv.parse_query_gpu, 2),
    ("nvidia-smi-compute-apps", lambda head: _csv_kind(head) == "compute-apps", nvidia_smi_csv.parse_compute_apps, 2),
    ("amd-smi-metric-json", amd_smi.detect, amd_smi.parse, 3),
    ("npu-smi-info", npu_smi.detect, npu_smi.parse, 2),
    ("hy-smi", hy_smi.detect, hy_smi.parse, 2),
    ("xpu-smi", xpu_smi.detect, xpu_smi.parse, 2),
    ("cnmon", cnmon.detect, cnmon.parse, 2),
    ("ixsmi", ixsmi.detect, ixsmi.parse, 2),
    ("mx-smi", mx_smi.detect_table, mx_smi.parse_table, 2),
    ("mx-smi-dmon", mx_smi.detect_dmon, mx_smi.parse_dmon, 1),
    ("mthreads-gmi", mthreads_gmi.detect, mthreads_gmi.parse, 2),
)


#: documentation next to captures (README.md, SOURCES.md): never a tool's output, not counted
_DOC_SUFFIXES = (".md", ".rst", ".html")


def detect_format(text: str) -> str | None:
    """Name of the format ``text`` is in (see :data:`FORMATS`), or ``None``."""
    head = text[:_SNIFF_CHARS]
    if "\x00" in head:
        return None
    for name, detector, _parser, _rank in FORMATS:
        if detector(head):
            return name
    return None


_PARSERS = {name: (parser, rank) for name, _detector, parser, rank in FORMATS}


class ReplaySource:
    """A source that replays captures from a file or a directory.

    ``collect()`` is blocking and re-reads the files each call; ``start()``
    and ``close()`` do nothing.  ``clock`` gives the snapshot timestamp.
    """

    name = "replay"

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        # path -> (bytes read last time, format name, parse result)
        self._cache: dict[Path, tuple[bytes, str | None, Parsed]] = {}

    def start(self) -> None:
        """No background work: nothing to start."""

    def close(self) -> None:
        """Nothing to release."""

    def collect(self) -> Snapshot:
        """Read, detect, parse and merge every capture; return one Snapshot."""
        problems: list[Problem] = []
        results: list[tuple[int, int, Parsed]] = []  # (rank, order, parsed)
        seen: set[Path] = set()
        for order, file in enumerate(self._files(problems)):
            seen.add(file)
            entry = self._load(file, problems)
            if entry is None:
                continue
            fmt, parsed = entry
            if fmt is None:
                problems.append(Problem(kind="unknown_format", detail=f"{file.name}: format not recognised"))
                continue
            problems.extend(Problem(p.kind, f"{file.name}: {p.detail}") for p in parsed.problems)
            results.append((_PARSERS[fmt][1], order, parsed))
        for stale in set(self._cache) - seen:
            del self._cache[stale]
        merged = merge(results)
        problems.extend(merged.problems)
        return Snapshot(
            source=self.name,
            timestamp=self._clock(),
            devices=merged.devices,
            slices=merged.slices,
            processes=merged.processes,
            problems=problems,
        )

    def _files(self, problems: list[Problem]) -> list[Path]:
        try:
            if self.path.is_dir():
                return sorted(
                    p for p in self.path.iterdir()
                    if not p.name.startswith(".") and p.is_file() and p.suffix.lower() not in _DOC_SUFFIXES
                )
            if self.path.is_file():
                return [self.path]
            problems.append(Problem(kind="io", detail=f"{self.path}: not a file or directory"))
        except OSError as err:
            problems.append(Problem(kind="io", detail=f"{self.path}: {err}"))
        return []

    def _load(self, file: Path, problems: list[Problem]) -> tuple[str | None, Parsed] | None:
        try:
            size = file.stat().st_size
            if size > MAX_FILE_BYTES:
                problems.append(Problem(kind="too_large", detail=f"{file.name}: {size} bytes"))
                return None
            with file.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            problems.append(Problem(kind="io", detail=f"{file.name}: {err.strerror or err}"))
            return None
        if len(data) > MAX_FILE_BYTES:
            problems.append(Problem(kind="too_large", detail=f"{file.name}: over {MAX_FILE_BYTES} bytes"))
            return None
        cached = self._cache.get(file)
        if cached is not None and cached[0] == data:
            return cached[1], cached[2]
        text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
        fmt = detect_format(text)
        parsed = _PARSERS[fmt][0](text) if fmt is not None else Parsed()
        self._cache[file] = (data, fmt, parsed)
        return fmt, parsed


# --------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------


def _richness(obj: Device | Slice) -> int:
    score = 0
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, dict):
            score += len(value)
        elif value is not None and value != "":
            score += 1
    return score


def _merge_records(records: list, skip: set[str]) -> dict:
    """Field values merged over ``records`` sorted best first."""
    values: dict = {}
    for f in dataclasses.fields(records[0]):
        if f.name in skip:
            continue
        first = getattr(records[0], f.name)
        if isinstance(first, dict):
            merged: dict = {}
            for rec in reversed(records):  # best last, so it overrides
                merged.update(getattr(rec, f.name))
            values[f.name] = merged
        else:
            values[f.name] = next(
                (getattr(r, f.name) for r in records if getattr(r, f.name) not in (None, "")),
                first,
            )
    return values


def merge(results: list[tuple[int, int, Parsed]]) -> Parsed:
    """Merge parse results given as ``(format rank, file order, Parsed)``.

    Returns new objects (the inputs are not modified): one :class:`Device`
    per physical device, one :class:`Slice` per slice, processes re-pointed
    at the merged ids and de-duplicated by (pid, physical device), and a
    ``conflict`` Problem for each id whose records name different models.
    """
    out = Parsed()
    # ---- devices
    groups: list[list[tuple[tuple, Device]]] = []
    for rank, order, parsed in results:
        for dev in parsed.devices:
            key = (-_richness(dev), -rank, order)
            group = next((g for g in groups if any(_same_device(dev, other) for _k, other in g)), None)
            if group is not None and _fallback_id(dev) and all(k[2] != order for k, _ in group):
                # only a per-node fallback id (vendor-kindN) links them, and they come from other files:
                # two hosts' captures in one directory; keep both and say so
                out.problems.append(Problem(
                    kind="ambiguous_id",
                    detail=f"{dev.hw_id}: two captures name a device with no UUID, serial or bus id the same way; "
                           "kept apart (replay one host per directory)"))
                dev = dataclasses.replace(dev, hw_id=f"{dev.hw_id}#{order}")
                group = None
            if group is None:
                groups.append([(key, dev)])
            else:
                group.append((key, dev))
    device_alias: dict[str, str] = {}
    for group in groups:
        records = [dev for _key, dev in sorted(group, key=lambda item: item[0])]
        values = _merge_records(records, {"hw_id", "state"})
        uuids = [r.hw_id for r in records if r.hw_id.startswith("GPU-")]
        values["hw_id"] = uuids[0] if uuids else records[0].hw_id
        values["state"] = next((r.state for r in records if r.state != "ok"), "ok")
        models = sorted({r.model for r in records if r.model})
        if len(models) > 1:
            out.problems.append(
                Problem(kind="conflict", detail=f"{values['hw_id']}: captures disagree on model: {models}")
            )
        if _placeholder(values["hw_id"]) and any(d.hw_id == values["hw_id"] for d in out.devices):
            # two different devices behind one placeholder UUID: name this one by its bus
            values["hw_id"] = f"nvidia-{values['pci_bus_id']}" if values.get("pci_bus_id") else \
                f"{values['hw_id']}#{len(out.devices)}"
        for rec in records:
            device_alias.setdefault(rec.hw_id, values["hw_id"])
        out.devices.append(Device(**values))

    # ---- slices
    slice_groups: list[list[tuple[tuple, Slice]]] = []
    for rank, order, parsed in results:
        for sl in parsed.slices:
            key = (-_richness(sl), -rank, order)
            group = next(
                (g for g in slice_groups if any(_same_slice(sl, other, device_alias) for _k, other in g)), None
            )
            if group is None:
                slice_groups.append([(key, sl)])
            else:
                group.append((key, sl))
    slice_alias: dict[str, str] = {}
    for group in slice_groups:
        records = [sl for _key, sl in sorted(group, key=lambda item: item[0])]
        values = _merge_records(records, {"hw_id", "slice_id", "parent_id"})
        migs = [r.hw_id for r in records if r.hw_id.startswith("MIG-")]
        values["hw_id"] = migs[0] if migs else records[0].hw_id
        gi_ci = [r.slice_id for r in records if r.slice_id.startswith("gi")]
        values["slice_id"] = gi_ci[0] if gi_ci else records[0].slice_id
        values["parent_id"] = device_alias.get(records[0].parent_id, records[0].parent_id)
        for rec in records:
            slice_alias[rec.hw_id] = values["hw_id"]
        out.slices.append(Slice(**values))

    # ---- processes: one per (pid, physical device); a record naming the
    # slice is more specific than one naming its parent GPU (compute-apps CSV
    # names only the GPU of a process that runs on a MIG slice)
    slice_parent = {sl.hw_id: sl.parent_id for sl in out.slices}
    seen: dict[tuple[int, str], int] = {}
    ranked = sorted(
        ((rank, order, proc) for rank, order, parsed in results for proc in parsed.processes),
        key=lambda item: (-item[0], item[1]),
    )
    for _rank, _order, proc in ranked:
        parent = slice_alias.get(proc.parent_id) or device_alias.get(proc.parent_id, proc.parent_id)
        key = (proc.pid, slice_parent.get(parent, parent))
        if key not in seen:
            seen[key] = len(out.processes)
            out.processes.append(dataclasses.replace(proc, parent_id=parent))
            continue
        kept = out.processes[seen[key]]
        if parent in slice_parent and kept.parent_id not in slice_parent:
            kept.parent_id = parent
        if kept.memory_bytes is None:
            kept.memory_bytes = proc.memory_bytes
        kept.name = kept.name or proc.name
    return out


def _fallback_id(dev: Device) -> bool:
    """True when the device has no identity but its per-node index (no UUID,
    serial or bus id): ``hygon-dcu0``."""
    return not dev.serial and not dev.pci_bus_id and dev.hw_id[:4] not in ("GPU-", "MIG-")


def _placeholder(hw_id: str) -> bool:
    """All-zero UUIDs (masked captures, some VMs) identify nothing."""
    return hw_id[:4] in ("GPU-", "MIG-") and set(hw_id[4:]) <= {"0", "-"}


def _same_device(a: Device, b: Device) -> bool:
    if a.vendor != b.vendor:
        return False  # two vendors' captures never describe the same device
    if a.hw_id == b.hw_id and _placeholder(a.hw_id):
        # a placeholder UUID: trust the PCI bus id and the model instead
        if a.pci_bus_id and b.pci_bus_id and a.pci_bus_id != b.pci_bus_id:
            return False
        return not (a.model and b.model and a.model != b.model)
    if a.hw_id == b.hw_id:
        return True
    if a.hw_id.startswith("GPU-") and b.hw_id.startswith("GPU-"):
        return False  # two different UUIDs are two devices
    if a.serial and a.serial == b.serial:
        return True
    return bool(a.pci_bus_id) and a.pci_bus_id == b.pci_bus_id


def _same_slice(a: Slice, b: Slice, device_alias: dict[str, str]) -> bool:
    if a.hw_id == b.hw_id:
        return True
    if a.hw_id.startswith("MIG-") and b.hw_id.startswith("MIG-"):
        return False
    index_a, index_b = a.info.get("mig_device_index"), b.info.get("mig_device_index")
    return (
        a.slice_type == b.slice_type
        and index_a is not None
        and index_a == index_b
        and device_alias.get(a.parent_id, a.parent_id) == device_alias.get(b.parent_id, b.parent_id)
    )
