"""Parser for Moore Threads ``mthreads-gmi -q`` and ``mthreads-gmi -q -j``.

**Experimental: no capture of either output has been tested.**  Written from
the documented interface (reference section 4.6: the tool follows
nvidia-smi; ``-q`` prints ``Key : Value`` lines with ``GPU UUID`` and
``Product Name``; ``-q -j`` prints the same as JSON).  Every rule below is a
format rule, not a byte layout, so that a real capture most likely parses;
add it to the fixtures and the tests when one is contributed.

``-q`` text: ``Key : Value`` lines (the colon after whitespace, or ``": "``;
a key ending in ``:`` or a line without a colon opens a section), nested by
indentation.  Each device is a section whose title starts with ``GPU``
(``GPU 00000000:0A:00.0``, ``GPU 0``, ``GPU0``); the other top-level keys
(``Driver Version``...) apply to every device.

``-q -j`` JSON: a list of device objects, an object with a ``gpus`` /
``gpu`` / ``devices`` list or map, or an object keyed ``GPU0``... / by bus
id.  Nested objects become sections; ``{"value": 40, "unit": "C"}`` pairs are
read as ``40 C``; bare JSON numbers take the field's usual unit (MiB, W, C,
%, MHz).

Both are flattened to (section path, value) and read by key suffix, keys
compared as lower-case slugs (``FB Memory Usage`` -> ``fb_memory_usage``):

* ``product_name`` -> ``model``; ``gpu_uuid``/``uuid`` -> ``hw_id``;
  ``serial_number``; ``bus_id`` (or the section title) -> ``pci_bus_id``;
  ``index``/``minor_number`` (or the title, else order) -> ``index``;
  ``driver_version``; ``vbios_version``/``firmware_version`` ->
  ``firmware_version``;
* ``memory_usage``/``fb_memory_usage``/``memory`` ``total``/``used`` -> bytes;
* ``utilization`` ``gpu``/``encoder``/``decoder`` % -> ratios (a memory
  utilization is not mapped: the documentation does not say whether it is
  capacity or bandwidth);
* ``temperature`` ``gpu_current_temp``/``gpu`` C -> ``temperatures["gpu"]``;
  ``power_draw`` W -> ``power_watts``; ``enforced_power_limit``/
  ``power_limit`` W -> ``power_limit_watts``; ``clocks`` ``graphics``/
  ``sm``/``memory`` MHz -> Hz; ``fan_speed`` % -> ratio.

``hw_id``: the UUID, else the serial, else ``moorethreads-<bus id>``, else
``moorethreads-gpu<index>``.  Absent forms (``N/A``, ``Not Supported``,
``-``) are None.  Problems: malformed or cut JSON -> ``parse`` /
``truncated``; no device section -> ``unknown_format``; unparsable values ->
``parse``.  No tool version is documented, so none is checked.
"""

from __future__ import annotations

import json
import re
from typing import Any

from exporter.model import Device, Parsed, Problem
from exporter.parsers._box_table import Values, is_absent, vendor_hw_id

VENDOR = "moorethreads"
KIND = "gpu"
TOOL = "mthreads-gmi"

CAPABILITIES = {
    "vendor": VENDOR,
    "kind": KIND,
    "tool": "mthreads-gmi -q / -q -j",
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
    ],
    "slices": [],
    "status": "experimental",
    "source": "captures tested: none; written from the documented -q / -q -j format, synthetic tests only",
}

_SLUG = re.compile(r"[^a-z0-9]+")
_MARKER = re.compile(r"mthreads|moore\s*threads|\bMTT\b|\bMUSA\b", re.I)
_NVSMI = "NVSMI LOG"
_GPU_TITLE = re.compile(r"^gpu\s*(?P<rest>.*)$", re.I)
_PCI_LIKE = re.compile(r"^[0-9a-f]{0,8}:?[0-9a-f]{1,2}:[0-9a-f]{1,2}\.[0-7]$", re.I)

Path = tuple[str, ...]

#: field -> candidate key-path suffixes (slugs), first match wins
FIELDS: dict[str, tuple[Path, ...]] = {
    "model": (("product_name",), ("gpu_name",), ("device_name",)),
    "uuid": (("gpu_uuid",), ("uuid",)),
    "serial": (("serial_number",), ("serial",)),
    "pci": (("pci", "bus_id"), ("bus_id",), ("pci_bus_id",), ("bus",)),
    "index": (("index",), ("gpu_index",), ("minor_number",)),
    "driver": (("driver_version",),),
    "firmware": (("vbios_version",), ("firmware_version",), ("bios_version",)),
    "memory_total": (("fb_memory_usage", "total"), ("memory_usage", "total"), ("memory", "total"),
                     ("memory_total",), ("total_memory",)),
    "memory_used": (("fb_memory_usage", "used"), ("memory_usage", "used"), ("memory", "used"),
                    ("memory_used",), ("used_memory",)),
    "util_general": (("utilization", "gpu"), ("utilization", "gpu_util"), ("utilization", "gpu_utilization"),
                     ("gpu_util",), ("gpu_utilization",)),
    "util_encoder": (("utilization", "encoder"), ("utilization", "encoder_util"), ("encoder_util",)),
    "util_decoder": (("utilization", "decoder"), ("utilization", "decoder_util"), ("decoder_util",)),
    "temp": (("temperature", "gpu_current_temp"), ("temperature", "gpu"), ("temperature", "gpu_temp"),
             ("gpu_current_temp",), ("gpu_temp",), ("temperature",)),
    "power": (("power_readings", "power_draw"), ("power", "power_draw"), ("power_draw",), ("power_usage",),
              ("power", "usage")),
    "power_limit": (("enforced_power_limit",), ("power_limit",), ("power", "limit"), ("power_cap",)),
    "clock_graphics": (("clocks", "graphics"), ("graphics_clock",)),
    "clock_sm": (("clocks", "sm"), ("sm_clock",)),
    "clock_memory": (("clocks", "memory"), ("clocks", "mem"), ("memory_clock",), ("mem_clock",)),
    "fan": (("fan_speed",),),
}
#: unit assumed for a bare JSON number (or a value printed without unit)
DEFAULT_UNITS = {"bytes": "MiB", "watts": "W", "celsius": "C", "ratio": "%", "hz": "MHz"}


def slug(key: str) -> str:
    return _SLUG.sub("_", key.lower()).strip("_")


def detect(text: str) -> bool:
    """``mthreads-gmi -q`` or ``-q -j``: a ``Product Name``/``GPU UUID`` key
    and a Moore Threads marker (``mthreads``, ``Moore Threads``, ``MTT``,
    ``MUSA``), and not nvidia-smi's ``NVSMI LOG`` banner."""
    head = text[:4096]
    if _NVSMI in head or not _MARKER.search(head):
        return False
    lowered = head.lower()
    if head.lstrip()[:1] in ("{", "["):
        return "uuid" in lowered or "product" in lowered
    return re.search(r"^\s*(product name|gpu uuid)\s*:", head, re.I | re.M) is not None


def parse(text: str) -> Parsed:
    """Parse ``-q`` text or ``-q -j`` JSON (chosen by the first character)."""
    out = Parsed()
    if text.lstrip()[:1] in ("{", "["):
        gpus, globals_ = _from_json(text, out.problems)
    else:
        gpus, globals_ = _from_text(text)
    if not gpus and not out.problems:
        out.problems.append(Problem("unknown_format", f"{TOOL}: no GPU section"))
    for order, (title, flat) in enumerate(gpus):
        out.devices.append(_device(order, title, flat, globals_, out.problems))
    return out


# --------------------------------------------------------------------------
# -q text
# --------------------------------------------------------------------------

_KV_SPACED = re.compile(r"^(?P<key>\S.*?)\s+:(?:\s+(?P<value>.*?))?\s*$")
_KV_PLAIN = re.compile(r"^(?P<key>[^:]+?):\s+(?P<value>.*?)\s*$")


def _from_text(text: str) -> tuple[list[tuple[str, list[tuple[Path, str]]]], list[tuple[Path, str]]]:
    gpus: list[tuple[str, list[tuple[Path, str]]]] = []
    globals_: list[tuple[Path, str]] = []
    stack: list[tuple[int, str]] = []  # (indent, slug) of open sections
    gpu_indent: int | None = None
    for raw in text.expandtabs(4).splitlines():
        stripped = raw.strip()
        if not stripped or set(stripped) <= set("=-"):
            continue
        indent = len(raw) - len(raw.lstrip())
        match = _KV_SPACED.match(stripped) or _KV_PLAIN.match(stripped)
        if match is not None and match.group("value"):
            key, value = match.group("key").strip(), match.group("value")
        elif stripped.endswith(":"):
            key, value = stripped[:-1].strip(), None
        elif match is not None:
            key, value = match.group("key").strip(), None
        else:
            key, value = stripped, None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if gpu_indent is not None and indent <= gpu_indent:
            gpu_indent = None
        if value is None:
            if gpu_indent is None and _GPU_TITLE.match(key):
                gpus.append((key, []))
                gpu_indent = indent
                stack = []
                continue
            stack.append((indent, slug(key)))
            continue
        path = tuple(s for _i, s in stack) + (slug(key),)
        if gpu_indent is not None:
            gpus[-1][1].append((path, value))
        else:
            globals_.append((path, value))
    return gpus, globals_


# --------------------------------------------------------------------------
# -q -j JSON
# --------------------------------------------------------------------------


def _from_json(text: str, problems: list[Problem]) -> tuple[list[tuple[str, list[tuple[Path, str]]]],
                                                             list[tuple[Path, str]]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        cut = _unclosed(text)
        problems.append(Problem("truncated" if cut else "parse", f"{TOOL} -j: {err.msg} at {err.pos}"))
        return [], []
    gpus: list[tuple[str, list[tuple[Path, str]]]] = []
    globals_: list[tuple[Path, str]] = []
    objects: list[tuple[str, Any]] = []
    if isinstance(doc, list):
        objects = [(f"GPU {i}", item) for i, item in enumerate(doc)]
    elif isinstance(doc, dict):
        for key, value in doc.items():
            if slug(key) in ("gpu", "gpus", "devices", "device") and isinstance(value, (list, dict)):
                if isinstance(value, list):
                    objects += [(f"GPU {i}", item) for i, item in enumerate(value)]
                elif any(isinstance(v, dict) for v in value.values()) and not _is_value_pair(value):
                    objects += [(f"GPU {k}", v) for k, v in value.items()]
                else:
                    objects.append(("GPU", value))
            elif isinstance(value, dict) and _GPU_TITLE.match(str(key)) and not _is_value_pair(value):
                objects.append((str(key), value))
            elif isinstance(value, dict) and _PCI_LIKE.match(str(key)):
                objects.append((f"GPU {key}", value))
            else:
                globals_ += _flatten(value, (slug(key),))
    else:
        problems.append(Problem("parse", f"{TOOL} -j: top level is {type(doc).__name__}"))
    for title, obj in objects:
        if not isinstance(obj, dict):
            problems.append(Problem("parse", f"{TOOL} -j: {title} is {type(obj).__name__}, not an object"))
            continue
        gpus.append((title, _flatten(obj, ())))
    return gpus, globals_


def _unclosed(text: str) -> bool:
    """True when ``text`` ends inside a string or with open ``{``/``[``
    and no bracket mismatch: the JSON was cut short rather than malformed."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return False
    return in_string or bool(stack)


def _is_value_pair(obj: dict) -> bool:
    return "value" in obj and set(obj) <= {"value", "unit"}


def _flatten(obj: Any, path: Path) -> list[tuple[Path, str]]:
    if isinstance(obj, dict):
        if _is_value_pair(obj):
            value, unit = obj.get("value"), obj.get("unit")
            if value is None or is_absent(str(value)):
                return [(path, "")]
            return [(path, f"{value} {unit}" if unit else str(value))]
        out: list[tuple[Path, str]] = []
        for key, value in obj.items():
            out += _flatten(value, path + (slug(str(key)),))
        return out
    if isinstance(obj, list):
        return []  # process lists and the like: not mapped
    if obj is None:
        return [(path, "")]
    return [(path, str(obj))]


# --------------------------------------------------------------------------
# mapping
# --------------------------------------------------------------------------


def _find(flat: list[tuple[Path, str]], field: str) -> str | None:
    for candidate in FIELDS[field]:
        n = len(candidate)
        for path, value in flat:
            if path[-n:] == candidate:
                return value
    return None


def _device(order: int, title: str, flat: list[tuple[Path, str]], globals_: list[tuple[Path, str]],
            problems: list[Problem]) -> Device:
    values = Values(problems, f"{TOOL} {title}")
    title_rest = (_GPU_TITLE.match(title).group("rest") if _GPU_TITLE.match(title) else "").strip()
    raw_pci = _find(flat, "pci")
    if is_absent(raw_pci) and _PCI_LIKE.match(title_rest):
        raw_pci = title_rest
    pci = None if is_absent(raw_pci) else values.pci(raw_pci, "Bus Id")
    index = values.int_(_find(flat, "index"), "count", "index")
    if index is None and title_rest.isdigit():
        index = int(title_rest)
    if index is None:
        index = order
    uuid, serial = _find(flat, "uuid"), _find(flat, "serial")
    model = _find(flat, "model")
    driver = _find(flat, "driver") or _find(globals_, "driver")
    firmware = _find(flat, "firmware")
    dev = Device(
        hw_id=vendor_hw_id(VENDOR, KIND, uuid, serial, pci, index),
        vendor=VENDOR,
        model="" if is_absent(model) else (model or "").strip(),
        kind=KIND,
        index=index,
        name=f"{KIND}{index}",
        serial=None if is_absent(serial) else (serial or "").strip(),
        driver_version=None if is_absent(driver) else (driver or "").strip(),
        firmware_version=None if is_absent(firmware) else (firmware or "").strip(),
        pci_bus_id=pci,
    )
    values.where = dev.hw_id

    def num(field: str, kind: str) -> float | None:
        return values.num(_find(flat, field), kind, field, DEFAULT_UNITS.get(kind))

    total, used = num("memory_total", "bytes"), num("memory_used", "bytes")
    dev.memory_total_bytes = int(total) if total is not None else None
    dev.memory_used_bytes = int(used) if used is not None else None
    for field, task in (("util_general", "general"), ("util_encoder", "encoder"), ("util_decoder", "decoder")):
        value = num(field, "ratio")
        if value is not None:
            dev.utilization[task] = value
    temp = num("temp", "celsius")
    if temp is not None:
        dev.temperatures["gpu"] = temp
    dev.power_watts = num("power", "watts")
    dev.power_limit_watts = num("power_limit", "watts")
    for field, clock in (("clock_graphics", "graphics"), ("clock_sm", "sm"), ("clock_memory", "memory")):
        value = num(field, "hz")
        if value is not None:
            dev.clocks_hz[clock] = value
    dev.fan_speed = num("fan", "ratio")
    return dev
