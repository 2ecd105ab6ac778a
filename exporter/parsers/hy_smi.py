"""Parser for Hygon DCU ``hy-smi`` (and the DTK build of ``rocm-smi``).

Source: Hygon's ``hy-smi``; on DTK hosts ``rocm-smi`` prints the identical
table.  Captures tested: 8 DCUs under load (Perf ``manual``, PwrCap 600 W)
and 4x K100_AI idle (DTK 24.04.1, PwrCap 800 W).  Layouts seen in public
material and handled by the same rules: the first column named ``DCU`` or
``HCU`` (newer DTK), a utilisation column ``DCU%``/``HCU%``, optional
``Dec%``/``Enc%`` columns, ``Mode`` reading ``Normal`` or ``N/A``.

The default table::

    ============ System Management Interface ============
    =====================================================
    DCU     Temp     AvgPwr     Perf     PwrCap     VRAM%      DCU%      Mode
    0       67.0C    8.0W       manual   600.0W     87%        74%       Normal
    =====================================================
    ================== End of SMI Log ===================

Format rules: the header is the line whose first word is ``DCU`` or
``HCU`` and that names a ``Temp`` column (upstream AMD ``rocm-smi``, whose
first column is ``GPU``/``Device``, is not claimed); columns are separated by
whitespace (a name may carry a bracketed qualifier, ``Temp (DieEdge)``,
which stays with it); each later line starting with a device number is a
data row with one value per column; values carry their unit (``67.0C``,
``8.0W``, ``87%``, ``74.5%``); ``N/A`` and empty mean not reported;
trailing spaces are ignored; a line of ``=`` or the ``End of SMI Log``
banner ends the table.

Also read: the per-device ``key: value`` lines that ``hy-smi``/``rocm-smi``
print for detail flags (``--showmeminfo vram``, ``--showtemp``,
``--showserial``, ``--showbus``...), e.g. ``DCU[0] : VRAM Total Memory
(B): 34342961152`` or ``HCU[0] : vram Total Used Memory (MiB): 2``; the
unit is the bracketed one at the end of the key.  Keys not listed in
:data:`_KV_KEYS` are ignored (these flags print many).

Mapping: one :class:`Device` per index, ``kind="dcu"``, ``vendor="hygon"``,
``name`` = ``dcu<index>``; ``hw_id`` = the serial number when a detail line
prints one, else ``hygon-<bus id>`` when one prints the PCI bus, else
``hygon-dcu<index>`` (unique per node only: the default table has no ids);
``Temp`` -> ``temperatures["gpu"]`` (detail lines: ``edge``, ``hotspot``
for junction, ``memory``); ``AvgPwr`` -> ``power_watts``; ``PwrCap`` ->
``power_limit_watts``; ``DCU%``/``HCU%`` -> ``utilization["general"]``,
``Dec%``/``Enc%`` -> ``decoder``/``encoder``; VRAM bytes from detail lines
-> ``memory_used_bytes``/``memory_total_bytes``.  ``VRAM%`` is a capacity
ratio without byte counts -> ``memory_utilization`` (rendered as
``hw_gpu_memory_utilization_ratio`` when no bytes are known).  ``Perf`` and
``Mode`` are descriptive and dropped.  ``model`` is the card series from a
detail line when printed, else empty.

No vDCU view appears in these outputs, so no slices are produced.  Unknown
columns add one ``unknown_column`` Problem each; a data row with the wrong
number of values adds ``parse`` (or ``truncated`` when it is the last line),
and the other rows are kept.
"""

from __future__ import annotations

import re

from exporter import schema as S
from exporter.model import Device, Parsed, Problem
from exporter.parsers.nvidia_smi_xml import ValueReader

VENDOR = "hygon"
KIND = "dcu"

CAPABILITIES = {
    "vendor": VENDOR,
    "kind": KIND,
    "tool": "hy-smi / rocm-smi (DTK)",
    "metrics": [
        S.GPU_UTILIZATION.name, S.GPU_MEMORY_USAGE.name, S.GPU_MEMORY_LIMIT.name,
        S.GPU_MEMORY_UTILIZATION.name, S.POWER.name, S.POWER_LIMIT.name, S.TEMPERATURE.name,
        S.STATUS.name, S.DEVICE_INFO.name,
    ],
    "slices": [],
    "status": "stable",
    "source": "captures tested: hy-smi 8 DCU (manual perf, loaded), hy-smi K100_AI 4 DCU (DTK 24.04.1, idle); "
              "HCU/Dec%/Enc% header variants and --showmeminfo detail lines from the documented format",
}

_ABSENT = frozenset({"", "n/a", "na", "-", "unknown", "not supported"})

#: header column (lower case, qualifier dropped) -> (field, quantity kind)
_COLUMNS = {
    "temp": ("temp", "celsius"),
    "avgpwr": ("power", "watts"),
    "pwrcap": ("cap", "watts"),
    "vram%": ("vram_ratio", "ratio"),
    "dcu%": ("util", "ratio"),
    "hcu%": ("util", "ratio"),
    "gpu%": ("util", "ratio"),
    "dec%": ("dec", "ratio"),
    "enc%": ("enc", "ratio"),
    "perf": ("perf", None),
    "mode": ("mode", None),
    "sclk": ("sclk", "hz"),
    "mclk": ("mclk", "hz"),
    "fan": ("fan", "ratio"),
}

_KV_LINE = re.compile(r"^\s*(?P<dev>DCU|HCU|GPU)\[(?P<index>\d+)\]\s*:\s*(?P<key>.+?)\s*:\s*(?P<value>.*?)\s*$")
_KEY_UNIT = re.compile(r"^(?P<base>.*?)\s*\((?P<unit>[^()]*)\)$")

#: detail key (lower case, unit removed) -> field
_KV_KEYS = {
    "vram total memory": "mem_total",
    "vram total used memory": "mem_used",
    "temperature (sensor edge)": "t_edge",
    "temperature (sensor junction)": "t_hotspot",
    "temperature (sensor mem)": "t_memory",
    "serial number": "serial",
    "pci bus": "bus",
    "card series": "model",
    "card model": "model",
    "average graphics package power": "power",
    "max graphics package power": "cap",
    "dcu use": "util",
    "hcu use": "util",
    "gpu use": "util",
}
_KV_UNITS = {"B": "B", "KiB": "KiB", "MiB": "MiB", "GiB": "GiB", "MB": "MiB", "KB": "KiB", "GB": "GiB",
             "C": "C", "W": "W", "%": "%"}


def detect(text: str) -> bool:
    """True for the hy-smi / DTK rocm-smi table or its ``DCU[N] :`` detail lines."""
    head = text[:4096]
    if _header_line(head.splitlines()) is not None:
        return True
    return bool(re.search(r"^\s*(?:DCU|HCU)\[\d+\]\s*:", head, re.MULTILINE))


def _header_line(lines: list[str]) -> int | None:
    for number, line in enumerate(lines):
        words = line.split()
        if words and words[0].lower() in ("dcu", "hcu") and any(w.lower().startswith("temp") for w in words):
            return number
    return None


def _columns(line: str) -> list[str]:
    """Header words; a ``(qualifier)`` word joins the name before it."""
    names: list[str] = []
    for word in line.split():
        if word.startswith("(") and names:
            names[-1] = f"{names[-1]} {word}"
        else:
            names.append(word)
    return names


def parse(text: str) -> Parsed:
    """Parse hy-smi output; see the module docstring."""
    out = Parsed()
    records: dict[int, dict[str, tuple[str, str | None]]] = {}
    order: list[int] = []
    lines = text.splitlines()
    start = _header_line(lines)
    kv_found = False
    if start is not None:
        names = _columns(lines[start])
        unknown = [n for n in names[1:] if _base(n) not in _COLUMNS]
        for name in unknown:
            out.problems.append(Problem(kind="unknown_column", detail=f"hy-smi column {name!r}"))
        body = lines[start + 1:]
        last = max((i for i, line in enumerate(body) if line.strip()), default=-1)
        for number, line in enumerate(body):
            words = line.split()
            if not words:
                continue
            if set(line.strip()) <= set("=-") or "end of smi log" in line.lower():
                break
            if _KV_LINE.match(line):
                break
            if not words[0].isdigit():
                out.problems.append(Problem(kind="parse",
                                            detail=f"hy-smi row without a device number: {line.strip()!r}"))
                continue
            if len(words) != len(names):
                kind = "truncated" if number == last and len(words) < len(names) else "parse"
                out.problems.append(Problem(kind=kind, detail=f"hy-smi row has {len(words)} values for "
                                                              f"{len(names)} columns: {line.strip()!r}"))
                if len(words) < 2 or kind == "parse":
                    continue
            index = int(words[0])
            if index in records:
                out.problems.append(Problem(kind="parse", detail=f"DCU {index} listed twice"))
                continue
            record = records[index] = {}
            order.append(index)
            for name, raw in zip(names[1:], words[1:]):
                base = _base(name)
                if base in _COLUMNS:
                    record[_COLUMNS[base][0]] = (raw, None)
    for line in lines:
        match = _KV_LINE.match(line)
        if match is None:
            continue
        kv_found = True
        key, unit = match.group("key"), None
        unit_match = _KEY_UNIT.match(key)
        if unit_match and unit_match.group("unit") in _KV_UNITS:
            key, unit = unit_match.group("base"), _KV_UNITS[unit_match.group("unit")]
        field = _KV_KEYS.get(" ".join(key.lower().split()))
        if field is None:
            continue
        index = int(match.group("index"))
        if index not in records:
            records[index] = {}
            order.append(index)
        records[index][field] = (match.group("value"), unit)
    if start is None and not kv_found:
        out.problems.append(Problem(kind="unknown_format", detail="no hy-smi table header or DCU[N] lines"))
        return out
    buses = {}
    for index in order:
        reader = ValueReader(out.problems, f"dcu{index}")
        raw = records[index].get("bus", (None, None))[0]
        buses[index] = None if _absent(raw) else reader.pci(raw)
    for index in order:
        out.devices.append(_device(index, records[index], buses[index], out))
    return out


def _base(name: str) -> str:
    return name.split(" (")[0].strip().lower()


def _absent(raw: str | None) -> bool:
    return raw is None or raw.strip().lower() in _ABSENT


def _device(index: int, record: dict[str, tuple[str, str | None]], bus: str | None, out: Parsed) -> Device:
    serial = record.get("serial", (None, None))[0]
    serial = None if _absent(serial) else serial
    hw_id = serial or (f"{VENDOR}-{bus}" if bus else f"{VENDOR}-{KIND}{index}")
    reader = ValueReader(out.problems, hw_id)
    model = record.get("model", (None, None))[0]
    dev = Device(hw_id=hw_id, vendor=VENDOR, model="" if _absent(model) else model, kind=KIND,  # type: ignore[arg-type]
                 index=index, name=f"{KIND}{index}", serial=serial, pci_bus_id=bus)

    def num(field: str, kind: str) -> float | None:
        raw, unit = record.get(field, (None, None))
        if _absent(raw):
            return None
        return reader.number(raw, kind, field, unit)

    temp = num("temp", "celsius")
    if temp is not None:
        dev.temperatures["gpu"] = temp
    for field, sensor in (("t_edge", "edge"), ("t_hotspot", "hotspot"), ("t_memory", "memory")):
        value = num(field, "celsius")
        if value is not None:
            dev.temperatures[sensor] = value
    dev.power_watts = num("power", "watts")
    dev.power_limit_watts = num("cap", "watts")
    for field, task in (("util", "general"), ("dec", "decoder"), ("enc", "encoder")):
        value = num(field, "ratio")
        if value is not None:
            dev.utilization[task] = value
    dev.memory_utilization = num("vram_ratio", "ratio")  # capacity; render prefers bytes when present
    for field, kind in (("sclk", "hz"), ("mclk", "hz")):
        value = num(field, kind)
        if value is not None:
            dev.clocks_hz["graphics" if field == "sclk" else "memory"] = value
    dev.fan_speed = num("fan", "ratio")
    for field in ("mem_total", "mem_used"):
        raw, unit = record.get(field, (None, None))
        if _absent(raw):
            continue
        value = reader.integer(raw, "bytes", field, unit or "B")
        if field == "mem_total":
            dev.memory_total_bytes = value
        else:
            dev.memory_used_bytes = value
    return dev
