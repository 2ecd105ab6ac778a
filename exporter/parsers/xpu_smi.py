"""Parser for Kunlunxin ``xpu-smi`` (the default device table).

Source: Kunlunxin's ``xpu-smi`` tool (not Intel's tool of the same name,
whose output has no ``XPU-SMI`` banner and no ``XPU-Util`` column; see
:func:`detect`).  Capture tested: driver 5.0.21.21 / XPU-RT 5.0.21, 8x P800
OAM.  The table follows nvidia-smi's box layout with **three header rows**
and therefore three rows per device:

* row 1: ``XPU Name Persistence-M | Bus-Id Disp.A | Volatile Uncorr. ECC``
* row 2: ``Fan Temp Perf Pwr:Usage/Cap | Memory-Usage | XPU-Util Compute M.``
* row 3: ``(empty) | L3-Usage | SR-IOV M.``

followed by a process table (``XPU XI-ID CI-ID PID Type Process name XPU
Memory Usage``; the second header row only continues the names).

Format rules (shared with :mod:`exporter.parsers.npu_smi`, see its box-table
helpers): cells split at ``|``; each header cell names its columns in
order; a data cell's values are matched to them in order, ``a / b`` pairs
being one value and the product name absorbing extra words (``P800 OAM``);
the device block height is the number of header rows; values carry their
unit (``37C``, ``88W``, ``98304MiB``, ``0%``); ``N/A`` means not reported.

Mapping: one :class:`Device` per block, ``kind="xpu"``,
``vendor="kunlunxin"``, ``index`` = XPU, ``model`` = Name, ``name`` =
``xpu<index>``; ``hw_id`` = ``kunlunxin-<bus id>`` (no UUID or serial is
printed), else ``kunlunxin-xpu<index>`` (unique per node only);
``Pwr:Usage/Cap`` -> ``power_watts`` / ``power_limit_watts``; ``Temp`` ->
``temperatures["gpu"]``; ``Fan`` -> ``fan_speed``; ``Memory-Usage`` ->
``memory_used_bytes`` / ``memory_total_bytes``; ``XPU-Util`` ->
``utilization["general"]``; ``Volatile Uncorr. ECC`` ->
``errors[("uncorrected", "total")]``; the driver version -> ``driver_version``.
``L3-Usage`` (on-chip SRAM, MiB) is validated and dropped: the schema has no
family for it.  ``Persistence-M``, ``Disp.A``, ``Perf``, ``Compute M.`` and
``SR-IOV M.`` are descriptive and dropped.

Slices: a process row whose XI and CI columns are numbers runs on an
instance of the device; each distinct (XPU, XI, CI) becomes one
:class:`Slice` (``slice_type="sriov_vf"`` as the schema's mapping table
says, ``slice_id`` ``xi<X>/ci<C>``, ``hw_id`` ``<parent hw_id>/xi<X>/ci<C>``,
``info["sriov_mode"]`` = the parent's ``SR-IOV M.``) and the process is
attached to it.  No capture with instances is available: this part is
experimental.

A driver major version outside :data:`KNOWN_MAJORS` adds an
``unknown_version`` Problem; columns not listed here add ``unknown_column``;
a device block cut short adds ``truncated``; parsing goes on in each case.
"""

from __future__ import annotations

import re

from exporter import schema as S
from exporter.model import Device, Parsed, Problem, Process, Slice
from exporter.parsers.npu_smi import Blocks, absent, assign, base_and_unit, box_rows, pair, split_names
from exporter.parsers.nvidia_smi_xml import ValueReader

VENDOR = "kunlunxin"
KIND = "xpu"

#: xpu-smi driver majors whose layout is covered (4.x: R200 generation, 5.x: P800).
KNOWN_MAJORS = frozenset({4, 5})

CAPABILITIES = {
    "vendor": VENDOR,
    "kind": KIND,
    "tool": "xpu-smi",
    "metrics": [
        S.GPU_UTILIZATION.name, S.GPU_MEMORY_USAGE.name, S.GPU_MEMORY_LIMIT.name,
        S.GPU_MEMORY_UTILIZATION.name, S.POWER.name, S.POWER_LIMIT.name, S.TEMPERATURE.name,
        S.ERRORS.name, S.FAN.name, S.STATUS.name, S.DEVICE_INFO.name, S.PROCESS_MEMORY.name,
        S.SLICE_INFO.name,
    ],
    "slices": ["sriov_vf"],
    "status": "stable",
    "source": "captures tested: xpu-smi driver 5.0.21.21 (8x P800 OAM); instance (XI/CI) slices from the "
              "documented process-table format only (experimental)",
}

_MULTIWORD = frozenset({"volatile uncorr. ecc", "compute m.", "sr-iov m.", "process name", "xpu memory",
                        "xpu memory usage", "mig m."})
_ABSORB = frozenset({"name", "process name"})

_COLUMNS = {
    "xpu": "index", "name": "name", "persistence-m": "persistence", "bus-id": "bus", "disp.a": "disp",
    "volatile uncorr. ecc": "ecc", "fan": "fan", "temp": "temp", "perf": "perf",
    "pwr:usage/cap": "power", "memory-usage": "memory", "xpu-util": "util", "compute m.": "compute_mode",
    "l3-usage": "l3", "sr-iov m.": "sriov",
}
_PROCESS_COLUMNS = {
    "xpu": "index", "xi": "xi", "ci": "ci", "pid": "pid", "type": "type", "process name": "pname",
    "xpu memory": "pmem", "xpu memory usage": "pmem",
}

_DRIVER = re.compile(r"Driver Version:\s*(\S+)")


def detect(text: str) -> bool:
    """True for Kunlunxin ``xpu-smi`` output (never Intel's ``xpu-smi``)."""
    head = text[:4096]
    return "XPU-SMI" in head and ("XPU-Util" in head or "L3-Usage" in head)


def _is_header_start(cells: list[str]) -> bool:
    return bool(cells) and cells[0].split()[:1] == ["XPU"]


def _is_info(cells: list[str]) -> bool:
    text = " ".join(cells).strip().lower()
    return text.startswith("xpu-smi") or text.startswith("processes") or text.startswith("no running")


def _is_process_header(header: list[list[str]]) -> bool:
    return any("PID" in cell.split() for cell in header[0])


def _rows_per_block(header: list[list[str]]) -> int:
    return 1 if _is_process_header(header) else len(header)


def _read(header: list[list[str]], block: list[list[str]], columns: dict[str, str], out: Parsed,
          unknown: set[str]) -> dict[str, str]:
    record: dict[str, str] = {}
    rows = zip(header[:1], block) if _is_process_header(header) else zip(header, block)
    for row_no, (head_cells, cells) in enumerate(rows):
        if len(cells) != len(head_cells):
            out.problems.append(Problem(kind="parse", detail=f"row {row_no + 1} of block has {len(cells)} cells, "
                                                             f"header {len(head_cells)}: {cells}"))
            continue
        for head, cell in zip(head_cells, cells):
            names = split_names(head, _MULTIWORD)
            values = assign(names, cell, _ABSORB)
            if values is None:
                out.problems.append(Problem(kind="parse", detail=f"cannot match {cell!r} to columns {names}"))
                continue
            for name, raw in values.items():
                key = columns.get(base_and_unit(name)[0])
                if key is None:
                    if name not in unknown:
                        unknown.add(name)
                        out.problems.append(Problem(kind="unknown_column", detail=f"xpu-smi column {name!r}"))
                    continue
                record[key] = raw
    return record


def parse(text: str) -> Parsed:
    """Parse Kunlunxin ``xpu-smi`` output; see the module docstring."""
    out = Parsed()
    match = _DRIVER.search(text[:4096])
    driver = match.group(1) if match else None
    if driver is not None:
        major = re.match(r"(\d+)", driver)
        if major is None or int(major.group(1)) not in KNOWN_MAJORS:
            out.problems.append(Problem(kind="unknown_version", detail=f"xpu-smi driver {driver}"))
    walker = Blocks(box_rows(text), _is_header_start, _rows_per_block, _is_info, out.problems)
    if not walker.tables:
        out.problems.append(Problem(kind="unknown_format", detail="no xpu-smi table header found"))
        return out
    unknown: set[str] = set()
    by_index: dict[int, Device] = {}
    sriov: dict[int, str] = {}
    for header, blocks in walker.tables:
        if _is_process_header(header):
            for block in blocks:
                _process(_read(header, block, _PROCESS_COLUMNS, out, unknown), by_index, sriov, out)
            continue
        for block in blocks:
            record = _read(header, block, _COLUMNS, out, unknown)
            dev = _device(record, driver, out)
            if dev is None:
                continue
            if dev.index in by_index:
                out.problems.append(Problem(kind="parse", detail=f"XPU {dev.index} listed twice"))
                continue
            by_index[dev.index] = dev  # type: ignore[index]
            if not absent(record.get("sriov")):
                sriov[dev.index] = record["sriov"]  # type: ignore[index]
            out.devices.append(dev)
    return out


def _device(record: dict[str, str], driver: str | None, out: Parsed) -> Device | None:
    reader = ValueReader(out.problems, "xpu")
    raw_index = record.get("index")
    index = None if absent(raw_index) else reader.integer(raw_index, "count", "XPU")
    if index is None:
        out.problems.append(Problem(kind="parse", detail=f"device block without an XPU index: {record}"))
        return None
    bus = None if absent(record.get("bus")) else reader.pci(record.get("bus"))
    hw_id = f"{VENDOR}-{bus}" if bus else f"{VENDOR}-{KIND}{index}"
    reader.where = hw_id
    model = record.get("name")
    dev = Device(hw_id=hw_id, vendor=VENDOR, model="" if absent(model) else (model or ""), kind=KIND,
                 index=index, name=f"{KIND}{index}", pci_bus_id=bus, driver_version=driver)

    def num(key: str, kind: str, raw: str | None = None) -> float | None:
        value = record.get(key) if raw is None else raw
        return None if absent(value) else reader.number(value, kind, key)

    power, cap = pair(record.get("power"))
    dev.power_watts = num("power", "watts", power) if power is not None else None
    dev.power_limit_watts = num("power", "watts", cap) if cap is not None else None
    temp = num("temp", "celsius")
    if temp is not None:
        dev.temperatures["gpu"] = temp
    dev.fan_speed = num("fan", "ratio")
    used, total = pair(record.get("memory"))
    dev.memory_used_bytes = reader.integer(used, "bytes", "memory.used") if used is not None else None
    dev.memory_total_bytes = reader.integer(total, "bytes", "memory.total") if total is not None else None
    l3_used, l3_total = pair(record.get("l3"))
    for raw, field in ((l3_used, "l3.used"), (l3_total, "l3.total")):
        if raw is not None:
            reader.integer(raw, "bytes", field)  # validated only: no schema family for L3
    util = num("util", "ratio")
    if util is not None:
        dev.utilization["general"] = util
    if not absent(record.get("ecc")):
        ecc = reader.integer(record["ecc"], "count", "Volatile Uncorr. ECC")
        if ecc is not None:
            dev.errors[("uncorrected", "total")] = ecc
    return dev


def _process(record: dict[str, str], by_index: dict[int, Device], sriov: dict[int, str], out: Parsed) -> None:
    reader = ValueReader(out.problems, "process")
    index = None if absent(record.get("index")) else reader.integer(record["index"], "count", "XPU")
    pid = None if absent(record.get("pid")) else reader.integer(record["pid"], "count", "PID")
    dev = by_index.get(index) if index is not None else None
    if pid is None or dev is None:
        out.problems.append(Problem(kind="parse", detail=f"process row without pid or known XPU: {record}"))
        return
    parent = dev.hw_id
    xi, ci = record.get("xi"), record.get("ci")
    if not absent(xi) and not absent(ci) and xi.isdigit() and ci.isdigit():  # type: ignore[union-attr]
        slice_id = f"xi{int(xi)}/ci{int(ci)}"  # type: ignore[arg-type]
        parent = f"{dev.hw_id}/{slice_id}"
        if not any(s.hw_id == parent for s in out.slices):
            info = {"sriov_mode": sriov[dev.index]} if dev.index in sriov else {}  # type: ignore[index]
            out.slices.append(Slice(hw_id=parent, parent_id=dev.hw_id, slice_type="sriov_vf", slice_id=slice_id,
                                    vendor=VENDOR, model=dev.model, kind=KIND, parent_index=dev.index,
                                    name=f"{dev.display_name}/{slice_id}", info=info))
    pmem = record.get("pmem")
    memory = None if absent(pmem) else reader.integer(pmem, "bytes", "XPU Memory")
    name = record.get("pname")
    out.processes.append(Process(pid=pid, parent_id=parent, memory_bytes=memory,
                                 name=None if absent(name) else name))
