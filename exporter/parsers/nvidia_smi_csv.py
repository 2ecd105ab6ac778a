"""Parser for ``nvidia-smi --query-gpu=... --format=csv`` and
``nvidia-smi --query-compute-apps=... --format=csv``.

Source: NVIDIA's ``nvidia-smi`` tool.  Captures seen: driver 590.48.01
(H100 80GB HBM3, ~230 auto-discovered ``--query-gpu`` fields; H100 MIG
compute-apps) and driver 595.80 (L40S, adds ``kmd_version``).  The header
row is required: it names each field, with the unit in brackets
(``memory.used [MiB]``, ``power.draw [W]``, ``clocks.sm [MHz]``,
``utilization.gpu [%]``, ``clocks_event_reasons_counters.sw_power_cap [us]``).
``--format=csv,noheader`` output cannot be told apart from arbitrary CSV and
is rejected with a Problem; ``nounits`` is fine when the header is present
(the header's unit is then used).  Cells are padded with a space after each
comma; every cell is stripped.
"""

from __future__ import annotations

import csv
import re

from exporter.model import Device, Parsed, Problem, Process
from exporter.parsers.nvidia_smi_xml import (
    THROTTLE_COUNTERS,
    VENDOR,
    ValueReader,
    clean,
    device_hw_id,
    recovery_state,
)

_HEADER_CELL = re.compile(r"^(?P<name>.*?)\s*(?:\[(?P<unit>[^\]]*)\])?$")

#: Header names (lower case) that mark ``--query-gpu`` output.
GPU_ID_FIELDS = frozenset({"index", "uuid", "name", "serial", "pci.bus_id", "gpu_uuid", "gpu_name", "gpu_bus_id"})
#: Header names (lower case) that mark ``--query-compute-apps`` output.
APP_FIELDS = frozenset({"pid", "used_memory", "used_gpu_memory", "process_name"})

# canonical name -> accepted header spellings (lower case)
_ALIASES = {
    "index": ("index",),
    "uuid": ("uuid", "gpu_uuid"),
    "name": ("name", "gpu_name"),
    "serial": ("serial", "gpu_serial"),
    "pci.bus_id": ("pci.bus_id", "gpu_bus_id"),
    "driver_version": ("driver_version",),
    "vbios_version": ("vbios_version",),
    "compute_cap": ("compute_cap",),
    "memory.total": ("memory.total",),
    "memory.used": ("memory.used",),
    "utilization.gpu": ("utilization.gpu",),
    "utilization.memory": ("utilization.memory",),
    "utilization.encoder": ("utilization.encoder",),
    "utilization.decoder": ("utilization.decoder",),
    "temperature.gpu": ("temperature.gpu",),
    "temperature.memory": ("temperature.memory",),
    "power.draw.instant": ("power.draw.instant",),
    "power.draw": ("power.draw",),
    "power.draw.average": ("power.draw.average",),
    "enforced.power.limit": ("enforced.power.limit",),
    "power.limit": ("power.limit",),
    "total_energy_consumption": ("total_energy_consumption",),
    "clocks.graphics": ("clocks.current.graphics", "clocks.gr"),
    "clocks.sm": ("clocks.current.sm", "clocks.sm"),
    "clocks.memory": ("clocks.current.memory", "clocks.mem"),
    "clocks.video": ("clocks.current.video", "clocks.video"),
    "fan.speed": ("fan.speed",),
    "gpu_recovery_action": ("gpu_recovery_action",),
    "remapped_rows.failure": ("remapped_rows.failure",),
    "remapped_rows.pending": ("remapped_rows.pending",),
    "retired_pages.pending": ("retired_pages.pending",),
    "pid": ("pid",),
    "process_name": ("process_name",),
    "used_memory": ("used_gpu_memory", "used_memory"),
}


def split_header(cells: list[str]) -> list[tuple[str, str | None]]:
    """``["memory.used [MiB]", " index"]`` -> ``[("memory.used", "MiB"), ("index", None)]``.

    Names are lower-cased and stripped; the unit keeps its case.
    """
    fields = []
    for cell in cells:
        match = _HEADER_CELL.match(cell.strip())
        assert match is not None  # the pattern matches any string
        fields.append((match.group("name").strip().lower(), match.group("unit") or None))
    return fields


def header_kind(first_line: str) -> str | None:
    """Classify a CSV header line: ``"compute-apps"``, ``"query-gpu"`` or ``None``."""
    try:
        cells = next(csv.reader([first_line], skipinitialspace=True), [])
    except csv.Error:
        return None
    names = {name for name, _ in split_header(cells)}
    if names & APP_FIELDS and "pid" in names:
        return "compute-apps"
    if names & GPU_ID_FIELDS:
        return "query-gpu"
    return None


class _Row:
    """One data row, addressed by canonical field name."""

    def __init__(self, fields: list[tuple[str, str | None]], cells: list[str]) -> None:
        self._values: dict[str, tuple[str, str | None]] = {}
        for (name, unit), cell in zip(fields, cells):
            self._values[name] = (cell.strip(), unit)

    def raw(self, canonical: str) -> tuple[str | None, str | None]:
        for name in _ALIASES.get(canonical, (canonical,)):
            if name in self._values:
                return self._values[name]
        return None, None

    def text(self, canonical: str) -> str | None:
        return clean(self.raw(canonical)[0])

    def names(self) -> list[str]:
        return list(self._values)


def _rows(text: str, problems: list[Problem]) -> tuple[list[tuple[str, str | None]], list[tuple[int, _Row]]]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        problems.append(Problem(kind="parse", detail="empty CSV"))
        return [], []
    reader = csv.reader(lines, skipinitialspace=True)
    rows = []
    try:
        fields = split_header(next(reader))
        for number, cells in enumerate(reader, start=2):
            if len(cells) != len(fields):
                problems.append(
                    Problem(kind="parse", detail=f"row {number}: {len(cells)} cells for {len(fields)} header fields")
                )
            rows.append((number, _Row(fields, cells)))
    except csv.Error as err:
        problems.append(Problem(kind="parse", detail=f"CSV: {err}"))
        return [], []
    return fields, rows


def parse(text: str) -> Parsed:
    """Parse either CSV flavour, chosen by its header (see :func:`header_kind`).

    Output shapes are those of :func:`parse_query_gpu` or
    :func:`parse_compute_apps`.  Output without a recognisable header gives
    one ``unknown_format`` Problem and nothing else.
    """
    first = next((line for line in text.splitlines() if line.strip()), "")
    kind = header_kind(first)
    if kind == "compute-apps":
        return parse_compute_apps(text)
    if kind == "query-gpu":
        return parse_query_gpu(text)
    return Parsed(problems=[Problem(kind="unknown_format", detail="CSV without an nvidia-smi header row")])


def parse_query_gpu(text: str) -> Parsed:
    """Parse ``--query-gpu=... --format=csv`` into one :class:`Device` per row.

    Fields used (any subset; aliases accepted): ``index`` (else row order),
    ``uuid``, ``serial``, ``pci.bus_id`` (normalised ``0000:c1:00.0``),
    ``name`` -> ``model``, ``driver_version``, ``vbios_version`` ->
    ``firmware_version``, ``compute_cap``; ``memory.used/total`` [MiB] ->
    bytes; ``utilization.gpu/encoder/decoder`` [%] -> ratios under
    ``general``/``encoder``/``decoder``; ``utilization.memory`` [%] ->
    ``memory_bandwidth_utilization`` (a bandwidth ratio, not capacity);
    ``temperature.gpu/memory`` -> Celsius; ``power.draw.instant`` (else
    ``power.draw``, else ``power.draw.average``) [W]; ``enforced.power.limit``
    (else ``power.limit``) [W]; ``clocks.current.*`` [MHz] -> Hz;
    ``fan.speed`` [%] -> ratio; ``ecc.errors.{corrected,uncorrected}.volatile.
    {dram,sram}`` (``total`` only when neither is reported) -> ``errors``;
    ``clocks_event_reasons_counters.*`` [us] -> cumulative ``throttle_seconds``;
    ``gpu_recovery_action`` (-> ``degraded``), ``remapped_rows.failure|pending``
    and ``retired_pages.pending`` (-> ``predicted_failure``) -> ``state``.
    Rows with too few or too many cells keep the fields they have and add a
    ``parse`` Problem.
    """
    out = Parsed()
    fields, rows = _rows(text, out.problems)
    if not fields:
        return out
    for order, (number, row) in enumerate(rows):
        reader = ValueReader(out.problems, f"row {number}")
        out.devices.append(_device(row, order, reader))
    return out


def _num(row: _Row, reader: ValueReader, canonical: str, kind: str) -> float | None:
    raw, unit = row.raw(canonical)
    return reader.number(raw, kind, canonical, unit)


def _int(row: _Row, reader: ValueReader, canonical: str, kind: str) -> int | None:
    raw, unit = row.raw(canonical)
    return reader.integer(raw, kind, canonical, unit)


def _device(row: _Row, order: int, reader: ValueReader) -> Device:
    index = _int(row, reader, "index", "count")
    if index is None:
        index = order
    uuid = row.text("uuid")
    serial = row.text("serial")
    pci = reader.pci(row.raw("pci.bus_id")[0])
    hw_id = device_hw_id(uuid, serial, pci, index)
    reader.where = hw_id
    dev = Device(
        hw_id=hw_id,
        vendor=VENDOR,
        model=row.text("name") or "",
        kind="gpu",
        index=index,
        name=f"gpu{index}",
        serial=serial,
        driver_version=row.text("driver_version"),
        firmware_version=row.text("vbios_version"),
        pci_bus_id=pci,
        compute_capability=row.text("compute_cap"),
        state=recovery_state(
            row.text("gpu_recovery_action"),
            row.text("remapped_rows.failure"),
            row.text("remapped_rows.pending"),
            row.text("retired_pages.pending"),
        ),
    )
    dev.memory_total_bytes = _int(row, reader, "memory.total", "bytes")
    dev.memory_used_bytes = _int(row, reader, "memory.used", "bytes")
    for field, task in (
        ("utilization.gpu", "general"),
        ("utilization.encoder", "encoder"),
        ("utilization.decoder", "decoder"),
    ):
        value = _num(row, reader, field, "ratio")
        if value is not None:
            dev.utilization[task] = value
    dev.memory_bandwidth_utilization = _num(row, reader, "utilization.memory", "ratio")
    for field, sensor in (("temperature.gpu", "gpu"), ("temperature.memory", "memory")):
        value = _num(row, reader, field, "celsius")
        if value is not None:
            dev.temperatures[sensor] = value
    for field in ("power.draw.instant", "power.draw", "power.draw.average"):
        dev.power_watts = _num(row, reader, field, "watts")
        if dev.power_watts is not None:
            break
    for field in ("enforced.power.limit", "power.limit"):
        dev.power_limit_watts = _num(row, reader, field, "watts")
        if dev.power_limit_watts is not None:
            break
    raw, unit = row.raw("total_energy_consumption")
    dev.energy_joules = reader.number(raw, "joules", "total_energy_consumption", unit or "mJ")
    for clock in ("graphics", "sm", "memory", "video"):
        value = _num(row, reader, f"clocks.{clock}", "hz")
        if value is not None:
            dev.clocks_hz[clock] = value
    dev.fan_speed = _num(row, reader, "fan.speed", "ratio")

    for etype in ("corrected", "uncorrected"):
        for source in ("dram", "sram"):
            value = _int(row, reader, f"ecc.errors.{etype}.volatile.{source}", "count")
            if value is not None:
                dev.errors[(etype, source)] = value
        if (etype, "dram") not in dev.errors and (etype, "sram") not in dev.errors:
            value = _int(row, reader, f"ecc.errors.{etype}.volatile.total", "count")
            if value is not None:
                dev.errors[(etype, "total")] = value

    prefix = "clocks_event_reasons_counters."
    for name in row.names():
        if not name.startswith(prefix):
            continue
        reason = THROTTLE_COUNTERS.get(name.removeprefix(prefix))
        if reason is None:
            continue
        value = _num(row, reader, name, "seconds")
        if value is not None:
            dev.throttle_seconds[reason] = dev.throttle_seconds.get(reason, 0.0) + value
    return dev


def parse_compute_apps(text: str) -> Parsed:
    """Parse ``--query-compute-apps=... --format=csv`` into :class:`Process` rows.

    ``pid`` -> ``pid``; ``process_name`` -> ``name``; ``used_gpu_memory``
    (alias ``used_memory``) [MiB] -> ``memory_bytes``; ``parent_id`` is the
    row's ``gpu_uuid`` (a ``GPU-`` or ``MIG-`` uuid), else its serial, else
    ``nvidia-<gpu_bus_id>``.  A row without a pid or without any device
    identity is skipped with a ``parse`` Problem.  No devices are returned.
    """
    out = Parsed()
    fields, rows = _rows(text, out.problems)
    for number, row in rows:
        reader = ValueReader(out.problems, f"row {number}")
        pid = _int(row, reader, "pid", "count")
        pci = reader.pci(row.raw("pci.bus_id")[0], "gpu_bus_id")
        uuid, serial = row.text("uuid"), row.text("serial")
        if pid is None or not (uuid or serial or pci):
            out.problems.append(Problem(kind="parse", detail=f"row {number}: process without pid or device id"))
            continue
        out.processes.append(
            Process(
                pid=pid,
                parent_id=device_hw_id(uuid, serial, pci, None),
                memory_bytes=_int(row, reader, "used_memory", "bytes"),
                name=row.text("process_name"),
            )
        )
    return out
