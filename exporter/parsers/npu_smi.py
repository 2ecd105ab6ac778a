"""Parser for Huawei Ascend ``npu-smi info`` (the default device table).

Source: Huawei's ``npu-smi`` tool (ships with the Ascend driver; its version
is the driver version).  Layouts handled, all by the same format rules:

* **classic 910/910B** (npu-smi 22.x-24.x): two header rows
  ``| NPU Name | Health | Power(W) Temp(C) Hugepages-Usage(page) |`` and
  ``| Chip | Bus-Id | AICore(%) Memory-Usage(MB) HBM-Usage(MB) |``; two rows
  per chip.  Capture: npu-smi 24.1.0, 8x 910B.
* **A3 dual-die** ("Ascend910", npu-smi 25.5): the second header row reads
  ``Chip Phy-Id``; each NPU appears as one block per die, and the second
  die prints its power as ``-``.  Capture: npu-smi 25.5.1 (a parser test
  fixture whose column alignment is irregular: header and data ``|`` do not
  line up, which is why nothing here uses character positions).
* **25.x "NPU ID"** (Ascend950, npu-smi 25.6+): ``| NPU ID | Name | Health |
  ...`` in separate cells, ``NPU Util(%)`` instead of ``AICore(%)``, Bus-Id
  ``NA``, and a process table with ``Process id in container``.  No capture
  of this layout is in the fixtures: it is parsed from the documented
  format (Huawei's npu-smi reference) and marked by tests as such.
* **process tables** (``| NPU Chip | Process id | Process name | Process
  memory(MB) |``, or ``NPU ID`` in 25.x) and the ``No running processes
  found in NPU N`` lines.

Format rules used (see :func:`box_rows`, :func:`split_names`,
:func:`split_values`):

* rule lines (``+---+``, ``+===+``, ``|---+---|``) separate blocks;
* a row is split into cells at ``|``; each header cell lists one or more
  column names separated by whitespace (multi-word names such as
  ``NPU ID``, ``NPU Util(%)``, ``Process id in container`` are known); the
  data cell in the same position lists the values in the same order, with
  ``used / total`` pairs (any spacing around ``/``) as one value;
* the unit of a column is the one its header names in brackets (``(MB)``
  is MiB, as Huawei's docs and npu-exporter use it; ``(W)``, ``(C)``,
  ``(%)``);
* a header is a run of rows whose first token is a name (``NPU``), a data
  block is as many rows as the header had (so blocks are found with or
  without rule lines between them);
* ``-``, ``NA``, ``N/A`` and empty mean "not reported".

Mapping (all to base units, see :mod:`exporter.model`):

* one :class:`Device` per chip (die) row block: ``kind="npu"``,
  ``vendor="huawei"``, ``model`` = Name, ``index`` = Phy-Id (or the
  ``Device`` logical id of 310P-style ``Chip Device`` rows) when printed,
  else the NPU id; ``name`` (``hw_name``) = ``npu<N>`` when every NPU in
  the table has a single chip, ``npu<N>-chip<M>`` for every chip when any
  NPU shows several (multi-die A3 boards), so names are uniform per node;
* ``hw_id``: npu-smi info prints no UUID or serial, so it is
  ``huawei-<bus id>`` when the row's Bus-Id is printed and unique in the
  table, else ``huawei-<hw_name>`` (``huawei-npu3``, ``huawei-npu0-chip1``),
  which is only unique within one node;
* ``Health`` -> ``state``: OK -> ok, Warning/Alarm -> degraded,
  Critical -> failed, UNKNOWN (device absent or not started) -> failed;
* ``Power(W)`` -> ``power_watts`` (absent on a secondary die, never 0);
  ``Temp(C)`` -> ``temperatures["gpu"]`` (the chip sensor, under the same
  location NVIDIA's die sensor uses, so panels line up);
* ``AICore(%)`` or ``NPU Util(%)`` -> ``utilization["general"]``;
* memory: HBM (``HBM-Usage``) when its total is above 0, else DDR
  (``Memory-Usage``, 310-class cards) when its total is above 0, else not
  reported; a ``0 / 0`` pair means "this memory does not exist" here;
* ``Hugepages-Usage`` is read and dropped (no schema family);
* the npu-smi version -> ``driver_version``; a version outside
  :data:`KNOWN_MAJORS` adds an ``unknown_version`` Problem, and parsing goes on;
* process rows -> :class:`Process` on the chip named by (NPU, Chip).

Columns the parser does not know add one ``unknown_column`` Problem each;
the known columns of the same block are still read.
"""

from __future__ import annotations

import re

from exporter import schema as S
from exporter.model import Device, Parsed, Problem, Process
from exporter.parsers.nvidia_smi_xml import ValueReader

VENDOR = "huawei"
KIND = "npu"

#: npu-smi major versions whose layouts are covered (driver releases 20.x-25.x).
KNOWN_MAJORS = frozenset(range(20, 26))

CAPABILITIES = {
    "vendor": VENDOR,
    "kind": KIND,
    "tool": "npu-smi info",
    "metrics": [
        S.GPU_UTILIZATION.name, S.GPU_MEMORY_USAGE.name, S.GPU_MEMORY_LIMIT.name,
        S.GPU_MEMORY_UTILIZATION.name, S.POWER.name, S.TEMPERATURE.name, S.STATUS.name,
        S.DEVICE_INFO.name, S.PROCESS_MEMORY.name,
    ],
    "slices": [],
    "status": "stable",
    "source": "captures tested: npu-smi 24.1.0 (8x 910B, classic), npu-smi 25.5.1 (Ascend910 A3 dual-die "
              "with processes; test fixture); 25.x NPU ID layout from the documented format only",
}

# ----------------------------------------------------------------------------
# Box-table helpers (also used by the xpu-smi parser)
# ----------------------------------------------------------------------------

#: Values meaning "not reported" in box tables (lower case).
ABSENT = frozenset({"", "-", "--", "na", "n/a", "[n/a]", "not supported", "[not supported]", "unknown"})

_RULE_CHARS = set("+-=| ")


def is_rule(line: str) -> str | None:
    """``"="`` for a double rule (``+====+``), ``"-"`` for a single rule, else ``None``."""
    text = line.strip()
    if len(text) < 3 or not set(text) <= _RULE_CHARS or not (text.count("-") + text.count("=") >= 3):
        return None
    return "=" if "=" in text else "-"


def cells_of(line: str) -> list[str] | None:
    """Cells of a ``| a | b |`` row, stripped; ``None`` when the line is not a row."""
    text = line.strip()
    if not text.startswith("|"):
        return None
    text = text[1:]
    if text.endswith("|"):
        text = text[:-1]
    return [cell.strip() for cell in text.split("|")]


def box_rows(text: str) -> list[tuple[str, object]]:
    """Tokenise box-table text into ``("rule", "=" | "-")``, ``("row", cells)``
    and ``("text", line)`` items, skipping blank lines."""
    items: list[tuple[str, object]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        kind = is_rule(line)
        if kind is not None:
            items.append(("rule", kind))
            continue
        cells = cells_of(line)
        if cells is not None:
            items.append(("row", cells))
        else:
            items.append(("text", line.strip()))
    return items


_UNIT_SUFFIX = re.compile(r"^(?P<base>.*?)\s*\((?P<unit>[^()]*)\)$")


def base_and_unit(name: str) -> tuple[str, str | None]:
    """``"HBM-Usage(MB)"`` -> ``("hbm-usage", "MB")``; the base is lower-cased."""
    match = _UNIT_SUFFIX.match(name.strip())
    if match is None:
        return name.strip().lower(), None
    return match.group("base").strip().lower(), match.group("unit").strip() or None


def split_names(cell: str, multiword: frozenset[str]) -> list[str]:
    """Column names of one header cell.

    Names are separated by whitespace, except the multi-word names listed in
    ``multiword`` (lower-case bases, unit suffix ignored: ``"npu util"``
    matches ``NPU Util(%)``), found greedily, longest first.
    """
    tokens = cell.split()
    names: list[str] = []
    i = 0
    while i < len(tokens):
        for width in (4, 3, 2):
            if i + width <= len(tokens):
                candidate = " ".join(tokens[i:i + width])
                if base_and_unit(candidate)[0] in multiword:
                    names.append(candidate)
                    i += width
                    break
        else:
            names.append(tokens[i])
            i += 1
    return names


_PAIR_SPACING = re.compile(r"\s*/\s*")
_NA_TOKEN = re.compile(r"(?i)\bN/A\b")


def split_values(cell: str) -> list[str]:
    """Whitespace-separated values of one data cell; ``a / b`` is one value ``a/b``."""
    return _PAIR_SPACING.sub("/", cell.strip()).split()


def assign(names: list[str], cell: str, absorb: frozenset[str]) -> dict[str, str] | None:
    """Map the values of a data ``cell`` onto the header ``names`` of its column.

    A header cell naming one column takes the whole cell text.  Otherwise the
    values are matched in order; when there are more values than names, the
    first column whose base is in ``absorb`` (a product name, which may hold
    spaces) takes the surplus.  ``None`` when the counts cannot be matched.
    """
    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: cell.strip()}
    values = split_values(cell)
    if not values:
        return {name: "" for name in names}
    if len(values) == len(names):
        return dict(zip(names, values))
    if len(values) > len(names):
        surplus = len(values) - len(names)
        for pos, name in enumerate(names):
            if base_and_unit(name)[0] in absorb:
                merged = values[:pos] + [" ".join(values[pos:pos + surplus + 1])] + values[pos + surplus + 1:]
                return dict(zip(names, merged))
    return None


def absent(raw: str | None) -> bool:
    """True for the "not reported" forms of box tables (``-``, ``NA``, ``N/A``...)."""
    return raw is None or raw.strip().lower() in ABSENT


def pair(raw: str | None) -> tuple[str | None, str | None]:
    """``"1197/13553"`` -> ``("1197", "13553")``; absent parts are ``None``."""
    if raw is None:
        return None, None
    text = _PAIR_SPACING.sub("/", _NA_TOKEN.sub("NA", raw.strip()))
    if "/" not in text:
        return (None if absent(text) else text), None
    used, _, total = text.partition("/")
    return (None if absent(used) else used), (None if absent(total) else total)


#: header unit (as printed) -> unit understood by :class:`ValueReader`.
UNIT_ALIASES = {"MB": "MiB", "MiB": "MiB", "GB": "GiB", "GiB": "GiB", "KB": "KiB", "KiB": "KiB",
                "W": "W", "C": "C", "%": "%", "page": None}


class Blocks:
    """Walk box-table items into (header, blocks) tables.

    ``is_header_start(cells)`` says whether a row opens a header; a header
    goes on over following rows that look like headers (every non-empty
    cell starts with a letter).  ``rows_per_block(header)`` gives the block
    height.  Produces ``tables``: a list of ``(header rows, [block rows])``,
    and problems for rows that do not fit.
    """

    def __init__(self, items, is_header_start, rows_per_block, is_info, problems: list[Problem]) -> None:
        self.tables: list[tuple[list[list[str]], list[list[list[str]]]]] = []
        header: list[list[str]] | None = None
        collecting = False
        pending: list[list[str]] = []
        blocks: list[list[list[str]]] = []

        def flush() -> None:
            nonlocal pending
            if header is None:
                pending = []
                return
            height = rows_per_block(header)
            while len(pending) >= height:
                blocks.append(pending[:height])
                pending = pending[height:]
            if pending:
                problems.append(Problem(kind="truncated",
                                        detail=f"block of {len(pending)} row(s), {height} expected: {pending[0]}"))
            pending = []

        for kind, value in items:
            if kind == "rule":
                collecting = False
                flush()
                continue
            if kind == "text":
                continue
            cells: list[str] = value  # type: ignore[assignment]
            if is_info(cells):
                continue
            if is_header_start(cells):
                flush()
                if header is not None:
                    self.tables.append((header, blocks))
                header, blocks, collecting = [cells], [], True
                continue
            if collecting and _header_like(cells):
                assert header is not None
                header.append(cells)
                continue
            collecting = False
            if header is None:
                continue  # banner or foreign rows before any table header
            pending.append(cells)
        flush()
        if header is not None:
            self.tables.append((header, blocks))


def _header_like(cells: list[str]) -> bool:
    filled = [c for c in cells if c]
    return bool(filled) and all(c[0].isalpha() for c in filled)


# ----------------------------------------------------------------------------
# npu-smi
# ----------------------------------------------------------------------------

_MULTIWORD = frozenset({"npu id", "npu util", "chip id", "phy id", "process id in container", "process id",
                        "process name", "process memory", "ai core", "ai cpu"})
_ABSORB = frozenset({"name", "process name"})

#: header base name -> canonical key
_COLUMNS = {
    "npu": "npu", "npu id": "npu", "name": "name", "chip": "chip", "chip id": "chip",
    "phy-id": "phy", "phy id": "phy", "device": "phy", "health": "health", "power": "power", "temp": "temp",
    "hugepages-usage": "hugepages", "bus-id": "bus", "aicore": "aicore", "ai core": "aicore",
    "npu util": "npu_util", "memory-usage": "ddr", "hbm-usage": "hbm",
    "process id": "pid", "process name": "pname", "process memory": "pmem",
    "process id in container": "cpid",
}

_TITLE = re.compile(r"npu-smi\s+(?P<v1>\S+)(?:.*?Version:\s*(?P<v2>\S+))?", re.IGNORECASE)
_HEALTH = {"ok": "ok", "warning": "degraded", "alarm": "degraded", "critical": "failed", "unknown": "failed"}


def detect(text: str) -> bool:
    """True when ``text`` looks like ``npu-smi info`` output."""
    head = text[:4096]
    if re.search(r"^\s*\|\s*npu-smi\s+\S+", head, re.MULTILINE):
        return True
    return bool(re.search(r"^\s*\|\s*NPU\b", head, re.MULTILINE)) and "Health" in head and "Bus-Id" in head


def _first_token(cells: list[str]) -> str:
    for cell in cells:
        if cell:
            return cell.split()[0]
    return ""


def _is_header_start(cells: list[str]) -> bool:
    return bool(cells) and cells[0].split()[:1] == ["NPU"]


def _is_info(cells: list[str]) -> bool:
    text = " ".join(cells).lower()
    return text.startswith("no running processes") or text.startswith("npu-smi")


def _rows_per_block(header: list[list[str]]) -> int:
    return 1 if _is_process_header(header) else len(header)


def _is_process_header(header: list[list[str]]) -> bool:
    return any("process id" in cell.lower() for cell in header[0])


def _read_block(header: list[list[str]], block: list[list[str]], out: Parsed, unknown: set[str]) -> dict:
    """Canonical key -> (raw value, unit) for one block."""
    record: dict[str, tuple[str, str | None]] = {}
    for row_no, (head_cells, cells) in enumerate(zip(header, block)):
        if len(cells) != len(head_cells):
            out.problems.append(Problem(kind="parse",
                                        detail=f"row {row_no + 1} of block has {len(cells)} cells, header "
                                               f"{len(head_cells)}: {cells}"))
            continue
        for head, cell in zip(head_cells, cells):
            names = split_names(head, _MULTIWORD)
            values = assign(names, cell, _ABSORB)
            if values is None:
                out.problems.append(Problem(kind="parse", detail=f"cannot match {cell!r} to columns {names}"))
                continue
            for name, raw in values.items():
                base, unit = base_and_unit(name)
                key = _COLUMNS.get(base)
                if key is None:
                    if name not in unknown:
                        unknown.add(name)
                        out.problems.append(Problem(kind="unknown_column", detail=f"npu-smi column {name!r}"))
                    continue
                record[key] = (raw, unit)
    return record


def _int(record: dict, key: str, reader: ValueReader) -> int | None:
    raw = record.get(key, (None, None))[0]
    if absent(raw):
        return None
    return reader.integer(raw, "count", key)


def _number(record: dict, key: str, kind: str, default_unit: str, reader: ValueReader) -> float | None:
    raw, unit = record.get(key, (None, None))
    if absent(raw):
        return None
    return reader.number(raw, kind, key, UNIT_ALIASES.get(unit or "", None) or default_unit)


def _memory(record: dict, key: str, reader: ValueReader) -> tuple[int | None, int | None]:
    raw, unit = record.get(key, (None, None))
    used, total = pair(raw)
    unit_name = UNIT_ALIASES.get(unit or "MB") or "MiB"
    return (reader.integer(used, "bytes", f"{key}.used", unit_name) if used is not None else None,
            reader.integer(total, "bytes", f"{key}.total", unit_name) if total is not None else None)


def parse(text: str) -> Parsed:
    """Parse ``npu-smi info`` output; see the module docstring for the rules."""
    out = Parsed()
    items = box_rows(text)
    version = None
    for kind, value in items:
        if kind == "row" and value and value[0].lower().startswith("npu-smi"):
            match = _TITLE.search(" ".join(value))  # type: ignore[arg-type]
            if match:
                version = match.group("v2") or match.group("v1")
            break
    if version is not None:
        major = re.match(r"(\d+)", version)
        if major is None or int(major.group(1)) not in KNOWN_MAJORS:
            out.problems.append(Problem(kind="unknown_version", detail=f"npu-smi {version}"))
    walker = Blocks(items, _is_header_start, _rows_per_block, _is_info, out.problems)
    if not walker.tables:
        out.problems.append(Problem(kind="unknown_format", detail="no npu-smi table header found"))
        return out

    unknown: set[str] = set()
    chips: list[dict] = []
    proc_records: list[dict] = []
    for header, blocks in walker.tables:
        target = proc_records if _is_process_header(header) else chips
        for block in blocks:
            target.append(_read_block(header, block, out, unknown))

    devices = _devices(chips, version, out)
    by_chip = {(npu, chip): dev for (npu, chip), dev in devices}
    out.devices = [dev for _key, dev in devices]
    for record in proc_records:
        reader = ValueReader(out.problems, "process")
        npu = _int(record, "npu", reader)
        chip = _int(record, "chip", reader) or 0
        pid = _int(record, "pid", reader)
        dev = by_chip.get((npu, chip))
        if pid is None or dev is None:
            out.problems.append(Problem(kind="parse", detail=f"process row without pid or known NPU/chip: "
                                                             f"{ {k: v[0] for k, v in record.items()} }"))
            continue
        raw, unit = record.get("pmem", (None, None))
        memory = None
        if not absent(raw):
            memory = reader.integer(raw, "bytes", "process memory", UNIT_ALIASES.get(unit or "MB") or "MiB")
        name = record.get("pname", (None, None))[0]
        out.processes.append(Process(pid=pid, parent_id=dev.hw_id, memory_bytes=memory,
                                     name=None if absent(name) else name))
    return out


def _devices(chips: list[dict], version: str | None, out: Parsed) -> list[tuple[tuple[int, int], Device]]:
    rows = []
    for record in chips:
        reader = ValueReader(out.problems, "npu")
        npu = _int(record, "npu", reader)
        if npu is None:
            out.problems.append(Problem(kind="parse", detail=f"device block without an NPU id: "
                                                             f"{ {k: v[0] for k, v in record.items()} }"))
            continue
        chip = _int(record, "chip", reader)
        rows.append((npu, chip if chip is not None else 0, record, reader))
    per_npu: dict[int, int] = {}
    for npu, _chip, _record, _reader in rows:
        per_npu[npu] = per_npu.get(npu, 0) + 1
    multi_die = any(count > 1 for count in per_npu.values())
    buses: dict[str, int] = {}
    for _npu, _chip, record, reader in rows:
        bus = _bus(record, reader)
        if bus:
            buses[bus] = buses.get(bus, 0) + 1

    result = []
    seen: set[tuple[int, int]] = set()
    for npu, chip, record, reader in rows:
        if (npu, chip) in seen:
            out.problems.append(Problem(kind="parse", detail=f"NPU {npu} chip {chip} listed twice"))
            continue
        seen.add((npu, chip))
        name = f"npu{npu}-chip{chip}" if multi_die else f"npu{npu}"
        bus = _bus(record, ValueReader([], ""))
        hw_id = f"{VENDOR}-{bus}" if bus and buses.get(bus) == 1 else f"{VENDOR}-{name}"
        reader.where = hw_id
        phy = _int(record, "phy", reader)
        health = (record.get("health", (None, None))[0] or "").strip()
        state = "ok"
        if health.lower() == "unknown" or not absent(health):
            state = _HEALTH.get(health.lower(), "ok")
            if health.lower() not in _HEALTH:
                out.problems.append(Problem(kind="parse", detail=f"{hw_id}: unknown Health {health!r}"))
        model = record.get("name", (None, None))[0]
        dev = Device(
            hw_id=hw_id, vendor=VENDOR, model="" if absent(model) else (model or ""), kind=KIND,
            index=phy if phy is not None else npu, name=name, pci_bus_id=bus,
            driver_version=version, state=state,
        )
        dev.power_watts = _number(record, "power", "watts", "W", reader)
        temp = _number(record, "temp", "celsius", "C", reader)
        if temp is not None:
            dev.temperatures["gpu"] = temp
        util = _number(record, "aicore", "ratio", "%", reader)
        if util is None:
            util = _number(record, "npu_util", "ratio", "%", reader)
        if util is not None:
            dev.utilization["general"] = util
        hbm_used, hbm_total = _memory(record, "hbm", reader)
        ddr_used, ddr_total = _memory(record, "ddr", reader)
        if hbm_total:
            dev.memory_used_bytes, dev.memory_total_bytes = hbm_used, hbm_total
        elif ddr_total:
            dev.memory_used_bytes, dev.memory_total_bytes = ddr_used, ddr_total
        result.append(((npu, chip), dev))
    return result


def _bus(record: dict, reader: ValueReader) -> str | None:
    raw = record.get("bus", (None, None))[0]
    if absent(raw):
        return None
    return reader.pci(raw)
