"""Parser for AMD ``amd-smi metric --json``.

Source: AMD's ``amd-smi`` CLI (ROCm 6.x/7.x).  Capture tested: the GPU 0
block of the newer ``{"gpu_data": [...]}`` shape from a ~32 GB RDNA3 card
(a test fixture built from real output; socket_power set to 212 W).  The
older top-level list ``[{"gpu": 0, ...}]`` (same entries) is handled too.

Format rules:

* the document is one JSON value; text before it (amd-smi prints warnings
  on some hosts) is skipped; a document cut short keeps the GPU entries
  that are complete and adds a ``truncated`` Problem;
* one entry per GPU (or per partition), keyed by ``"gpu"`` (its index);
* every scalar is ``{"value": v, "unit": "..."}``, a bare number (older
  releases; the field's customary unit is assumed, see :data:`_DEFAULT_UNIT`),
  a ``"<number> <unit>"`` string, or a "not reported" form (``"N/A"``,
  ``null``, ``""``); arrays mix both forms (``vcn_activity``,
  ``jpeg_activity``); units are converted as stated: ``MB`` is MiB (amd-smi
  and the ROCm docs use it that way), ``J``/``mJ``/``uJ``, ``W``/``mW``,
  ``MHz``/``GHz``, ``C``, ``%``.

Mapping (:class:`Device`, ``kind="gpu"``, ``vendor="amd"``):

* ``usage.gfx_activity`` -> ``utilization["general"]``;
  ``usage.umc_activity`` -> ``memory_bandwidth_utilization`` (bandwidth,
  never capacity); the mean of the reported ``vcn_activity`` engines ->
  ``utilization["decoder"]`` (VCN is AMD's unified codec engine; it is not
  duplicated under ``encoder``); the mean of reported ``jpeg_activity``
  engines -> ``utilization["jpeg"]``;
* ``power.socket_power`` (else ``average_socket_power``,
  ``current_socket_power``) -> ``power_watts``; ``power.power_limit`` /
  ``power_cap`` when present -> ``power_limit_watts``;
* ``clock.gfx_0.clk`` (first reported ``gfx_N``) -> ``clocks_hz["graphics"]``,
  ``mem_0`` -> ``memory``, ``vclk_0`` -> ``video``, ``socclk_0`` -> ``soc``;
* ``temperature.edge``/``hotspot``/``mem`` -> ``temperatures`` ``edge``/
  ``hotspot``/``memory``;
* ``mem_usage.total_vram``/``used_vram`` -> memory bytes;
* ``energy.total_energy_consumption`` -> ``energy_joules``;
* ``fan.usage`` -> ``fan_speed``;
* ``ecc_blocks.<BLOCK>.correctable_count``/``uncorrectable_count`` ->
  ``errors[("corrected"|"uncorrected", "<block>")]``; the ``ecc.total_*``
  counts only when no block reports (source ``total``); deferred counts
  have no ``error_type`` in the schema and are dropped;
* ``pcie.replay_count`` -> ``errors[("pcie_replay", "pcie")]``.

Identity: ``metric`` output carries no UUID, serial or bus id, so ``hw_id``
is ``amd-gpu<index>`` (unique per node only) unless the entry also has
``uuid``, ``asic.asic_serial``/``board.product_serial`` or ``bus.bdf``/
``bdf`` (as merged ``amd-smi static``+``metric`` output or the amdsmi
library source provide): then the UUID, else the serial, else
``amd-<bdf>``.  ``asic.market_name``/``board.product_name`` -> ``model``.

Partitions (MI300-class compute partitioning): an entry that carries a
``partition_id`` (top level or under ``partition``) is one partition.
Partition 0 starts a physical device; partitions with a higher id belong to
the last partition 0 seen (amd-smi lists a device's partitions in order)
unless their bus id names another device.  The physical :class:`Device`
takes its readings from partition 0 only: secondary partitions print
``N/A`` or 0 for power, temperature, clocks and activity, and those are
never used (no zeros).  Each partition becomes a :class:`Slice`
(``slice_type="partition"``, ``slice_id`` ``xcp<N>``, profile = the compute
partition mode in lower case, ``info["memory_partition"]``) with its own
VRAM used/total and its ``gfx_activity`` as utilization when reported.
When all partitions report the same VRAM total the pool is shared (NPS1)
and the device memory is partition 0's; otherwise the device memory is the
sum over partitions.  No partitioned capture is available: experimental.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from exporter import schema as S
from exporter.model import Device, Parsed, Problem, Slice
from exporter.parsers.nvidia_smi_xml import normalise_pci_bus_id

VENDOR = "amd"
KIND = "gpu"

CAPABILITIES = {
    "vendor": VENDOR,
    "kind": KIND,
    "tool": "amd-smi metric --json",
    "metrics": [
        S.GPU_UTILIZATION.name, S.GPU_MEMORY_USAGE.name, S.GPU_MEMORY_LIMIT.name,
        S.GPU_MEMORY_UTILIZATION.name, S.POWER.name, S.POWER_LIMIT.name, S.ENERGY.name, S.TEMPERATURE.name,
        S.ERRORS.name, S.STATUS.name, S.MEMORY_BANDWIDTH.name, S.CLOCK.name, S.FAN.name, S.DEVICE_INFO.name,
        S.SLICE_MEMORY_USAGE.name, S.SLICE_MEMORY_LIMIT.name, S.SLICE_UTILIZATION.name, S.SLICE_INFO.name,
    ],
    "slices": ["partition"],
    "status": "stable",
    "source": "captures tested: amd-smi metric --json, gpu_data shape, RDNA3 32 GB (test fixture from real "
              "output); top-level list shape and partitions from the documented format (partitions experimental)",
}

_ABSENT_STRINGS = frozenset({"", "n/a", "na", "not supported", "unknown", "none"})

#: unit -> (quantity kind, factor to the base unit)
_UNITS: dict[str, tuple[str, float]] = {
    "%": ("ratio", 0.01),
    "W": ("watts", 1.0), "mW": ("watts", 1e-3), "uW": ("watts", 1e-6), "µW": ("watts", 1e-6),
    "C": ("celsius", 1.0), "°C": ("celsius", 1.0), "mC": ("celsius", 1e-3),
    "Hz": ("hz", 1.0), "KHz": ("hz", 1e3), "kHz": ("hz", 1e3), "MHz": ("hz", 1e6), "GHz": ("hz", 1e9),
    "J": ("joules", 1.0), "mJ": ("joules", 1e-3), "uJ": ("joules", 1e-6), "µJ": ("joules", 1e-6),
    "B": ("bytes", 1), "KB": ("bytes", 1024), "KiB": ("bytes", 1024), "MB": ("bytes", 1024 ** 2),
    "MiB": ("bytes", 1024 ** 2), "GB": ("bytes", 1024 ** 3), "GiB": ("bytes", 1024 ** 3),
    "": ("count", 1),
}

#: quantity kind -> unit assumed for a bare number (older amd-smi releases)
_DEFAULT_UNIT = {"ratio": "%", "watts": "W", "celsius": "C", "hz": "MHz", "joules": "J", "bytes": "MB",
                 "count": ""}

_VALUE_TEXT = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S*)\s*$")


class _Reader:
    """Turns amd-smi JSON scalars into base-unit numbers, recording Problems."""

    def __init__(self, problems: list[Problem], where: str) -> None:
        self.problems = problems
        self.where = where

    def value(self, node: Any, kind: str, field: str) -> float | None:
        if node is None or isinstance(node, bool):
            return None
        unit: str | None = None
        if isinstance(node, dict):
            if "value" not in node:
                self._bad(field, node, "object without 'value'")
                return None
            raw, unit = node.get("value"), node.get("unit")
            if isinstance(raw, str) and raw.strip().lower() in _ABSENT_STRINGS or raw is None:
                return None
        else:
            raw = node
        if isinstance(raw, str):
            if raw.strip().lower() in _ABSENT_STRINGS:
                return None
            match = _VALUE_TEXT.match(raw)
            if match is None:
                self._bad(field, node, "not a number")
                return None
            raw, unit = float(match.group(1)), unit or match.group(2) or None
        if not isinstance(raw, (int, float)) or (isinstance(raw, float) and not math.isfinite(raw)):
            self._bad(field, node, "not a number")
            return None
        unit_name = _DEFAULT_UNIT[kind] if unit is None else str(unit).strip()
        if unit_name not in _UNITS or _UNITS[unit_name][0] != kind:
            self._bad(field, node, f"unexpected unit {unit_name!r} for {kind}")
            return None
        factor = _UNITS[unit_name][1]
        return raw * factor if kind != "ratio" else raw / 100

    def integer(self, node: Any, kind: str, field: str) -> int | None:
        value = self.value(node, kind, field)
        return None if value is None else int(round(value))

    def text(self, node: Any) -> str | None:
        if isinstance(node, dict):
            node = node.get("value")
        if node is None or isinstance(node, (dict, list)):
            return None
        text = str(node).strip()
        return None if text.lower() in _ABSENT_STRINGS else text

    def _bad(self, field: str, node: Any, why: str) -> None:
        self.problems.append(Problem(kind="parse", detail=f"{self.where}: {field}={node!r}: {why}"))


def detect(text: str) -> bool:
    """True for ``amd-smi metric --json`` output (either shape)."""
    head = text[:4096]
    if re.search(r'"gpu_data"\s*:', head):
        return True
    return bool(re.search(r'^\s*\[\s*\{\s*"gpu"\s*:', head[_json_start(head):] if _json_start(head) >= 0 else "")) \
        and any(f'"{key}"' in head for key in ("usage", "power", "mem_usage", "temperature", "clock"))


def _json_start(text: str) -> int:
    match = re.search(r"^\s*[\[{]", text, re.MULTILINE)
    return match.start() if match else -1


def _entries(text: str, out: Parsed) -> list[Any] | None:
    start = _json_start(text)
    if start < 0:
        out.problems.append(Problem(kind="unknown_format", detail="no JSON document in amd-smi output"))
        return None
    body = text[start:]
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as err:
        return _salvage(body, err, out)
    if isinstance(doc, dict) and isinstance(doc.get("gpu_data"), list):
        return doc["gpu_data"]
    if isinstance(doc, list):
        return doc
    keys = sorted(doc)[:5] if isinstance(doc, dict) else type(doc).__name__
    out.problems.append(Problem(kind="unknown_version", detail=f"amd-smi JSON of an unknown shape: {keys}"))
    return None


def _salvage(body: str, err: json.JSONDecodeError, out: Parsed) -> list[Any] | None:
    """Complete GPU entries of a document cut short (or broken later on)."""
    match = re.match(r'\s*\{\s*"gpu_data"\s*:\s*\[', body) or re.match(r"\s*\[", body)
    if match is None:
        out.problems.append(Problem(kind="parse", detail=f"amd-smi JSON: {err}"))
        return None
    decoder = json.JSONDecoder()
    pos, entries = match.end(), []
    while True:
        while pos < len(body) and body[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(body) or body[pos] == "]":
            break
        try:
            entry, pos = decoder.raw_decode(body, pos)
        except json.JSONDecodeError:
            break
        entries.append(entry)
    out.problems.append(Problem(kind="truncated", detail=f"amd-smi JSON cut short after {len(entries)} "
                                                         f"complete entr{'y' if len(entries) == 1 else 'ies'}: {err}"))
    return entries


def parse(text: str) -> Parsed:
    """Parse ``amd-smi metric --json``; see the module docstring."""
    out = Parsed()
    entries = _entries(text, out)
    if entries is None:
        return out
    return parse_entries(entries, out)


def parse_entries(entries: list[Any], out: Parsed | None = None) -> Parsed:
    """Map already-decoded amd-smi GPU entries (dicts in the ``metric
    --json`` vocabulary) onto the model.  Also used by the amdsmi library
    source, which builds entries of the same shape from library calls."""
    out = out if out is not None else Parsed()
    physical: list[tuple[Device, list[tuple[int, dict, Device]]]] = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("gpu"), (int, dict, str)):
            out.problems.append(Problem(kind="parse", detail=f"amd-smi entry {number} without a 'gpu' index"))
            continue
        reader = _Reader(out.problems, f"gpu entry {number}")
        index = reader.integer(entry.get("gpu"), "count", "gpu")
        if index is None:
            out.problems.append(Problem(kind="parse", detail=f"amd-smi entry {number}: bad gpu index"))
            continue
        dev = _device(entry, index, reader)
        part = _partition_id(entry, reader)
        if part is None:
            physical.append((dev, []))
            continue
        owner = None
        if part != 0:
            for candidate, parts in reversed(physical):
                if parts and (not dev.pci_bus_id or not candidate.pci_bus_id
                              or _bus_device(dev.pci_bus_id) == _bus_device(candidate.pci_bus_id)):
                    owner = (candidate, parts)
                    break
        if owner is None:
            physical.append((dev, [(part, entry, dev)]))
        else:
            owner[1].append((part, entry, dev))
    for dev, parts in physical:
        if parts:
            _partitioned(dev, parts, out)
        out.devices.append(dev)
    return out


def _bus_device(bdf: str) -> str:
    return bdf.rsplit(".", 1)[0]


def _partition_id(entry: dict, reader: _Reader) -> int | None:
    node = entry.get("partition_id")
    if node is None and isinstance(entry.get("partition"), dict):
        node = entry["partition"].get("partition_id")
    if node is None or reader.text(node) is None:
        return None
    return reader.integer(node, "count", "partition_id")


def _section(entry: dict, name: str) -> dict:
    value = entry.get(name)
    return value if isinstance(value, dict) else {}


def _first(section: dict, *keys: str) -> Any:
    for key in keys:
        if key in section and section[key] not in (None, "N/A", ""):
            return section[key]
    return None


def _mean(values: Any, reader: _Reader, field: str) -> float | None:
    if not isinstance(values, list):
        return reader.value(values, "ratio", field)
    reported = [v for v in (reader.value(item, "ratio", field) for item in values) if v is not None]
    return sum(reported) / len(reported) if reported else None


def _identity(entry: dict, index: int, reader: _Reader) -> tuple[str, str | None, str | None, str]:
    asic, board, bus = _section(entry, "asic"), _section(entry, "board"), _section(entry, "bus")
    uuid = reader.text(entry.get("uuid")) or reader.text(asic.get("uuid"))
    serial = reader.text(asic.get("asic_serial")) or reader.text(board.get("product_serial"))
    if serial is not None and set(serial.lower().removeprefix("0x")) <= {"0"}:
        serial = None  # all-zero serials identify nothing
    raw_bdf = reader.text(entry.get("bdf")) or reader.text(bus.get("bdf"))
    bdf = None
    if raw_bdf is not None:
        try:
            bdf = normalise_pci_bus_id(raw_bdf)
        except ValueError as err:
            reader.problems.append(Problem(kind="parse", detail=f"{reader.where}: bdf: {err}"))
    model = reader.text(asic.get("market_name")) or reader.text(board.get("product_name")) or ""
    hw_id = uuid or serial or (f"{VENDOR}-{bdf}" if bdf else f"{VENDOR}-{KIND}{index}")
    return hw_id, serial, bdf, model


def _device(entry: dict, index: int, reader: _Reader) -> Device:
    hw_id, serial, bdf, model = _identity(entry, index, reader)
    reader.where = hw_id
    dev = Device(hw_id=hw_id, vendor=VENDOR, model=model, kind=KIND, index=index, name=f"{KIND}{index}",
                 serial=serial, pci_bus_id=bdf,
                 driver_version=reader.text(_section(entry, "driver").get("version")),
                 firmware_version=reader.text(_section(entry, "vbios").get("version")))
    usage = _section(entry, "usage")
    for key, task in (("gfx_activity", "general"),):
        value = reader.value(usage.get(key), "ratio", f"usage.{key}")
        if value is not None:
            dev.utilization[task] = value
    for key, task in (("vcn_activity", "decoder"), ("jpeg_activity", "jpeg")):
        value = _mean(usage.get(key), reader, f"usage.{key}")
        if value is not None:
            dev.utilization[task] = value
    dev.memory_bandwidth_utilization = reader.value(usage.get("umc_activity"), "ratio", "usage.umc_activity")

    power = _section(entry, "power")
    dev.power_watts = reader.value(_first(power, "socket_power", "average_socket_power", "current_socket_power"),
                                   "watts", "power.socket_power")
    dev.power_limit_watts = reader.value(_first(power, "power_limit", "power_cap"), "watts", "power.power_limit")

    clock = _section(entry, "clock")
    for prefix, clock_type in (("gfx", "graphics"), ("mem", "memory"), ("vclk", "video"), ("socclk", "soc")):
        keys = sorted((k for k in clock if re.fullmatch(rf"{prefix}(?:_\d+)?", k)),
                      key=lambda k: int(k.rpartition("_")[2]) if "_" in k else 0)
        for key in keys:
            node = clock[key]
            value = reader.value(node.get("clk") if isinstance(node, dict) and "clk" in node else node,
                                 "hz", f"clock.{key}")
            if value is not None:
                dev.clocks_hz[clock_type] = value
                break

    temperature = _section(entry, "temperature")
    for key, sensor in (("edge", "edge"), ("hotspot", "hotspot"), ("junction", "hotspot"), ("mem", "memory"),
                        ("vram", "memory")):
        if sensor in dev.temperatures:
            continue
        value = reader.value(temperature.get(key), "celsius", f"temperature.{key}")
        if value is not None:
            dev.temperatures[sensor] = value

    mem = _section(entry, "mem_usage")
    dev.memory_total_bytes = reader.integer(mem.get("total_vram"), "bytes", "mem_usage.total_vram")
    dev.memory_used_bytes = reader.integer(mem.get("used_vram"), "bytes", "mem_usage.used_vram")
    dev.energy_joules = reader.value(_section(entry, "energy").get("total_energy_consumption"), "joules",
                                     "energy.total_energy_consumption")
    dev.fan_speed = reader.value(_section(entry, "fan").get("usage"), "ratio", "fan.usage")

    blocks = _section(entry, "ecc_blocks")
    for block, counts in blocks.items():
        if not isinstance(counts, dict):
            continue
        for key, etype in (("correctable_count", "corrected"), ("uncorrectable_count", "uncorrected")):
            value = reader.integer(counts.get(key), "count", f"ecc_blocks.{block}.{key}")
            if value is not None:
                dev.errors[(etype, str(block).lower())] = value
    ecc = _section(entry, "ecc")
    for key, etype in (("total_correctable_count", "corrected"), ("total_uncorrectable_count", "uncorrected")):
        if any(et == etype for et, _src in dev.errors):
            continue
        value = reader.integer(ecc.get(key), "count", f"ecc.{key}")
        if value is not None:
            dev.errors[(etype, "total")] = value
    replay = reader.integer(_section(entry, "pcie").get("replay_count"), "count", "pcie.replay_count")
    if replay is not None:
        dev.errors[("pcie_replay", "pcie")] = replay
    return dev


def _partitioned(dev: Device, parts: list[tuple[int, dict, Device]], out: Parsed) -> None:
    """Turn the partition entries of one physical ``dev`` into slices."""
    parts.sort(key=lambda item: item[0])
    totals = [p.memory_total_bytes for _n, _e, p in parts]
    used = [p.memory_used_bytes for _n, _e, p in parts]
    split_pool = len(set(totals)) > 1 and None not in totals
    # partition 0's record is ``dev`` itself: read every partition before changing it
    for number, entry, part in parts:
        reader = _Reader(out.problems, f"{dev.hw_id} partition {number}")
        section = _section(entry, "partition")
        compute = reader.text(entry.get("compute_partition")) or reader.text(section.get("compute_partition"))
        memory_mode = reader.text(entry.get("memory_partition")) or reader.text(section.get("memory_partition"))
        slice_id = f"xcp{number}"
        own = part.hw_id if part.hw_id != dev.hw_id and not part.hw_id.startswith(f"{VENDOR}-{KIND}") else None
        out.slices.append(Slice(
            hw_id=own or f"{dev.hw_id}/{slice_id}", parent_id=dev.hw_id, slice_type="partition",
            slice_id=slice_id, vendor=VENDOR, model=dev.model, kind=KIND, parent_index=dev.index,
            name=f"{dev.display_name}/{slice_id}", profile=compute.lower() if compute else None,
            memory_used_bytes=part.memory_used_bytes, memory_limit_bytes=part.memory_total_bytes,
            utilization=part.utilization.get("general"),
            info={"memory_partition": memory_mode.lower()} if memory_mode else {},
        ))
    if split_pool:
        dev.memory_total_bytes = sum(t for t in totals if t is not None)
        dev.memory_used_bytes = sum(u for u in used if u is not None) if any(u is not None for u in used) else None
