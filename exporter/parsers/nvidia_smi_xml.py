"""Parser for ``nvidia-smi -q -x`` (the XML device query).

Source: NVIDIA's ``nvidia-smi`` tool, ``-q -x`` output (root element
``nvidia_smi_log``, DTD ``nvsmi_device_v11.dtd`` .. ``v12.dtd``).  Layouts
seen in captures: driver 510.47.03 (A100-SXM4-40GB with MIG, old
``power_readings`` and ``clocks_throttle_reasons`` blocks) and driver
575.51.02 (GeForce RTX 4070 Laptop: ``gpu_power_readings`` with
instant/average draw, ``clocks_event_reasons_counters`` in microseconds,
relative ``*_tlimit_*`` thresholds, deprecated-value strings).  Older
layouts (``ecc_errors/volatile/single_bit|double_bit``) are handled too.

This module also holds the value helpers shared by the sibling NVIDIA
parsers (``nvidia_smi_csv``, ``nvidia_smi_list``, ``nvidia_smi_text``):
:func:`clean`, :func:`to_base`, :func:`normalise_pci_bus_id`,
:func:`device_hw_id`, :class:`ValueReader`, and :func:`parse_tree`, which
maps an element tree in the ``-q -x`` vocabulary onto the snapshot model
(the ``-q`` text parser rebuilds such a tree from the text).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat

from exporter.model import KIB, MIB, Device, Parsed, Problem, Process, Slice

#: Largest input accepted, in characters; larger input is a Problem.
MAX_INPUT_CHARS = 16 * 1024 * 1024

VENDOR = "nvidia"

# --------------------------------------------------------------------------
# Shared value helpers (also used by nvidia_smi_csv / _list / _text)
# --------------------------------------------------------------------------

#: Values (lower-case, brackets and padding removed) meaning "not reported".
ABSENT_VALUES = frozenset(
    {
        "",
        "n/a",
        "na",
        "not supported",
        "not available",
        "not available in wddm driver model",
        "requested functionality has been deprecated",
        "unknown error",
        "insufficient permissions",
        "gpu requires reset",
    }
)

#: Units accepted per quantity kind: unit -> (multiplier, divisor) to the base
#: unit.  Dividing (rather than multiplying by 1e-6) keeps ``11 %`` == 0.11.
UNITS: dict[str, dict[str, tuple[int, int]]] = {
    "bytes": {"B": (1, 1), "KiB": (KIB, 1), "MiB": (MIB, 1), "GiB": (MIB * 1024, 1)},
    "hz": {"Hz": (1, 1), "kHz": (1000, 1), "MHz": (1_000_000, 1), "GHz": (1_000_000_000, 1)},
    "ratio": {"%": (1, 100)},
    "watts": {"W": (1, 1), "mW": (1, 1000), "kW": (1000, 1)},
    "celsius": {"C": (1, 1), "°C": (1, 1)},
    "seconds": {"s": (1, 1), "ms": (1, 1000), "us": (1, 1_000_000), "µs": (1, 1_000_000), "ns": (1, 1_000_000_000)},
    "joules": {"J": (1, 1), "mJ": (1, 1000), "kJ": (1000, 1)},
    "count": {},
}

#: Kinds whose values may come without a unit (the unit is implied).
_UNITLESS_OK = frozenset({"celsius", "count"})

_NUMBER = re.compile(r"^([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(\S*)$")
_PCI = re.compile(r"^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")


def clean(raw: str | None) -> str | None:
    """Return ``raw`` with padding and inner newlines collapsed, or ``None``.

    ``None`` is returned for every "not reported" form nvidia-smi prints:
    ``N/A``, ``[N/A]``, ``[Not Supported]``, ``Not Supported``, "Requested
    functionality has been deprecated", ``Unknown Error``, empty strings.
    Surrounding square brackets are removed (``[N/A]`` -> ``N/A``).
    """
    if raw is None:
        return None
    value = " ".join(raw.split())
    if len(value) >= 2 and value[0] == "[" and value[-1] == "]":
        value = value[1:-1].strip()
    if value.lower() in ABSENT_VALUES:
        return None
    return value


def to_base(raw: str | None, kind: str, default_unit: str | None = None) -> float | None:
    """Convert ``"19818 MiB"``-style text to a float in the base unit of ``kind``.

    ``kind`` is one of :data:`UNITS` (``bytes``, ``hz``, ``ratio``, ``watts``,
    ``celsius``, ``seconds``, ``joules``, ``count``).  ``default_unit`` applies
    when the value carries no unit (CSV ``nounits`` with a ``[MiB]`` header).
    Returns ``None`` for the absent forms (see :func:`clean`); raises
    ``ValueError`` when the text is not a number in an accepted unit.
    """
    value = clean(raw)
    if value is None:
        return None
    match = _NUMBER.match(value)
    if match is None:
        raise ValueError(f"not a number: {value!r}")
    number = float(match.group(1))
    unit = match.group(2) or default_unit or ""
    units = UNITS[kind]
    if unit in units:
        mult, div = units[unit]
        return number * mult / div
    if unit == "" and kind in _UNITLESS_OK:
        return number
    raise ValueError(f"unexpected unit {unit!r} for {kind}: {value!r}")


def normalise_pci_bus_id(raw: str | None) -> str | None:
    """``00000000:C1:00.0`` -> ``0000:c1:00.0`` (4-digit domain, lower case).

    Returns ``None`` when absent; raises ``ValueError`` when malformed.
    """
    value = clean(raw)
    if value is None:
        return None
    match = _PCI.match(value)
    if match is None:
        raise ValueError(f"not a PCI bus id: {value!r}")
    domain = int(match.group(1) or "0", 16)
    bus, dev, fn = int(match.group(2), 16), int(match.group(3), 16), match.group(4)
    domain_text = f"{domain:04x}" if domain <= 0xFFFF else f"{domain:08x}"
    return f"{domain_text}:{bus:02x}:{dev:02x}.{fn}"


def device_hw_id(uuid: str | None, serial: str | None, pci_bus_id: str | None, index: int | None) -> str:
    """The device ``hw_id``: UUID, else serial, else ``nvidia-<pci bus id>``.

    With none of those, ``nvidia-gpu<index>`` (only unique within one
    capture; the replay source merges by UUID/serial/PCI first).
    """
    if uuid:
        return uuid
    if serial:
        return serial
    if pci_bus_id:
        return f"{VENDOR}-{pci_bus_id}"
    return f"{VENDOR}-gpu{index if index is not None else ''}"


def recovery_state(recovery_action: str | None, *failure_flags: str | None) -> str:
    """``hw.state`` from ``gpu_recovery_action`` and Yes/No health flags.

    A recovery action other than ``None`` -> ``degraded``; any flag reading
    ``Yes`` (row-remap failure or pending, page retirement pending: the same
    signals the NVML source uses) -> ``predicted_failure``; otherwise ``ok``.
    """
    action = clean(recovery_action)
    if action is not None and action.lower() != "none":
        return "degraded"
    for flag in failure_flags:
        value = clean(flag)
        if value is not None and value.lower() in ("yes", "true", "1"):
            return "predicted_failure"
    return "ok"


class ValueReader:
    """Convert raw field text, recording a ``parse`` Problem on failure.

    ``where`` prefixes each problem's detail (for example the device id).
    The reader is local to one parse call; it keeps no global state.
    """

    def __init__(self, problems: list[Problem], where: str = "") -> None:
        self.problems = problems
        self.where = where

    def _problem(self, field: str, raw: str | None, err: Exception) -> None:
        prefix = f"{self.where}: " if self.where else ""
        self.problems.append(Problem(kind="parse", detail=f"{prefix}{field}={raw!r}: {err}"))

    def number(self, raw: str | None, kind: str, field: str, default_unit: str | None = None) -> float | None:
        """A float in base units, or ``None`` (absent or unparsable)."""
        try:
            return to_base(raw, kind, default_unit)
        except ValueError as err:
            self._problem(field, raw, err)
            return None

    def integer(self, raw: str | None, kind: str, field: str, default_unit: str | None = None) -> int | None:
        """Like :meth:`number`, rounded to an int (bytes, counts, pids)."""
        value = self.number(raw, kind, field, default_unit)
        if value is None:
            return None
        if kind == "count" and value != int(value):
            self._problem(field, raw, ValueError("not an integer"))
            return None
        return int(round(value))

    def pci(self, raw: str | None, field: str = "pci_bus_id") -> str | None:
        """A normalised PCI bus id, or ``None``."""
        try:
            return normalise_pci_bus_id(raw)
        except ValueError as err:
            self._problem(field, raw, err)
            return None


def add_ecc(
    errors: dict[tuple[str, str], int],
    reader: ValueReader,
    values: dict[str, str | None],
    prefix: str,
) -> None:
    """Fill ``errors`` from volatile ECC counters keyed by layout names.

    ``values`` maps the ``-q -x`` leaf names of one ``volatile`` block
    (``sram_correctable``, ``dram_uncorrectable``, ``sram_uncorrectable_parity``
    ...; or the old ``single_bit/device_memory`` ... ``double_bit/total``) to
    their raw text.  SRAM parity and SEC-DED counts are summed.  The old
    per-structure layout maps ``device_memory`` to ``dram`` and the on-chip
    structures to ``sram``; ``total`` is used only when nothing finer is
    reported, under source ``total``.
    """

    def count(name: str) -> int | None:
        return reader.integer(values.get(name), "count", f"{prefix}{name}")

    def put(key: tuple[str, str], *numbers: int | None) -> None:
        present = [n for n in numbers if n is not None]
        if present:
            errors[key] = sum(present)

    # current layout (R510+)
    put(("corrected", "sram"), count("sram_correctable"))
    put(
        ("uncorrected", "sram"),
        count("sram_uncorrectable"),
        count("sram_uncorrectable_parity"),
        count("sram_uncorrectable_secded"),
    )
    put(("corrected", "dram"), count("dram_correctable"))
    put(("uncorrected", "dram"), count("dram_uncorrectable"))
    # old layout (<= R470)
    sram_parts = ("register_file", "l1_cache", "l2_cache", "texture_memory", "texture_shm", "cbu")
    for bits, etype in (("single_bit", "corrected"), ("double_bit", "uncorrected")):
        put((etype, "dram"), count(f"{bits}/device_memory"))
        put((etype, "sram"), *(count(f"{bits}/{p}") for p in sram_parts))
        if (etype, "dram") not in errors and (etype, "sram") not in errors:
            put((etype, "total"), count(f"{bits}/total"))


#: ``clocks_event_reasons_counters`` leaf suffix -> ``throttle_seconds`` reason.
THROTTLE_COUNTERS = {
    "sw_power_cap": "power",
    "sync_boost": "sync_boost",
    "sw_therm_slowdown": "thermal",
    "sw_thermal_slowdown": "thermal",
    "hw_therm_slowdown": "hw_thermal",
    "hw_thermal_slowdown": "hw_thermal",
    "hw_power_brake": "hw_power_brake",
    "hw_power_brake_slowdown": "hw_power_brake",
}


# --------------------------------------------------------------------------
# XML parsing
# --------------------------------------------------------------------------

_TRUNCATION_CODES = frozenset(
    {
        expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS],
        expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_TOKEN],
        expat.errors.codes[expat.errors.XML_ERROR_PARTIAL_CHAR],
    }
)


def parse(text: str) -> Parsed:
    """Parse ``nvidia-smi -q -x`` output into devices, MIG slices and processes.

    Returns a :class:`~exporter.model.Parsed` with, per ``<gpu>``:

    * one :class:`Device`: ``hw_id`` = ``uuid`` (else serial, else
      ``nvidia-<pci bus id>``), ``index`` = position in the log (the
      nvidia-smi/NVML index), ``name`` = ``gpu<index>``, ``model`` =
      ``product_name``; ``memory_*_bytes`` from ``fb_memory_usage`` (MiB x
      1048576); ``utilization`` ratios (``general``/``encoder``/``decoder``);
      ``memory_bandwidth_utilization`` from ``memory_util``; ``power_watts``
      (instant, else ``power_draw``, else average) and ``power_limit_watts``
      (enforced, else current limit); ``temperatures`` and
      ``temperature_limits`` in Celsius (slowdown -> ``high.degraded``,
      shutdown -> ``high.critical``; negative thresholds dropped);
      ``clocks_hz``; volatile ECC counts in ``errors``; cumulative
      ``throttle_seconds`` from ``clocks_event_reasons_counters`` (µs);
      ``fan_speed`` ratio;
    * one MIG :class:`Slice` per ``mig_devices/mig_device`` (``slice_id``
      ``gi<N>/ci<M>``, ``hw_id`` = its ``MIG-`` uuid if present else
      ``<gpu uuid>/gi<N>/ci<M>``; ``info["mig_device_index"]`` holds the MIG
      device index that ``nvidia-smi -L`` prints);
    * one :class:`Process` per ``processes/process_info`` (parent = the MIG
      slice when its GI/CI ids match one, else the GPU).

    Absent values (N/A forms) are ``None``; unparsable values are ``None``
    plus a ``parse`` Problem.  Malformed XML gives a ``parse`` Problem (or
    ``truncated`` when the input stops early); never an exception.
    """
    if len(text) > MAX_INPUT_CHARS:
        return Parsed(problems=[Problem(kind="too_large", detail=f"{len(text)} chars > {MAX_INPUT_CHARS}")])
    if not text.strip():
        return Parsed(problems=[Problem(kind="parse", detail="empty input")])
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        # these expat errors are only raised when the input ends too early
        kind = "truncated" if err.code in _TRUNCATION_CODES else "parse"
        return Parsed(problems=[Problem(kind=kind, detail=f"XML: {err}")])
    except ValueError as err:  # e.g. an encoding declaration in a str
        return Parsed(problems=[Problem(kind="parse", detail=f"XML: {err}")])
    if root.tag != "nvidia_smi_log":
        return Parsed(problems=[Problem(kind="unknown_format", detail=f"XML root is <{root.tag}>")])
    return parse_tree(root)


def parse_tree(root: ET.Element) -> Parsed:
    """Map an ``nvidia_smi_log`` element tree onto the snapshot model.

    Used by :func:`parse` and by the ``-q`` text parser, which builds a tree
    in the same vocabulary.  Same output shapes as :func:`parse`.
    """
    out = Parsed()
    driver = clean(root.findtext("driver_version"))
    for order, gpu in enumerate(root.findall("gpu")):
        _map_gpu(gpu, order, driver, out)
    return out


def _text(el: ET.Element, path: str) -> str | None:
    return el.findtext(path)


def _map_gpu(gpu: ET.Element, order: int, driver: str | None, out: Parsed) -> None:
    problems = out.problems
    reader = ValueReader(problems, f"gpu{order}")
    uuid = clean(_text(gpu, "uuid"))
    serial = clean(_text(gpu, "serial"))
    pci = reader.pci(_text(gpu, "pci/pci_bus_id") or gpu.get("id"))
    hw_id = device_hw_id(uuid, serial, pci, order)
    reader.where = hw_id

    dev = Device(
        hw_id=hw_id,
        vendor=VENDOR,
        model=clean(_text(gpu, "product_name")) or "",
        kind="gpu",
        index=order,
        name=f"gpu{order}",
        serial=serial,
        driver_version=driver,
        firmware_version=clean(_text(gpu, "vbios_version")),
        pci_bus_id=pci,
        state=recovery_state(
            _text(gpu, "gpu_recovery_action"),
            _text(gpu, "remapped_rows/remapped_row_failure"),
            _text(gpu, "remapped_rows/remapped_row_pending"),
            _text(gpu, "retired_pages/pending_retirement"),
            _text(gpu, "retired_pages/pending_blacklist"),
        ),
    )

    # memory capacity and utilization
    dev.memory_total_bytes = reader.integer(_text(gpu, "fb_memory_usage/total"), "bytes", "fb_memory_usage/total")
    dev.memory_used_bytes = reader.integer(_text(gpu, "fb_memory_usage/used"), "bytes", "fb_memory_usage/used")
    for tag, task in (("gpu_util", "general"), ("encoder_util", "encoder"), ("decoder_util", "decoder")):
        value = reader.number(_text(gpu, f"utilization/{tag}"), "ratio", f"utilization/{tag}")
        if value is not None:
            dev.utilization[task] = value
    dev.memory_bandwidth_utilization = reader.number(
        _text(gpu, "utilization/memory_util"), "ratio", "utilization/memory_util"
    )

    # power and energy
    readings = gpu.find("gpu_power_readings")
    if readings is None:
        readings = gpu.find("power_readings")
    if readings is not None:
        for tag in ("instant_power_draw", "power_draw", "average_power_draw"):
            value = reader.number(readings.findtext(tag), "watts", f"{readings.tag}/{tag}")
            if value is not None:
                dev.power_watts = value
                break
        for tag in ("enforced_power_limit", "current_power_limit"):
            value = reader.number(readings.findtext(tag), "watts", f"{readings.tag}/{tag}")
            if value is not None:
                dev.power_limit_watts = value
                break
    energy = gpu.findtext("total_energy_consumption")
    if energy is None and readings is not None:
        energy = readings.findtext("total_energy_consumption")
    dev.energy_joules = reader.number(energy, "joules", "total_energy_consumption", "mJ")

    # temperatures (absolute thresholds only; *_tlimit_* values are relative)
    for tag, sensor in (("gpu_temp", "gpu"), ("memory_temp", "memory")):
        value = reader.number(_text(gpu, f"temperature/{tag}"), "celsius", f"temperature/{tag}")
        if value is not None:
            dev.temperatures[sensor] = value
    for tag, limit in (("gpu_temp_slow_threshold", "high.degraded"), ("gpu_temp_max_threshold", "high.critical")):
        value = reader.number(_text(gpu, f"temperature/{tag}"), "celsius", f"temperature/{tag}")
        if value is not None and value >= 0:
            dev.temperature_limits[limit] = value

    # clocks
    for tag, clock in (
        ("graphics_clock", "graphics"),
        ("sm_clock", "sm"),
        ("mem_clock", "memory"),
        ("video_clock", "video"),
    ):
        value = reader.number(_text(gpu, f"clocks/{tag}"), "hz", f"clocks/{tag}")
        if value is not None:
            dev.clocks_hz[clock] = value

    # cumulative clock-event (throttle) counters; the boolean reasons are not counters
    counters = gpu.find("clocks_event_reasons_counters")
    if counters is not None:
        for child in counters:
            suffix = child.tag.removeprefix("clocks_event_reasons_counters_")
            reason = THROTTLE_COUNTERS.get(suffix)
            if reason is None:
                continue
            value = reader.number(child.text, "seconds", f"{counters.tag}/{child.tag}")
            if value is not None:
                dev.throttle_seconds[reason] = dev.throttle_seconds.get(reason, 0.0) + value

    # volatile ECC
    volatile = gpu.find("ecc_errors/volatile")
    if volatile is not None:
        leaves: dict[str, str | None] = {}
        for child in volatile:
            if len(child):
                for leaf in child:
                    leaves[f"{child.tag}/{leaf.tag}"] = leaf.text
            else:
                leaves[child.tag] = child.text
        add_ecc(dev.errors, reader, leaves, "ecc_errors/volatile/")

    fan = reader.number(_text(gpu, "fan_speed"), "ratio", "fan_speed")
    dev.fan_speed = fan
    out.devices.append(dev)

    # MIG slices
    by_gi_ci: dict[tuple[str, str], str] = {}
    for mig in gpu.findall("mig_devices/mig_device"):
        gi = clean(mig.findtext("gpu_instance_id"))
        ci = clean(mig.findtext("compute_instance_id"))
        mig_index = clean(mig.findtext("index"))
        if gi is None or ci is None:
            problems.append(Problem(kind="parse", detail=f"{hw_id}: mig_device {mig_index} without GI/CI ids"))
            continue
        slice_id = f"gi{gi}/ci{ci}"
        mig_uuid = clean(mig.findtext("uuid"))
        slice_hw_id = mig_uuid if mig_uuid else f"{hw_id}/{slice_id}"
        sl = Slice(
            hw_id=slice_hw_id,
            parent_id=hw_id,
            slice_type="mig",
            slice_id=slice_id,
            vendor=VENDOR,
            model=dev.model,
            kind="gpu",
            parent_index=order,
            memory_used_bytes=reader.integer(mig.findtext("fb_memory_usage/used"), "bytes", f"{slice_id}/used"),
            memory_limit_bytes=reader.integer(mig.findtext("fb_memory_usage/total"), "bytes", f"{slice_id}/total"),
            utilization=reader.number(mig.findtext("utilization/gpu_util"), "ratio", f"{slice_id}/gpu_util"),
        )
        profile = clean(mig.findtext("profile"))
        if profile:
            sl.profile = profile
        if mig_index is not None:
            sl.info["mig_device_index"] = mig_index
        by_gi_ci[(gi, ci)] = slice_hw_id
        out.slices.append(sl)

    # processes
    for proc in gpu.findall("processes/process_info"):
        pid = reader.integer(proc.findtext("pid"), "count", "process_info/pid")
        if pid is None:
            problems.append(Problem(kind="parse", detail=f"{hw_id}: process without pid"))
            continue
        gi = clean(proc.findtext("gpu_instance_id"))
        ci = clean(proc.findtext("compute_instance_id"))
        parent = by_gi_ci.get((gi, ci), hw_id) if gi is not None and ci is not None else hw_id
        out.processes.append(
            Process(
                pid=pid,
                parent_id=parent,
                memory_bytes=reader.integer(proc.findtext("used_memory"), "bytes", f"process {pid}/used_memory"),
                name=clean(proc.findtext("process_name")),
            )
        )
