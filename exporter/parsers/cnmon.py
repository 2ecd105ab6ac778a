"""Parser for Cambricon ``cnmon`` (the default table, not ``cnmon info``).

Source: Cambricon's ``cnmon``.  Captures seen: CNMON v4.20.11 (MLU370-X4,
legacy layout with ``Inited / Driver`` and ``vMemory-Usage`` columns) and
CNMON v5.10.22 (2 x MLU370-X8, ``Driver`` in the banner, ``Bus-Id`` column,
``Mode`` column reading ``FULL``).  CNMON 5.10.10-5.10.13 print an
``SR-IOV`` column where 5.10.22 prints ``Mode``.

Format rules: the nvidia-smi-style box read by
:func:`exporter.parsers._box_table.read_box_tables`: a banner (``CNMON
v5.10.22  Driver v5.10.22``), two header rows per card whose cells hold
titles separated by 2+ spaces, the ``===`` rule, then two rows per card.
Values pair with titles by order within each cell; nothing depends on
column positions.

Mapping (base units): ``Card`` -> ``index`` (``hw_name`` ``mlu<N>``);
``Name`` -> ``model``; ``Firmware`` / ``Driver`` (row or banner) ->
versions without the ``v``; ``Bus-Id`` -> ``pci_bus_id``; ``Util`` % ->
``utilization["general"]``; ``Ecc-Error`` (a count; cnmon does not say
whether corrected or not) -> ``errors[("ecc", "total")]``; ``Fan`` % ->
``fan_speed``; ``Temp`` C -> ``temperatures["gpu"]`` (the chip sensor);
``Pwr:Usage/Cap`` W -> ``power_watts`` / ``power_limit_watts``;
``Memory-Usage`` MiB -> bytes.  ``Inited``, ``vMemory-Usage`` (the legacy
virtual address space, not device memory), ``Compute-Mode``, ``Mode`` and
``SR-IOV`` have no schema family.  cnmon prints no UUID or serial, so
``hw_id`` is ``cambricon-<bus id>`` (5.x), else ``cambricon-mlu<card>``
(4.x has no bus column).

Slices: a row whose ``VF`` column holds a number (``/`` = the physical card)
is a virtual function of card ``Card``: one :class:`Slice` of type ``mim``
when that card's ``Mode``/``SR-IOV`` column names MIM, ``smlu`` when it
names sMLU, else ``sriov_vf``; ``slice_id`` ``vf<N>``; its own
``Memory-Usage`` and ``Util``; ``profile`` = its ``Name`` when that differs
from the card's.  A VF row whose card has no row of its own (cnmon inside a
VM sees only its VF) is reported as a device.  No capture with VF rows has
been seen.

Problems: unknown column -> ``unknown_column``; a CNMON major version other
than 4 or 5 -> ``unknown_version`` (parsed anyway); a box that stops early
-> ``truncated``; unparsable values -> ``parse``.
"""

from __future__ import annotations

import re

from exporter.model import Device, Parsed, Slice
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

VENDOR = "cambricon"
KIND = "mlu"
TOOL = "cnmon"
KNOWN_MAJORS = frozenset({4, 5})

CAPABILITIES = {
    "vendor": VENDOR,
    "kind": KIND,
    "tool": "cnmon (default table)",
    "metrics": [
        "hw_gpu_utilization_ratio",
        "hw_gpu_memory_usage_bytes",
        "hw_gpu_memory_limit_bytes",
        "hw_gpu_memory_utilization_ratio",
        "hw_power_watts",
        "accel_power_limit_watts",
        "hw_temperature_celsius",
        "hw_errors_total",
        "accel_fan_speed_ratio",
        "accel_device_info",
        "accel_slice_memory_usage_bytes",
        "accel_slice_memory_limit_bytes",
        "accel_slice_utilization_ratio",
        "accel_slice_info",
        "accel_process_memory_usage_bytes",
    ],
    "slices": ["mim", "smlu", "sriov_vf"],
    "status": "stable",
    "source": "captures tested: CNMON v4.20.11 (MLU370-X4, legacy vMemory), CNMON v5.10.22 (2x MLU370-X8, Mode); "
              "VF rows (mim/smlu/sriov_vf slices) and the process table follow the documented columns, no capture",
}

_DETECT = re.compile(r"^\s*\|\s*CNMON\s+v?\d", re.M)

KNOWN_COLUMNS = frozenset({
    "card", "vf", "name", "firmware", "inited", "driver", "bus-id", "util", "ecc-error", "fan", "temp",
    "pwr:usage/cap", "memory-usage", "vmemory-usage", "mode", "sr-iov", "compute-mode",
})


def detect(text: str) -> bool:
    """``cnmon`` output: a box row starting with ``CNMON v<version>``."""
    return _DETECT.search(text[:4096]) is not None


def _slice_type(mode: str | None) -> str:
    text = (mode or "").lower()
    if "mim" in text:
        return "mim"
    if "smlu" in text:
        return "smlu"
    return "sriov_vf"


def parse(text: str) -> Parsed:
    """Parse ``cnmon`` output into devices, VF/MIM slices and processes."""
    out = Parsed()
    opened = open_device_table(text, out, tool=TOOL, index_title="card", version_key="cnmon",
                               known_majors=KNOWN_MAJORS, known_columns=KNOWN_COLUMNS)
    if opened is None:
        return out
    table = opened.table
    banner_driver = strip_v(opened.banner.get("driver"))

    cards: dict[int, Device] = {}
    modes: dict[int, str | None] = {}
    vf_rows: list[tuple[int, int, dict[str, str], Values]] = []
    for order, block in enumerate(table.blocks):
        where = f"{TOOL} block {order}"
        rec = block_record(table, block, out.problems, where)
        values = Values(out.problems, where)
        card = values.int_(rec.get("card"), "count", "Card")
        if card is None:
            card = order
        vf_raw = (rec.get("vf") or "").strip()
        vf = None
        if vf_raw and vf_raw != "/" and not is_absent(vf_raw):
            vf = values.int_(vf_raw, "count", "VF")
            if vf is None:
                continue
        if vf is not None:
            vf_rows.append((card, vf, rec, values))
            continue
        dev = _device(rec, values, card, banner_driver)
        cards[card] = dev
        modes[card] = rec.get("mode") or rec.get("sr-iov")
        out.devices.append(dev)

    for card, vf, rec, values in vf_rows:
        parent = cards.get(card)
        if parent is None:
            # a VM sees only its VF: that is the whole device for this node
            dev = _device(rec, values, card, banner_driver)
            if dev.pci_bus_id is None:
                dev.hw_id = f"{VENDOR}-{KIND}{card}-vf{vf}"
            out.devices.append(dev)
            continue
        pci = _pci(rec, values)
        used, total = values.pair(rec.get("memory-usage"), "bytes", "Memory-Usage")
        name = rec.get("name")
        out.slices.append(Slice(
            hw_id=f"{VENDOR}-{pci}" if pci else f"{parent.hw_id}/vf{vf}",
            parent_id=parent.hw_id,
            slice_type=_slice_type(modes.get(card)),
            slice_id=f"vf{vf}",
            vendor=VENDOR,
            model=parent.model,
            kind=KIND,
            parent_index=card,
            profile=name if name and not is_absent(name) and name != parent.model else None,
            memory_used_bytes=int(used) if used is not None else None,
            memory_limit_bytes=int(total) if total is not None else None,
            utilization=values.num(rec.get("util"), "ratio", "Util"),
        ))

    parents = {card: dev.hw_id for card, dev in cards.items()}
    add_processes(out, opened, parents, TOOL)
    return out


def _pci(rec: dict[str, str], values: Values) -> str | None:
    raw = rec.get("bus-id")
    return None if is_absent(raw) else values.pci(raw, "Bus-Id")


def _device(rec: dict[str, str], values: Values, card: int, banner_driver: str | None) -> Device:
    pci = _pci(rec, values)
    dev = Device(
        hw_id=vendor_hw_id(VENDOR, KIND, None, None, pci, card),
        vendor=VENDOR,
        model=rec.get("name") if rec.get("name") and not is_absent(rec.get("name")) else "",
        kind=KIND,
        index=card,
        name=f"{KIND}{card}",
        driver_version=strip_v(rec.get("driver")) or banner_driver,
        firmware_version=strip_v(rec.get("firmware")),
        pci_bus_id=pci,
    )
    values.where = dev.hw_id
    util = values.num(rec.get("util"), "ratio", "Util")
    if util is not None:
        dev.utilization["general"] = util
    ecc = values.int_(rec.get("ecc-error"), "count", "Ecc-Error")
    if ecc is not None:
        dev.errors[("ecc", "total")] = ecc
    dev.fan_speed = values.num(rec.get("fan"), "ratio", "Fan")
    read_temp_power_memory(dev, rec, values)
    return dev
