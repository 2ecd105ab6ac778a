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

The box-table reader and value helpers shared with the sibling parsers for
the same table style (``cnmon``, ``mx_smi``) live in
:mod:`exporter.parsers._box_table`.
"""

from __future__ import annotations

import re

from exporter.model import Device, Parsed
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

_DETECT = re.compile(r"^\s*\|\s*IX-ML\b", re.M)

#: normalised titles this parser maps (or knows and deliberately skips)
KNOWN_COLUMNS = frozenset({
    "gpu", "name", "bus-id", "clock-sm", "clock-mem", "fan", "temp", "perf", "pwr:usage/cap",
    "memory-usage", "gpu-util", "compute m.", "uuid", "serial",
})


def detect(text: str) -> bool:
    """``ixsmi`` output: a box row starting with ``IX-ML``."""
    return _DETECT.search(text[:4096]) is not None


def parse(text: str) -> Parsed:
    """Parse ``ixsmi`` output into devices and processes (see the module doc)."""
    out = Parsed()
    opened = open_device_table(text, out, tool=TOOL, index_title="gpu", version_key="ix-ml",
                               known_majors=KNOWN_MAJORS, known_columns=KNOWN_COLUMNS)
    if opened is None:
        return out
    table = opened.table
    driver = strip_v(opened.banner.get("driver version"))
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
        read_temp_power_memory(dev, rec, values)
        util = values.num(rec.get("gpu-util"), "ratio", "GPU-Util")
        if util is not None:
            dev.utilization["general"] = util
        for title, clock in (("clock-sm", "sm"), ("clock-mem", "memory")):
            hz = values.num(rec.get(title), "hz", title)
            if hz is not None:
                dev.clocks_hz[clock] = hz
        out.devices.append(dev)
        parents[index] = dev.hw_id
    add_processes(out, opened, parents, TOOL)
    return out
