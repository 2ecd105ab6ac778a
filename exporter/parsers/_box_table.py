"""Shared reader and value helpers for nvidia-smi-style box tables.

Private to the table parsers that read this style: ``ixsmi`` (Iluvatar
CoreX), ``cnmon`` (Cambricon) and ``mx_smi`` (MetaX); ``mthreads_gmi``
(Moore Threads) uses the value helpers only.  The format rules are those of
nvidia-smi's default table, as described in :mod:`exporter.parsers.ixsmi`:
a box drawn with ``+``, ``-``, ``=`` and ``|``; a banner of ``key: value``
pairs; header rows whose cells hold titles separated by two or more spaces;
the ``===`` rule; then one block of rows per device, blocks separated by
``+---+`` borders; a second box for processes.

:func:`open_device_table` is the opening every table parser shares: read
the boxes, find the device table, report a missing one, read the banner,
check the version and the columns, report a box that stops early.
:func:`add_processes` reads the process boxes that follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from exporter.model import Device, Parsed, Problem, Process
from exporter.parsers.nvidia_smi_xml import ValueReader, clean


@dataclass(slots=True)
class BoxTable:
    """One box of an nvidia-smi-style table.

    ``banner``: content lines above the header (text inside the bars).
    ``header``: header rows, each a list of cell texts (split at ``|``).
    ``blocks``: body blocks (one per device or record), each a list of rows,
    each a list of cell texts.  ``truncated``: the box stopped early (a line
    without its closing bar, or no closing border).  ``line``: 1-based line
    number where the box starts.
    """

    banner: list[str] = field(default_factory=list)
    header: list[list[str]] = field(default_factory=list)
    blocks: list[list[list[str]]] = field(default_factory=list)
    truncated: bool = False
    line: int = 0

    def titles(self) -> list[list[list[str]]]:
        """Header titles: row -> cell -> titles (split at 2+ spaces)."""
        return [[split_chunks(cell) for cell in row] for row in self.header]

    def title_set(self) -> set[str]:
        """Every header title, normalised (see :func:`norm_title`)."""
        return {norm_title(t) for row in self.titles() for cell in row for t in cell}

    def header_text(self) -> str:
        return " ".join(" ".join(row) for row in self.header)


_BORDER_CHARS = frozenset("+-=|")
_CHUNK_SEP = re.compile(r"\s{2,}")


def split_chunks(text: str) -> list[str]:
    """``"Fan  Temp   Pwr:Usage/Cap"`` -> ``["Fan", "Temp", "Pwr:Usage/Cap"]``
    (the table's rule: titles and values are separated by 2+ spaces)."""
    text = text.strip()
    return _CHUNK_SEP.split(text) if text else []


def norm_title(title: str) -> str:
    """Title as used for lookups: lower case, inner spaces collapsed."""
    return " ".join(title.lower().split())


def _is_border(line: str) -> bool:
    return len(line) > 1 and set(line) <= _BORDER_CHARS and ("-" in line or "=" in line)


def _cells(line: str) -> list[str]:
    inner = line[1:-1] if line.endswith("|") else line[1:]
    return inner.split("|")


def read_box_tables(text: str) -> list[BoxTable]:
    """Every box in ``text``, in order.  A box is a run of lines starting
    with ``+`` or ``|`` (leading blanks allowed); any other line ends it."""
    tables: list[BoxTable] = []
    run: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line[:1] in ("+", "|"):
            run.append((number, line))
            continue
        if run:
            tables.append(_build(run))
            run = []
    if run:
        tables.append(_build(run))
    return tables


def _build(run: list[tuple[int, str]]) -> BoxTable:
    table = BoxTable(line=run[0][0])
    pre: list[tuple[bool, str]] = []  # (is border, line) before the === rule
    body_started = False
    block: list[list[str]] = []
    last_complete_border = False
    for _number, line in run:
        complete = len(line) > 1 and line[-1] in "|+"
        if not complete:
            # a line cut short: the output ended (or was damaged) here
            table.truncated = True
            last_complete_border = False
            continue
        border = _is_border(line)
        last_complete_border = border
        if not body_started:
            if border and "=" in line:
                body_started = True
            else:
                pre.append((border, line))
            continue
        if border:
            if block:
                table.blocks.append(block)
                block = []
        else:
            block.append(_cells(line))
    if block:
        table.blocks.append(block)
    if not last_complete_border:
        table.truncated = True
    if body_started:
        last_border = max((i for i, (b, _l) in enumerate(pre) if b), default=-1)
        table.banner = [_cells(l)[0].strip() for b, l in pre[:max(last_border, 0)] if not b]
        table.header = [_cells(l) for b, l in pre[last_border + 1:] if not b]
    else:
        table.banner = [" ".join(c.strip() for c in _cells(l)) for b, l in pre if not b]
    return table


def banner_pairs(lines: list[str]) -> dict[str, str]:
    """``"IX-ML: 4.1.0   Driver Version: 4.1.0"`` -> ``{"ix-ml": "4.1.0",
    "driver version": "4.1.0"}``; a chunk without a colon (``"CNMON
    v5.10.22"``) splits at its last space.  Keys are normalised titles."""
    out: dict[str, str] = {}
    for line in lines:
        for chunk in split_chunks(line):
            if ":" in chunk:
                key, _sep, value = chunk.partition(":")
            elif " " in chunk:
                key, _sep, value = chunk.rpartition(" ")
            else:
                continue
            out[norm_title(key)] = value.strip()
    return out


#: value shapes used when 2+-space splitting does not give one value per title
_NUM = r"[-+]?\d+(?:\.\d+)?"
_NA = r"(?:N/?A|-+)"
_SHAPES = {
    "percent": rf"(?:{_NA}|{_NUM}\s?%)",
    "temp": rf"(?:{_NA}|{_NUM}\s?C)",
    "power": rf"(?:{_NA}(?:\s?W)?|{_NUM}\s?[mk]?W)\s?/\s?(?:{_NA}(?:\s?W)?|{_NUM}\s?[mk]?W)|{_NA}",
    "memory": rf"(?:{_NA}|{_NUM})\s?(?:[KMGT]i?B)?\s?/\s?(?:{_NA}|{_NUM}\s?[KMGT]i?B)|{_NA}",
    "clock": rf"(?:{_NA}|{_NUM}\s?[kMG]?Hz)",
    "index": r"\d+",
    "word": r"\S+",
}
#: normalised title -> shape name (shared by the table parsers)
TITLE_SHAPES = {
    "gpu": "index", "card": "index", "vf": "word", "fan": "percent", "temp": "temp",
    "pwr:usage/cap": "power", "memory-usage": "memory", "vmemory-usage": "memory",
    "gpu-util": "percent", "util": "percent", "clock-sm": "clock", "clock-mem": "clock",
    "perf": "word", "bus-id": "word", "persistence-m": "word", "sgpu-m": "word",
    "firmware": "word", "driver": "word", "inited": "word", "ecc-error": "word",
    "mode": "word", "sr-iov": "word", "compute-mode": "word",
}


def _fit(titles: list[str], text: str) -> list[str] | None:
    """Values of ``text`` for ``titles``: split at 2+ spaces, or, when that
    does not give one value per title, matched against each title's shape."""
    chunks = split_chunks(text)
    if len(chunks) == len(titles):
        return chunks
    if not chunks:
        return [""] * len(titles)
    parts = []
    for i, title in enumerate(titles):
        shape = _SHAPES.get(TITLE_SHAPES.get(norm_title(title), ""), r".+?")
        parts.append(f"(?P<v{i}>{shape})")
    match = re.fullmatch(r"\s*" + r"\s+".join(parts) + r"\s*", text)
    if match is None:
        return None
    return [match.group(f"v{i}") for i in range(len(titles))]


def block_record(table: BoxTable, block: list[list[str]], problems: list[Problem], where: str) -> dict[str, str]:
    """Map one body block to ``{normalised title: raw value}`` by the header.

    Rows and cells are paired with the header rows and cells in order;
    within a cell, values are paired with titles in order.  A row or cell
    count that disagrees with the header, or a cell whose values cannot be
    paired, gives a ``parse`` Problem and skips only that part.
    """
    record: dict[str, str] = {}
    titles = table.titles()
    for r, row in enumerate(block):
        if r >= len(titles):
            problems.append(Problem("parse", f"{where}: {len(block)} rows for {len(titles)} header rows"))
            break
        if len(row) != len(titles[r]):
            problems.append(Problem("parse", f"{where}: row {r + 1} has {len(row)} cells, header {len(titles[r])}"))
        for cell_titles, cell in zip(titles[r], row):
            values = _fit(cell_titles, cell)
            if values is None:
                problems.append(Problem("parse", f"{where}: cannot pair {cell.strip()!r} with {cell_titles}"))
                continue
            for title, value in zip(cell_titles, values):
                record[norm_title(title)] = value.strip()
    return record


def check_columns(table: BoxTable, known: set[str] | frozenset[str], problems: list[Problem], tool: str) -> None:
    """One ``unknown_column`` Problem per header title not in ``known``."""
    for title in sorted(table.title_set() - set(known)):
        problems.append(Problem("unknown_column", f"{tool}: column {title!r} not mapped"))


def check_version(tool: str, version: str | None, known_majors: frozenset[int], problems: list[Problem]) -> None:
    """``unknown_version`` Problem unless ``version``'s major is known."""
    match = re.match(r"v?(\d+)\.", version or "")
    if match is None:
        problems.append(Problem("unknown_version", f"{tool}: no version found"))
    elif int(match.group(1)) not in known_majors:
        problems.append(Problem("unknown_version", f"{tool}: version {version} not seen before; parsed by headers"))


_ABSENT = re.compile(r"^\[?(?:n/?a|-+|not supported|unsupported|not available)\]?(?:\s*[a-z%]{0,3})?$", re.I)
_UNIT = re.compile(rf"^{_NUM}\s*(\S*)$")
_NA_TOKEN = re.compile(r"\bN/A\b", re.I)


def is_absent(raw: str | None) -> bool:
    """True for every "not reported" form: None, empty, ``N/A``, ``[N/A]``,
    ``NA``, ``-``, ``Not Supported``, and those with a unit (``N/A W``)."""
    return raw is None or clean(raw) is None or _ABSENT.match(raw.strip()) is not None


class Values(ValueReader):
    """:class:`ValueReader` that also knows the table forms: absent values
    with units (``N/A W``) and ``used / total`` pairs."""

    def num(self, raw: str | None, kind: str, name: str, default_unit: str | None = None) -> float | None:
        if is_absent(raw):
            return None
        return self.number(raw, kind, name, default_unit)

    def int_(self, raw: str | None, kind: str, name: str, default_unit: str | None = None) -> int | None:
        if is_absent(raw):
            return None
        return self.integer(raw, kind, name, default_unit)

    def pair(self, raw: str | None, kind: str, name: str) -> tuple[float | None, float | None]:
        """``"30 W/ 150 W"``, ``"666/65536 MiB"`` (unit on the second only),
        ``"N/A / N/A"`` -> two base-unit values (None when absent)."""
        if is_absent(raw):
            return None, None
        assert raw is not None
        parts = _NA_TOKEN.sub("NA", raw).split("/")
        if len(parts) != 2:
            self.problems.append(Problem("parse", f"{self.where}: {name}={raw!r}: not a used/total pair"))
            return None, None
        first, second = parts[0].strip(), parts[1].strip()
        unit = _UNIT.match(second)
        default = unit.group(1) if unit and unit.group(1) else None
        return self.num(first, kind, name, default), self.num(second, kind, name, default)


def vendor_hw_id(vendor: str, kind: str, uuid: str | None, serial: str | None, pci: str | None,
                 index: int | None) -> str:
    """``hw_id``: UUID, else serial, else ``<vendor>-<bus id>``, else
    ``<vendor>-<kind><index>``."""
    for value in (uuid, serial):
        if value and not is_absent(value):
            return value.strip()
    if pci:
        return f"{vendor}-{pci}"
    return f"{vendor}-{kind}{index if index is not None else ''}"


def strip_v(version: str | None) -> str | None:
    """``"v4.20.11"`` -> ``"4.20.11"``; absent forms -> None."""
    if is_absent(version):
        return None
    assert version is not None
    version = version.strip()
    return version[1:] if re.match(r"^[vV]\d", version) else version


def no_table_problem(tables: list[BoxTable], tool: str) -> Problem:
    """The Problem for output without a device table: ``unknown_format``
    (no box at all), ``truncated`` (a box cut before its header ended) or
    ``parse``."""
    if not tables:
        return Problem("unknown_format", f"{tool}: no table")
    if any(t.truncated for t in tables):
        return Problem("truncated", f"{tool}: output ends before the device table")
    return Problem("parse", f"{tool}: no device table")


def is_process_table(table: BoxTable) -> bool:
    text = " ".join(table.banner + [" ".join(r) for r in table.header]).strip().lower()
    return text.startswith("process")


_INDEX_TITLES = frozenset({"gpu", "card", "mlu", "dev", "device", "npu", "dcu", "xpu", "gpu index"})
_NO_PROCESS = re.compile(r"^no\b.*\bprocess", re.I)


def parse_processes(table: BoxTable, parents: dict[int, str], values: Values, tool: str) -> list[Process]:
    """Rows of a process box (``GPU  PID  Process name  Usage(MiB)``,
    ``Card  MI  PID  Command Line  MLU Memory Usage``...) -> :class:`Process`.

    The row pattern is built from the header row that names ``PID``: the
    device column (``GPU``/``Card``...), ``PID``, the name column (``name``
    or ``command``), the memory column (``memory`` or ``usage``), one word
    for any other column.  The memory unit is the header's ``(MiB)`` or the
    value's own suffix, else MiB.  "No running processes found" rows are
    skipped; unmatched rows and unknown device indices are ``parse``
    Problems.
    """
    problems = values.problems
    titles: list[str] = []
    for row in table.header:
        chunks = split_chunks(" ".join(row))
        if any(norm_title(t) == "pid" for t in chunks):
            titles = chunks
            break
    if not titles:
        if table.blocks:
            problems.append(Problem("parse", f"{tool}: process table without a PID column"))
        return []
    unit_match = re.search(r"\(([KMG]i?B)\)", table.header_text())
    unit = unit_match.group(1) if unit_match else "MiB"
    parts = []
    roles: set[str] = set()
    for title in titles:
        t = norm_title(title)
        if t in _INDEX_TITLES and "idx" not in roles:
            role, part = "idx", r"(?P<idx>\d+)"
        elif t == "pid" and "pid" not in roles:
            role, part = "pid", r"(?P<pid>\d+)"
        elif ("name" in t or "command" in t) and "name" not in roles:
            role, part = "name", r"(?P<name>.*?)"
        elif ("memory" in t or "usage" in t) and "mem" not in roles:
            role, part = "mem", rf"(?P<mem>{_NA}|{_NUM}\s*(?:[KMG]i?B)?)"
        else:
            role, part = "", r"\S+"
        roles.add(role)
        parts.append(part)
    pattern = re.compile(r"\s*" + r"\s+".join(parts) + r"\s*")
    out: list[Process] = []
    for block in table.blocks:
        for row in block:
            text = " ".join(c.strip() for c in row).strip()
            if not text or _NO_PROCESS.match(text):
                continue
            match = pattern.fullmatch(text)
            if match is None:
                problems.append(Problem("parse", f"{tool}: process row {text[:80]!r} does not fit {titles}"))
                continue
            groups = match.groupdict()
            idx = int(groups["idx"]) if groups.get("idx") else None
            parent = parents.get(idx) if idx is not None else (next(iter(parents.values())) if len(parents) == 1
                                                                 else None)
            if parent is None:
                problems.append(Problem("parse", f"{tool}: process {groups['pid']} on unknown device {idx}"))
                continue
            out.append(Process(
                pid=int(groups["pid"]),
                parent_id=parent,
                memory_bytes=values.int_(groups.get("mem"), "bytes", "process memory", unit),
                name=(groups.get("name") or "").strip() or None,
            ))
    return out


def find_device_table(tables: list[BoxTable], index_title: str) -> BoxTable | None:
    """The first box that is not a process table, names ``index_title``
    (``gpu``, ``card``...) and one of ``name``, ``bus-id``,
    ``memory-usage``."""
    for table in tables:
        titles = table.title_set()
        if not is_process_table(table) and index_title in titles and titles & {"name", "bus-id", "memory-usage"}:
            return table
    return None


@dataclass(slots=True)
class DeviceTable:
    """What :func:`open_device_table` found: every box (``tables``), the
    device box (``table``) and its banner pairs (``banner``)."""

    tables: list[BoxTable]
    table: BoxTable
    banner: dict[str, str]


def open_device_table(text: str, out: Parsed, *, tool: str, index_title: str, version_key: str,
                      known_majors: frozenset[int], known_columns: frozenset[str],
                      version: str | None = None) -> DeviceTable | None:
    """Read the boxes of ``text`` and open the device table.

    No device table -> the :func:`no_table_problem` Problem in ``out`` and
    None.  Otherwise, in this order: ``unknown_version`` unless the major of
    ``version`` (else the banner's ``version_key`` value) is in
    ``known_majors``; ``unknown_column`` per title not in ``known_columns``;
    ``truncated`` when the device box ends early.
    """
    tables = read_box_tables(text)
    table = find_device_table(tables, index_title)
    if table is None:
        out.problems.append(no_table_problem(tables, tool))
        return None
    banner = banner_pairs(table.banner)
    check_version(tool, version or banner.get(version_key), known_majors, out.problems)
    check_columns(table, known_columns, out.problems, tool)
    if table.truncated:
        out.problems.append(Problem("truncated", f"{tool}: device table ends early"))
    return DeviceTable(tables, table, banner)


def add_processes(out: Parsed, opened: DeviceTable, parents: dict[int, str], tool: str) -> None:
    """Every process box other than the device box -> ``out.processes``
    (see :func:`parse_processes`); a process box that ends early adds a
    ``truncated`` Problem."""
    for proc_table in opened.tables:
        if proc_table is opened.table or not is_process_table(proc_table):
            continue
        if proc_table.truncated:
            out.problems.append(Problem("truncated", f"{tool}: process table ends early"))
        out.processes.extend(parse_processes(proc_table, parents, Values(out.problems, tool), tool))


def read_temp_power_memory(dev: Device, rec: dict[str, str], values: Values) -> None:
    """The readings every table parser maps alike, in this order: ``Temp`` C
    -> ``temperatures["gpu"]``; ``Pwr:Usage/Cap`` W -> ``power_watts`` /
    ``power_limit_watts``; ``Memory-Usage`` -> ``memory_used_bytes`` /
    ``memory_total_bytes``.  Absent values stay None (no temperature key)."""
    temp = values.num(rec.get("temp"), "celsius", "Temp")
    if temp is not None:
        dev.temperatures["gpu"] = temp
    dev.power_watts, dev.power_limit_watts = values.pair(rec.get("pwr:usage/cap"), "watts", "Pwr:Usage/Cap")
    used, total = values.pair(rec.get("memory-usage"), "bytes", "Memory-Usage")
    dev.memory_used_bytes = int(used) if used is not None else None
    dev.memory_total_bytes = int(total) if total is not None else None
