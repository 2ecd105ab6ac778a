"""Parser for Iluvatar CoreX ``ixsmi`` (the default table).

Source: Iluvatar's ``ixsmi`` (IX-ML).  Captures seen: IX-ML 4.1.0 / driver
4.1.0 (16 x BI-V150: 8 dual-die boards, power on one die per board only) and
IX-ML 4.0.0 / driver 4.1.0 (1 x BI-V150S, ``CUDA Version: N/A``, process table
cut mid-header).  IX-ML 4.4 widens the box from 79 to 82 columns; nothing
here depends on widths.

Format rules (nvidia-smi's default table): a box drawn with ``+``, ``-``,
``=`` and ``|``.  A banner row (``IX-ML: 4.1.0  Driver Version: 4.1.0  CUDA
Version: 10.2``: ``key: value`` pairs separated by two or more spaces), an
inner border, then header rows whose ``|``-separated cells hold column titles
separated by two or more spaces (``Fan  Temp  Perf  Pwr:Usage/Cap``), the
``===`` rule, then one block of as many rows as there are header rows per
device, blocks separated by ``+---+`` borders.  Each value sits in the same
row and cell as its title, in title order.  A second box holds the process
table (``GPU  PID  Process name  Usage(MiB)``).

Mapping (base units): ``GPU`` -> ``index``; ``Name`` -> ``model``;
``Bus-Id`` -> ``pci_bus_id`` (``0000:13:00.0``); ``Fan`` % -> ``fan_speed``;
``Temp`` C -> ``temperatures["gpu"]``; ``Pwr:Usage/Cap`` W -> ``power_watts``
/ ``power_limit_watts``; ``Memory-Usage`` MiB -> bytes; ``GPU-Util`` % ->
``utilization["general"]``; ``Clock-SM`` / ``Clock-Mem`` MHz ->
``clocks_hz["sm"|"memory"]``; driver version from the banner.  ``Perf`` and
``Compute M.`` have no schema family.  ixsmi prints no UUID or serial, so
``hw_id`` is ``iluvatar-<bus id>``.  On dual-die boards the die without a
power sensor prints ``N/A / N/A``: its power and limit are absent (None),
never 0.

Problems: a column title this parser does not know -> ``unknown_column``
(the column is skipped); an IX-ML major version other than 4 ->
``unknown_version`` (parsed anyway, by the headers); a box that stops early
-> ``truncated`` (complete blocks kept); unparsable values -> ``parse``.

This module also holds the box-table reader and value helpers shared by the
sibling parsers for the same table style (``cnmon``, ``mx_smi``), as
``nvidia_smi_xml`` holds the helpers of the NVIDIA parsers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from exporter.model import Device, Parsed, Problem, Process
from exporter.parsers.nvidia_smi_xml import ValueReader, clean

VENDOR = "iluvatar"
KIND = "gpu"
TOOL = "ixsmi"
#: IX-ML major versions whose layout has been seen.
KNOWN_MAJORS = frozenset({4})

CAPABILITIES = {
    "vendor": VENDOR,
    "kind": KIND,
    "tool": "ixsmi (default table)",
    "metrics": [
        "hw_gpu_utilization_ratio",
        "hw_gpu_memory_usage_bytes",
        "hw_gpu_memory_limit_bytes",
        "hw_gpu_memory_utilization_ratio",
        "hw_power_watts",
        "accel_power_limit_watts",
        "hw_temperature_celsius",
        "accel_clock_frequency_hertz",
        "accel_fan_speed_ratio",
        "accel_device_info",
        "accel_process_memory_usage_bytes",
    ],
    "slices": [],
    "status": "stable",
    "source": "captures tested: ixsmi IX-ML 4.1.0 (16x BI-V150, dual-die power), IX-ML 4.0.0 (BI-V150S)",
}


# ==========================================================================
# Shared: nvidia-smi-style box tables (used by cnmon and mx_smi too)
# ==========================================================================


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


# ==========================================================================
# ixsmi
# ==========================================================================

_DETECT = re.compile(r"^\s*\|\s*IX-ML\b", re.M)

#: normalised titles this parser maps (or knows and deliberately skips)
KNOWN_COLUMNS = frozenset({
    "gpu", "name", "bus-id", "clock-sm", "clock-mem", "fan", "temp", "perf", "pwr:usage/cap",
    "memory-usage", "gpu-util", "compute m.", "uuid", "serial",
})


def detect(text: str) -> bool:
    """``ixsmi`` output: a box row starting with ``IX-ML``."""
    return _DETECT.search(text[:4096]) is not None


def _device_table(tables: list[BoxTable]) -> BoxTable | None:
    for table in tables:
        titles = table.title_set()
        if not is_process_table(table) and "gpu" in titles and titles & {"name", "bus-id", "memory-usage"}:
            return table
    return None


def parse(text: str) -> Parsed:
    """Parse ``ixsmi`` output into devices and processes (see the module doc)."""
    out = Parsed()
    tables = read_box_tables(text)
    table = _device_table(tables)
    if table is None:
        out.problems.append(no_table_problem(tables, TOOL))
        return out
    banner = banner_pairs(table.banner)
    check_version(TOOL, banner.get("ix-ml"), KNOWN_MAJORS, out.problems)
    driver = strip_v(banner.get("driver version"))
    check_columns(table, KNOWN_COLUMNS, out.problems, TOOL)
    if table.truncated:
        out.problems.append(Problem("truncated", f"{TOOL}: device table ends early"))
    parents: dict[int, str] = {}
    for order, block in enumerate(table.blocks):
        rec = block_record(table, block, out.problems, f"{TOOL} block {order}")
        values = Values(out.problems, f"{TOOL} block {order}")
        index = values.int_(rec.get("gpu"), "count", "GPU")
        if index is None:
            index = order
        pci = values.pci(rec.get("bus-id"), "Bus-Id") if not is_absent(rec.get("bus-id")) else None
        uuid, serial = rec.get("uuid"), rec.get("serial")
        dev = Device(
            hw_id=vendor_hw_id(VENDOR, KIND, uuid, serial, pci, index),
            vendor=VENDOR,
            model=rec.get("name") or "",
            kind=KIND,
            index=index,
            name=f"{KIND}{index}",
            serial=None if is_absent(serial) else serial,
            driver_version=driver,
            pci_bus_id=pci,
        )
        values.where = dev.hw_id
        dev.fan_speed = values.num(rec.get("fan"), "ratio", "Fan")
        temp = values.num(rec.get("temp"), "celsius", "Temp")
        if temp is not None:
            dev.temperatures["gpu"] = temp
        dev.power_watts, dev.power_limit_watts = values.pair(rec.get("pwr:usage/cap"), "watts", "Pwr:Usage/Cap")
        used, total = values.pair(rec.get("memory-usage"), "bytes", "Memory-Usage")
        dev.memory_used_bytes = int(used) if used is not None else None
        dev.memory_total_bytes = int(total) if total is not None else None
        util = values.num(rec.get("gpu-util"), "ratio", "GPU-Util")
        if util is not None:
            dev.utilization["general"] = util
        for title, clock in (("clock-sm", "sm"), ("clock-mem", "memory")):
            hz = values.num(rec.get(title), "hz", title)
            if hz is not None:
                dev.clocks_hz[clock] = hz
        out.devices.append(dev)
        parents[index] = dev.hw_id
    for proc_table in tables:
        if proc_table is table or not is_process_table(proc_table):
            continue
        if proc_table.truncated:
            out.problems.append(Problem("truncated", f"{TOOL}: process table ends early"))
        out.processes.extend(parse_processes(proc_table, parents, Values(out.problems, TOOL), TOOL))
    return out
