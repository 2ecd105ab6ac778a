"""Parser for ``nvidia-smi -q`` (the human-readable device query).

Source: NVIDIA's ``nvidia-smi -q``.  Capture seen: driver 590.48.01 on an
H100 80GB HBM3 under load.  The output starts with a
``==============NVSMI LOG==============`` banner, then ``Key : Value``
lines whose indentation (4 spaces per level) nests them in sections;
each GPU is a section headed ``GPU 00000000:00:09.0``.  A few keys repeat
inside a section (the ``Processes`` list), and some values carry a unit
(``81559 MiB``, ``629.45 W``, ``0 us``).

The text is turned into an element tree in the ``nvidia-smi -q -x``
vocabulary (``Product Name`` -> ``product_name``, ``GPU Current Temp`` ->
``temperature/gpu_temp`` ...) and mapped by
:func:`exporter.parsers.nvidia_smi_xml.parse_tree`, so both formats give
the same fields.  Temperature thresholds printed as ``T.Limit`` offsets
(``GPU Shutdown T.Limit Temp : -8 C``) are relative and are not mapped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from exporter.model import Parsed, Problem
from exporter.parsers import nvidia_smi_xml

BANNER = "==============NVSMI LOG=============="

_KEY_VALUE = re.compile(r"^(?P<key>\S.*?)\s+:(?:\s*(?P<value>.*?))?\s*$")
_GPU_HEADER = re.compile(r"^GPU\s+(?P<bus>[0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{1,2}:[0-9A-Fa-f]{1,2}\.[0-7])$")
_SLUG = re.compile(r"[^a-z0-9]+")

# (parent tag, slug of the text key) -> -q -x tag, where the two differ.
_TAGS = {
    ("gpu", "serial_number"): "serial",
    ("gpu", "gpu_uuid"): "uuid",
    ("mig_mode", "current"): "current_mig",
    ("mig_mode", "pending"): "pending_mig",
    ("pci", "bus_id"): "pci_bus_id",
    ("utilization", "gpu"): "gpu_util",
    ("utilization", "memory"): "memory_util",
    ("utilization", "encoder"): "encoder_util",
    ("utilization", "decoder"): "decoder_util",
    ("utilization", "jpeg"): "jpeg_util",
    ("utilization", "ofa"): "ofa_util",
    ("temperature", "gpu_current_temp"): "gpu_temp",
    ("temperature", "gpu_shutdown_temp"): "gpu_temp_max_threshold",
    ("temperature", "gpu_slowdown_temp"): "gpu_temp_slow_threshold",
    ("temperature", "memory_current_temp"): "memory_temp",
    ("gpu_power_readings", "instantaneous_power_draw"): "instant_power_draw",
    ("power_readings", "instantaneous_power_draw"): "instant_power_draw",
    ("clocks", "graphics"): "graphics_clock",
    ("clocks", "sm"): "sm_clock",
    ("clocks", "memory"): "mem_clock",
    ("clocks", "video"): "video_clock",
    ("clocks_event_reasons_counters", "sw_power_capping"): "clocks_event_reasons_counters_sw_power_cap",
    ("clocks_event_reasons_counters", "sync_boost"): "clocks_event_reasons_counters_sync_boost",
    ("clocks_event_reasons_counters", "sw_thermal_slowdown"): "clocks_event_reasons_counters_sw_therm_slowdown",
    ("clocks_event_reasons_counters", "hw_thermal_slowdown"): "clocks_event_reasons_counters_hw_therm_slowdown",
    ("clocks_event_reasons_counters", "hw_power_braking"): "clocks_event_reasons_counters_hw_power_brake",
    ("volatile", "sram_uncorrectable_sec_ded"): "sram_uncorrectable_secded",
    ("single_bit", "texture_shared"): "texture_shm",
    ("double_bit", "texture_shared"): "texture_shm",
    ("remapped_rows", "remapping_failure_occurred"): "remapped_row_failure",
    ("remapped_rows", "pending"): "remapped_row_pending",
    ("retired_pages", "pending_page_blacklist"): "pending_blacklist",
    ("retired_pages", "pending_page_retirement"): "pending_retirement",
}

# keys of one process record (slugs) -> process_info tags
_PROCESS_TAGS = {
    "gpu_instance_id": "gpu_instance_id",
    "compute_instance_id": "compute_instance_id",
    "process_id": "pid",
    "type": "type",
    "name": "process_name",
    "used_gpu_memory": "used_memory",
}


@dataclass(slots=True)
class _Node:
    indent: int
    key: str
    value: str | None
    children: list["_Node"] = field(default_factory=list)


def _slug(key: str) -> str:
    return _SLUG.sub("_", key.lower()).strip("_")


def _tree(text: str, problems: list[Problem]) -> _Node:
    root = _Node(indent=-1, key="", value=None)
    stack = [root]
    for number, raw_line in enumerate(text.expandtabs(4).splitlines(), start=1):
        line = raw_line.rstrip()
        stripped = line.strip()
        if not stripped or stripped == BANNER:
            continue
        indent = len(line) - len(line.lstrip())
        match = _KEY_VALUE.match(stripped)
        if match is not None:
            node = _Node(indent, match.group("key").strip(), match.group("value") or "")
        elif ":" in stripped and _GPU_HEADER.match(stripped) is None:
            problems.append(Problem(kind="parse", detail=f"line {number}: unrecognised line {stripped[:80]!r}"))
            continue
        else:
            node = _Node(indent, stripped, None)
        while stack[-1].indent >= indent:
            stack.pop()
        stack[-1].children.append(node)
        stack.append(node)
    return root


def _flatten(node: _Node) -> list[_Node]:
    out = []
    for child in node.children:
        out.append(child)
        out.extend(_flatten(child))
    return out


def _records(section: _Node) -> list[dict[str, str | None]]:
    """Split a flat list of repeating keys into records (new record on a repeated key)."""
    records: list[dict[str, str | None]] = []
    current: dict[str, str | None] = {}
    for node in _flatten(section):
        slug = _slug(node.key)
        if slug in current:
            records.append(current)
            current = {}
        current[slug] = node.value
    if current:
        records.append(current)
    return records


def _element(node: _Node, parent_tag: str) -> ET.Element:
    slug = _slug(node.key)
    tag = _TAGS.get((parent_tag, slug), slug) or "_"
    el = ET.Element(tag)
    if node.value is not None:
        el.text = node.value
    if tag == "processes":
        for record in _records(node):
            info = ET.SubElement(el, "process_info")
            for key, value in record.items():
                ET.SubElement(info, _PROCESS_TAGS.get(key, key)).text = value
    elif tag == "mig_devices":
        if any(child.children for child in node.children):
            for child in node.children:
                el.append(_element(child, tag))
        else:  # a flat list of repeating keys
            for record in _records(node):
                mig = ET.SubElement(el, "mig_device")
                for key, value in record.items():
                    ET.SubElement(mig, key).text = value
    else:
        for child in node.children:
            el.append(_element(child, tag))
    if parent_tag == "mig_devices":
        el.tag = "mig_device"
    return el


def to_element(text: str, problems: list[Problem] | None = None) -> ET.Element:
    """Build an ``nvidia_smi_log`` element tree from ``nvidia-smi -q`` text.

    GPU sections become ``<gpu id="...">`` elements; other keys become
    elements named by their ``-q -x`` tag (or a lower-case slug of the key
    when the two formats name it the same way).  Unrecognised lines are
    reported in ``problems`` when given.
    """
    problems = problems if problems is not None else []
    root_node = _tree(text, problems)
    root = ET.Element("nvidia_smi_log")
    for node in root_node.children:
        gpu = _GPU_HEADER.match(node.key) if node.value is None else None
        if gpu is not None:
            el = ET.SubElement(root, "gpu", {"id": gpu.group("bus")})
            for child in node.children:
                el.append(_element(child, "gpu"))
        else:
            root.append(_element(node, "nvidia_smi_log"))
    return root


def parse(text: str) -> Parsed:
    """Parse ``nvidia-smi -q`` text into devices, MIG slices and processes.

    Same output shapes and units as
    :func:`exporter.parsers.nvidia_smi_xml.parse` (one :class:`Device` per
    ``GPU <bus id>`` section, one MIG :class:`Slice` per ``MIG Devices``
    entry, one :class:`Process` per ``Processes`` record).  Input without
    the ``NVSMI LOG`` banner and without any GPU section gives a ``parse``
    Problem; input over 16 MiB a ``too_large`` Problem; never an exception.
    """
    if len(text) > nvidia_smi_xml.MAX_INPUT_CHARS:
        return Parsed(problems=[Problem(kind="too_large", detail=f"{len(text)} chars")])
    problems: list[Problem] = []
    root = to_element(text, problems)
    if BANNER not in text and root.find("gpu") is None:
        return Parsed(problems=[Problem(kind="parse", detail="no NVSMI LOG banner and no GPU section")])
    out = nvidia_smi_xml.parse_tree(root)
    out.problems[:0] = problems
    return out
