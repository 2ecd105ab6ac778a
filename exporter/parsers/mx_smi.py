"""Parser for MetaX ``mx-smi``: the default table and ``mx-smi dmon ...
--format csv``.

Source: MetaX's ``mx-smi``.  Captures seen: MX-SMI 2.2.8 table (2 x N260,
``sGPU-M`` ``Native``, memory written ``666/65536 MiB``; a hand-kept test
fixture that looks like real output) and ``mx-smi dmon --show-temperature
--show-board-power --show-usage --show-memory --total-memory --show-bdf
--format csv -c 1`` (2 x MXC500; a test fixture).

**Table** (:func:`parse_table`): the nvidia-smi-style box read by
:func:`exporter.parsers._box_table.read_box_tables`, preceded by a ``mx-smi
version: 2.2.8`` line and a ``MetaX System Management Interface Log``
banner; the box banner carries ``Kernel Mode Driver Version`` and ``BIOS
Version``.  Mapping: ``GPU`` -> ``index``; ``NAME`` -> ``model``; ``Bus-id``
-> ``pci_bus_id``; ``GPU-Util`` % -> ``utilization["general"]``; ``Temp`` C
-> ``temperatures["gpu"]``; ``Pwr:Usage/Cap`` W -> ``power_watts`` /
``power_limit_watts``; ``Memory-Usage`` (``used/total MiB``, the unit once
after the total) -> bytes; ``GPU-State`` -> ``state`` (``Available``/
``Normal`` ok; a word meaning error, fault or lost -> ``failed``; anything
else: unchanged plus an ``unknown_value`` Problem); the banner's kernel-mode
driver and BIOS versions -> ``driver_version`` / ``firmware_version``.
``Persistence-M``, ``Perf`` and ``sGPU-M`` have no schema family.  The
process box (``GPU  PID  Process Name  GPU Memory Usage(MiB)``) ->
processes.

sGPU: the table shows only the slicing *mode* (``sGPU-M``: ``Native``,
``sGPU``, ``Disabled``), not the sGPU instances, and neither does dmon, so
no ``sgpu`` slices can be built from these outputs.

**dmon CSV** (:func:`parse_dmon`): a header row of field names, a **unit
row** (``idx, idx, C, C, C, W, %, ..., GB,``), then one row per device
(and die).  Values are converted with the unit row's unit: ``dev`` ->
``index``; ``die`` (a device with more than one die gets one
:class:`Device` per die, ``-die<N>`` appended to the id of die N > 0);
``hottemp``/``soctemp``/``coretemp`` -> ``temperatures["hotspot"|"soc"|
"gpu"]``; ``power`` (W or mW) -> ``power_watts``; ``gpu``/``vpue``/``vpud``
% -> ``utilization["general"|"encoder"|"decoder"]``; ``total`` -> 
``memory_total_bytes`` (mx-smi's ``GB`` is GiB: 64 GB on a 65536 MiB card);
``bdfid`` -> ``pci_bus_id``.  ``vram``/``visvram``/``xtt`` are percentages of
capacity: the model has no capacity-ratio field and converting them to
bytes would invent precision (1 % of 64 GiB is 655 MiB), so they are not
mapped.  dmon prints no model name (``model`` is empty; the replay source
merges it from the table by bus id).

``hw_id``: mx-smi prints no UUID in either output (``mx-smi -L`` does), so
``metax-<bus id>``, else ``metax-gpu<index>``.

Problems: unknown column -> ``unknown_column``; an mx-smi major version
other than 2 -> ``unknown_version`` (parsed anyway; dmon prints no
version); a box that stops early or a cut last CSV row -> ``truncated``
(the row is dropped: its bus id, the identity, is in the last column); a
missing unit row -> ``parse`` (defaults C, W, %, GiB); unparsable values ->
``parse``.
"""

from __future__ import annotations

import csv
import re

from exporter.model import Device, Parsed, Problem
from exporter.parsers._box_table import (
    Values,
    add_processes,
    block_record,
    is_absent,
    open_device_table,
    read_temp_power_memory,
    strip_v,
    vendor_hw_id,
)

VENDOR = "metax"
KIND = "gpu"
TOOL = "mx-smi"
KNOWN_MAJORS = frozenset({2})

CAPABILITIES = {
    "vendor": VENDOR,
    "kind": KIND,
    "tool": "mx-smi (default table; dmon --format csv)",
    "metrics": [
        "hw_gpu_utilization_ratio",
        "hw_gpu_memory_usage_bytes",
        "hw_gpu_memory_limit_bytes",
        "hw_gpu_memory_utilization_ratio",
        "hw_power_watts",
        "accel_power_limit_watts",
        "hw_temperature_celsius",
        "hw_status",
        "accel_device_info",
        "accel_process_memory_usage_bytes",
    ],
    "slices": [],
    "status": "stable",
    "source": "captures tested: mx-smi 2.2.8 table (2x N260, test fixture), "
              "mx-smi dmon --format csv (2x MXC500, test fixture)",
}

_TABLE_DETECT = re.compile(r"^\s*\|\s*MX-SMI\s+\d|MetaX System Management Interface", re.M)
_TOOL_VERSION = re.compile(r"^\s*mx-smi\s+version\s*:\s*(\S+)", re.M | re.I)

KNOWN_COLUMNS = frozenset({
    "gpu", "name", "persistence-m", "bus-id", "gpu-util", "sgpu-m", "temp", "pwr:usage/cap", "perf",
    "memory-usage", "gpu-state",
})

_OK_STATES = frozenset({"available", "normal", "ok", "healthy", "in use", "inuse", "busy"})
_FAILED = re.compile(r"error|fault|fail|lost|abnormal|unhealthy|broken", re.I)

#: dmon field -> what it fills; fields known but not mapped map to None
DMON_FIELDS: dict[str, tuple[str, str] | None] = {
    "dev": ("index", "count"),
    "die": ("die", "count"),
    "hottemp": ("temp:hotspot", "celsius"),
    "soctemp": ("temp:soc", "celsius"),
    "coretemp": ("temp:gpu", "celsius"),
    "power": ("power", "watts"),
    "gpu": ("util:general", "ratio"),
    "vpue": ("util:encoder", "ratio"),
    "vpud": ("util:decoder", "ratio"),
    "total": ("memory_total", "bytes"),
    "bdfid": ("pci", ""),
    "vram": None,
    "visvram": None,
    "xtt": None,
}
#: units assumed when the unit row is missing
_DMON_DEFAULT_UNITS = {"celsius": "C", "watts": "W", "ratio": "%", "bytes": "GiB", "count": ""}
#: mx-smi writes binary sizes with decimal names (64 GB = 65536 MiB)
_SIZE_UNITS = {"GB": "GiB", "MB": "MiB", "KB": "KiB", "TB": "TiB"}


def detect_table(text: str) -> bool:
    """The ``mx-smi`` table: an ``MX-SMI <version>`` box row or the
    ``MetaX System Management Interface`` banner."""
    return _TABLE_DETECT.search(text[:4096]) is not None


def _first_rows(text: str, count: int) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.strip()][:count]
    return [[cell.strip().lower() for cell in line.split(",")] for line in lines]


def detect_dmon(text: str) -> bool:
    """``mx-smi dmon --format csv``: a header whose first field is ``dev``
    and that names at least two other dmon fields."""
    rows = _first_rows(text[:4096], 1)
    if not rows or rows[0][0] != "dev":
        return False
    return len(set(rows[0]) & (set(DMON_FIELDS) - {"dev"})) >= 2


def detect(text: str) -> bool:
    """Either ``mx-smi`` output (see :func:`detect_table`, :func:`detect_dmon`)."""
    return detect_table(text) or detect_dmon(text)


def parse(text: str) -> Parsed:
    """Parse either ``mx-smi`` output, chosen by its content; a table
    followed by a dmon CSV (the CLI backend appends ``mx-smi dmon`` to
    ``mx-smi``) gives the table's devices completed from the dmon rows."""
    if detect_dmon(text):
        return parse_dmon(text)
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if detect_dmon(line)), None)
    if start is None:
        return parse_table(text)
    table = parse_table("".join(lines[:start]))
    dmon = parse_dmon("".join(lines[start:]))
    table.problems.extend(dmon.problems)
    merge_dmon(table.devices, dmon.devices)
    return table


def merge_dmon(devices: list[Device], dmon: list[Device]) -> None:
    """Complete table ``devices`` from ``dmon`` devices of the same bus id
    (else the same index): readings the table lacks (hotspot and SoC
    temperatures, encoder/decoder utilization...) are added, the table's own
    values are kept.  dmon devices without a match are appended."""
    for extra in dmon:
        match = next((d for d in devices if extra.pci_bus_id and d.pci_bus_id == extra.pci_bus_id), None)
        if match is None and extra.pci_bus_id is None:
            match = next((d for d in devices if d.index == extra.index), None)
        if match is None or "-die" in (extra.name or ""):  # a second die is a device of its own
            devices.append(extra)
            continue
        for key, value in extra.temperatures.items():
            match.temperatures.setdefault(key, value)
        for key, value in extra.utilization.items():
            match.utilization.setdefault(key, value)
        if match.power_watts is None:
            match.power_watts = extra.power_watts
        if match.memory_total_bytes is None:
            match.memory_total_bytes = extra.memory_total_bytes


# --------------------------------------------------------------------------
# the default table
# --------------------------------------------------------------------------


def _state(raw: str | None, values: Values) -> str:
    if is_absent(raw):
        return "ok"
    assert raw is not None
    text = raw.strip().lower()
    if text in _OK_STATES:
        return "ok"
    if _FAILED.search(text):
        return "failed"
    values.problems.append(Problem("unknown_value", f"{values.where}: GPU-State {raw!r} not mapped"))
    return "ok"


def parse_table(text: str) -> Parsed:
    """Parse the ``mx-smi`` default table into devices and processes."""
    out = Parsed()
    tool_version = _TOOL_VERSION.search(text)
    opened = open_device_table(text, out, tool=TOOL, index_title="gpu", version_key="mx-smi",
                               known_majors=KNOWN_MAJORS, known_columns=KNOWN_COLUMNS,
                               version=tool_version.group(1) if tool_version else None)
    if opened is None:
        return out
    table, banner = opened.table, opened.banner
    driver = strip_v(banner.get("kernel mode driver version") or banner.get("driver version"))
    bios = strip_v(banner.get("bios version"))
    parents: dict[int, str] = {}
    for order, block in enumerate(table.blocks):
        where = f"{TOOL} block {order}"
        rec = block_record(table, block, out.problems, where)
        values = Values(out.problems, where)
        index = values.int_(rec.get("gpu"), "count", "GPU")
        if index is None:
            index = order
        raw_pci = rec.get("bus-id")
        pci = None if is_absent(raw_pci) else values.pci(raw_pci, "Bus-id")
        dev = Device(
            hw_id=vendor_hw_id(VENDOR, KIND, None, None, pci, index),
            vendor=VENDOR,
            model=rec.get("name") if rec.get("name") and not is_absent(rec.get("name")) else "",
            kind=KIND,
            index=index,
            name=f"{KIND}{index}",
            driver_version=driver,
            firmware_version=bios,
            pci_bus_id=pci,
        )
        values.where = dev.hw_id
        util = values.num(rec.get("gpu-util"), "ratio", "GPU-Util")
        if util is not None:
            dev.utilization["general"] = util
        read_temp_power_memory(dev, rec, values)
        dev.state = _state(rec.get("gpu-state"), values)
        out.devices.append(dev)
        parents[index] = dev.hw_id
    add_processes(out, opened, parents, TOOL)
    return out


# --------------------------------------------------------------------------
# dmon --format csv
# --------------------------------------------------------------------------


def _is_unit_row(cells: list[str]) -> bool:
    """The unit row: no cell is a number (``idx``, ``C``, ``W``, ``%``, ``GB``, blank)."""
    return bool(cells) and not any(re.fullmatch(r"[-+]?\d+(?:\.\d+)?", c.strip()) for c in cells)


def parse_dmon(text: str) -> Parsed:
    """Parse ``mx-smi dmon ... --format csv`` into devices (see the module doc)."""
    out = Parsed()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        out.problems.append(Problem("parse", f"{TOOL} dmon: empty output"))
        return out
    try:
        rows = list(csv.reader(lines, skipinitialspace=True))
    except csv.Error as err:
        out.problems.append(Problem("parse", f"{TOOL} dmon: CSV: {err}"))
        return out
    names = [cell.strip().lower() for cell in rows[0]]
    if names[-1:] == [""]:
        names = names[:-1]
    for name in names:
        if name not in DMON_FIELDS:
            out.problems.append(Problem("unknown_column", f"{TOOL} dmon: column {name!r} not mapped"))
    data = rows[1:]
    units: list[str] = []
    if data and _is_unit_row(data[0]):
        units = [cell.strip() for cell in data[0]]
        data = data[1:]
    else:
        out.problems.append(Problem("parse", f"{TOOL} dmon: no unit row; assuming C, W, %, GiB"))
    records: list[tuple[int, int, Device]] = []
    for number, cells in enumerate(data, start=3 if units else 2):
        cells = [cell.strip() for cell in cells]
        if len(cells) == len(names) + 1 and cells[-1] == "":
            cells = cells[:-1]  # a trailing comma
        if len(cells) != len(names):
            last = number == (len(data) + (2 if units else 1))
            kind = "truncated" if last and len(cells) < len(names) else "parse"
            out.problems.append(Problem(kind, f"{TOOL} dmon row {number}: {len(cells)} cells for {len(names)} "
                                              "fields; row skipped"))
            continue
        records.append(_dmon_device(dict(zip(names, cells)), dict(zip(names, units)), number, out.problems))
    dies: dict[int, int] = {}
    for index, _die, _dev in records:
        dies[index] = dies.get(index, 0) + 1
    for index, die, dev in records:
        if dies[index] > 1 and die:
            dev.hw_id = f"{dev.hw_id}-die{die}"
            dev.name = f"{KIND}{index}-die{die}"
        out.devices.append(dev)
    return out


def _dmon_device(rec: dict[str, str], units: dict[str, str], number: int,
                 problems: list[Problem]) -> tuple[int, int, Device]:
    values = Values(problems, f"{TOOL} dmon row {number}")

    def read(name: str) -> float | None:
        spec = DMON_FIELDS.get(name)
        if spec is None or name not in rec:
            return None
        _target, kind = spec
        unit = units.get(name) or _DMON_DEFAULT_UNITS.get(kind, "")
        unit = _SIZE_UNITS.get(unit, unit)
        if unit == "idx":
            unit = ""
        return values.num(rec[name], kind, name, unit or None)

    index_value = read("dev")
    index = int(index_value) if index_value is not None else number
    die_value = read("die")
    die = int(die_value) if die_value is not None else 0
    raw_pci = rec.get("bdfid")
    pci = None if is_absent(raw_pci) else values.pci(raw_pci, "bdfid")
    dev = Device(
        hw_id=vendor_hw_id(VENDOR, KIND, None, None, pci, index),
        vendor=VENDOR,
        model="",
        kind=KIND,
        index=index,
        name=f"{KIND}{index}",
        pci_bus_id=pci,
    )
    values.where = dev.hw_id
    for name, (target, _kind) in ((n, s) for n, s in DMON_FIELDS.items() if s is not None):
        if target in ("index", "die", "pci"):
            continue
        value = read(name)
        if value is None:
            continue
        group, _sep, key = target.partition(":")
        if group == "temp":
            dev.temperatures[key] = value
        elif group == "util":
            dev.utilization[key] = value
        elif target == "power":
            dev.power_watts = value
        elif target == "memory_total":
            dev.memory_total_bytes = int(value)
    return index, die, dev
