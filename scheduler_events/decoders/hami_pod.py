"""Decoders for the pod annotations HAMi writes while placing a pod: the
per-vendor container-device lists (``hami.io/vgpu-devices-allocated``,
``hami.io/vgpu-devices-to-allocate`` and every vendor's equivalent), the bind
phase (``hami.io/bind-phase``), and the Filter / Bind timestamps and node
(``hami.io/vgpu-time``, ``hami.io/bind-time``, ``hami.io/vgpu-node``).

Format sources (Project-HAMi/HAMi ``pkg/device/devices.go``
``EncodePodDevices``/``DecodePodDevices``, ``pkg/scheduler/scheduler.go``,
``pkg/device-plugin/nvidiadevice/nvinternal/plugin/util.go``; written down in
``docs/formats.md`` §pod, research notes ``hami-formats.md`` §3.1-3.3):

* Container-device list: one device is ``UUID,Type,Usedmem,Usedcores``
  (MiB, core units: 0-100 of one device for NVIDIA) **terminated by ``:``**;
  each container's devices are terminated by ``;``.  Order: init containers,
  then regular containers.  An empty container is written either as an empty
  entry (``;``) or as ``,,0,0:;`` (issue #991); a leading empty entry
  (``;GPU-…;``) is legal (issue #1932).  Up to HAMi v2.9 a MIG allocation
  carries ``[<template>-<slot>]`` after the UUID.
* ``hami.io/bind-phase``: ``allocating`` (Bind) -> ``success`` | ``failed``
  (device plugin Allocate).
* ``hami.io/vgpu-time``, ``hami.io/bind-time``: Unix seconds as a string.

Public API::

    classify_allocation_key(key) -> AllocationKey | None
    decode_container_devices(value, *, core_scales=None, default_core_scale=100) -> ContainerDeviceList
    decode_bind_phase(value) -> BindPhase
    decode_unix_seconds(value) -> UnixSeconds
    decode_pod_annotations(annotations, *, core_scales=None) -> HamiPodAnnotations

No function raises; problems are :class:`~scheduler_events.decoders.common.DecodeError`
records in the result's ``errors``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from collections.abc import Mapping
from typing import Any

from .common import DecodeError, error, never_raises, parse_go_int

MIB = 1024 * 1024

#: ``hami.io/bind-phase`` values.
BIND_PHASES = ("allocating", "success", "failed")

#: Device-list words in ``hami.io/<word>-devices-{to-allocate,allocated}`` -> vendor.
_WORD_VENDORS: Mapping[str, str] = MappingProxyType(
    {
        "vgpu": "nvidia",
        "dcu": "hygon",
        "cambricon-mlu": "cambricon",
        "mthreads-vgpu": "mthreads",
        "metax-gpu": "metax",
        "metax-sgpu": "metax",
        "xpu": "kunlunxin",
        "enflame-gcu": "enflame",
        "enflame-vgpu": "enflame",
        "amd": "amd",
        "aws-neuron": "aws",
        "Vastai": "vastai",
        "Biren": "biren",
    }
)
_ILUVATAR_RE = re.compile(r"(?:BI|MR)-V[0-9]+")
_ALLOC_KEY_RE = re.compile(r"hami\.io/(?P<word>.+)-devices-(?P<kind>to-allocate|allocated)")

#: Keys outside the ``hami.io/<word>-devices-*`` pattern -> (kind, vendor, word, writer).
_FIXED_ALLOC_KEYS: Mapping[str, tuple[str, str, str, str]] = MappingProxyType(
    {
        "hami.io/kunlun-allocated": ("allocated", "kunlunxin", "kunlun", "hami"),
        "volcano.sh/devices-to-allocate": ("to-allocate", "nvidia", "vgpu", "volcano"),
        "volcano.sh/vgpu-ids-new": ("allocated", "nvidia", "vgpu", "volcano"),
    }
)

#: Keys holding the node chosen at Filter, in order of preference.
NODE_KEYS = (
    "hami.io/vgpu-node",
    "volcano.sh/vgpu-node",
    "mthreads.com/predicate-node",
    "amd.com/predicate-node",
    "aws.amazon.com/predicate-node",
)
#: Keys holding the Filter time (Unix seconds), in order of preference.
FILTER_TIME_KEYS = (
    "hami.io/vgpu-time",
    "volcano.sh/vgpu-time",
    "metax-tech.com/predicate-time",
    "mthreads.com/predicate-time",
    "iluvatar.ai/predicate-time",
    "predicate-time",
)
BIND_TIME_KEYS = ("hami.io/bind-time", "volcano.sh/bind-time")
BIND_PHASE_KEYS = ("hami.io/bind-phase", "volcano.sh/bind-phase")


@dataclass(frozen=True, slots=True)
class AllocationKey:
    """What a pod allocation annotation key is.

    ``kind``: ``allocated`` (kept for the pod's lifetime) or ``to-allocate``
    (consumed container by container by the device plugin's Allocate).
    ``vendor``: lower-case vendor key (``nvidia``, ``hygon``, ``huawei``,
    ``iluvatar``, ``cambricon``, ``mthreads``, ``metax``, ``kunlunxin``,
    ``enflame``, ``amd``, ``aws``, ``vastai``, ``biren``) or ``unknown``.
    ``common_word``: the device word in the key (``vgpu``, ``Ascend910B3``...).
    ``writer``: ``hami`` or ``volcano``.
    """

    key: str
    kind: str
    vendor: str
    common_word: str
    writer: str = "hami"


def classify_allocation_key(key: Any) -> AllocationKey | None:
    """Classify a pod allocation annotation key (``docs/formats.md`` §pod,
    hami-formats.md §3.3): ``hami.io/<word>-devices-to-allocate`` /
    ``-allocated`` for every vendor word, ``hami.io/kunlun-allocated``,
    ``volcano.sh/devices-to-allocate`` and ``volcano.sh/vgpu-ids-new``.
    ``None`` for any other key."""
    if not isinstance(key, str):
        return None
    fixed = _FIXED_ALLOC_KEYS.get(key)
    if fixed is not None:
        kind, vendor, word, writer = fixed
        return AllocationKey(key, kind, vendor, word, writer)
    m = _ALLOC_KEY_RE.fullmatch(key)
    if not m:
        return None
    word = m["word"]
    if word in _WORD_VENDORS:
        vendor = _WORD_VENDORS[word]
    elif word.startswith("Ascend"):
        vendor = "huawei"
    elif _ILUVATAR_RE.fullmatch(word):
        vendor = "iluvatar"
    else:
        vendor = "unknown"
    return AllocationKey(key, m["kind"], vendor, word)


# --------------------------------------------------------------------------- device lists


@dataclass(frozen=True, slots=True)
class AllocatedDevice:
    """One device allocated to one container.

    ``uuid``: device ID (for a pre-v2.10 MIG entry, without the ``[t-s]`` suffix).
    ``type``: vendor keyword as written (``NVIDIA``, ``DCU``, ``Ascend910B3``...).
    ``memory_bytes``: allocated memory in bytes (HAMi writes MiB).
    ``cores``: allocated core units as written (NVIDIA: percent of one device;
    0 = no core share reserved, HAMi-core then does not limit SMs).
    ``core_ratio``: ``cores`` as a ratio of one device (``cores / scale``).
    ``mig_template`` / ``mig_slot``: from a ``GPU-…[<template>-<slot>]`` UUID.
    """

    uuid: str
    type: str
    memory_bytes: int | None
    cores: int | None
    core_ratio: float | None
    mig_template: int | None = None
    mig_slot: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerDeviceList:
    """A decoded container-device list.

    ``containers[i]``: the devices of container ``i`` (init containers first,
    then regular containers); an empty tuple for a container without devices,
    whichever of the two empty encodings was used.
    """

    containers: tuple[tuple[AllocatedDevice, ...], ...] = ()
    errors: tuple[DecodeError, ...] = ()

    @property
    def device_count(self) -> int:
        """Number of (container, device) entries."""
        return sum(len(c) for c in self.containers)

    @property
    def is_empty(self) -> bool:
        """No container holds a device (a fully consumed ``to-allocate``)."""
        return self.device_count == 0


_MIG_RE = re.compile(r"(?P<base>.+)\[(?P<template>[0-9]+)-(?P<slot>[0-9]+)\]")


def _list_fallback(raw: Any, err: DecodeError) -> ContainerDeviceList:
    return ContainerDeviceList((), (err,))


@never_raises(_list_fallback)
def decode_container_devices(
    value: Any,
    *,
    core_scales: Mapping[str, int] | None = None,
    default_core_scale: int = 100,
) -> ContainerDeviceList:
    """Decode a HAMi container-device list, the value of
    ``hami.io/vgpu-devices-allocated``, ``hami.io/vgpu-devices-to-allocate``
    or any vendor's equivalent (``docs/formats.md`` §pod, hami-formats.md §3.2).

    Input: e.g. ``GPU-c15b…,NVIDIA,5000,0:;`` or
    ``;GPU-9b90…,NVIDIA,6144,30:;``.  Split on ``;`` into containers (the empty
    text after a final ``;`` is the terminator, not a container), then on
    ``:`` into devices, then on ``,`` into ``uuid,type,MiB,cores`` (extra
    fields are ignored, as HAMi does).  ``,,0,0`` is the second encoding of
    "no device".  ``core_scales`` maps a device ID to its registered core
    units (the node register's ``devcore``) for vendors whose scale is not
    100; otherwise ``default_core_scale`` is used.

    Output: :class:`ContainerDeviceList`, one tuple of
    :class:`AllocatedDevice` (uuid, type, memory bytes, core ratio) per
    container.  A device with fewer than 4 fields is skipped
    (``field_count``); a bad number keeps the device with that field ``None``.
    """
    if value is None:
        return ContainerDeviceList()
    if not isinstance(value, str):
        return ContainerDeviceList((), (error("bad_type", value),))
    text = value.strip()
    if not text:
        return ContainerDeviceList()
    segments = text.split(";")
    if text.endswith(";"):
        segments.pop()
    containers: list[tuple[AllocatedDevice, ...]] = []
    errors: list[DecodeError] = []
    for seg in segments:
        containers.append(_decode_container(seg, core_scales or {}, default_core_scale, errors))
    return ContainerDeviceList(tuple(containers), tuple(errors))


def _decode_container(
    seg: str, scales: Mapping[str, int], default_scale: int, errors: list[DecodeError]
) -> tuple[AllocatedDevice, ...]:
    devices: list[AllocatedDevice] = []
    for dseg in seg.split(":"):
        if "," not in dseg:
            if dseg.strip():
                errors.append(error("field_count", dseg))  # HAMi skips it silently
            continue
        fields = dseg.split(",")
        if len(fields) < 4:
            errors.append(error("field_count", dseg))
            continue
        uuid, type_, raw_mem, raw_cores = fields[:4]
        if not uuid and not type_:
            if raw_mem.strip() not in ("0", "") or raw_cores.strip() not in ("0", ""):
                errors.append(error("bad_shape", dseg))
            continue  # the ",,0,0" empty-container encoding
        mem = parse_go_int(raw_mem.strip(), 32)
        if mem is None:
            errors.append(error("bad_int", f"memory={raw_mem}"))
        cores = parse_go_int(raw_cores.strip(), 32)
        if cores is None:
            errors.append(error("bad_int", f"cores={raw_cores}"))
        template = slot = None
        m = _MIG_RE.fullmatch(uuid)
        if m:
            uuid, template, slot = m["base"], int(m["template"]), int(m["slot"])
        scale = scales.get(uuid) or default_scale
        devices.append(
            AllocatedDevice(
                uuid=uuid,
                type=type_,
                memory_bytes=None if mem is None else mem * MIB,
                cores=cores,
                core_ratio=None if cores is None or scale <= 0 else cores / scale,
                mig_template=template,
                mig_slot=slot,
            )
        )
    return tuple(devices)


# --------------------------------------------------------------------------- bind phase, times


@dataclass(frozen=True, slots=True)
class BindPhase:
    """``hami.io/bind-phase``: ``phase`` in :data:`BIND_PHASES`, or ``None``."""

    phase: str | None
    errors: tuple[DecodeError, ...] = ()


def _phase_fallback(raw: Any, err: DecodeError) -> BindPhase:
    return BindPhase(None, (err,))


@never_raises(_phase_fallback)
def decode_bind_phase(value: Any) -> BindPhase:
    """Decode the HAMi bind phase annotation ``hami.io/bind-phase`` (also
    ``volcano.sh/bind-phase``; ``docs/formats.md`` §pod): ``allocating`` |
    ``success`` | ``failed``.  Any other value gives ``phase=None`` and an
    ``unknown_value`` error; ``None`` (annotation absent) gives no error."""
    if value is None:
        return BindPhase(None)
    if not isinstance(value, str):
        return BindPhase(None, (error("bad_type", value),))
    text = value.strip()
    if text in BIND_PHASES:
        return BindPhase(text)
    return BindPhase(None, (error("empty" if not text else "unknown_value", value),))


@dataclass(frozen=True, slots=True)
class UnixSeconds:
    """A Unix-seconds annotation (``hami.io/vgpu-time``, ``hami.io/bind-time``)."""

    seconds: int | None
    errors: tuple[DecodeError, ...] = ()


def _seconds_fallback(raw: Any, err: DecodeError) -> UnixSeconds:
    return UnixSeconds(None, (err,))


_SECONDS_RE = re.compile(r"[0-9]{1,12}")


@never_raises(_seconds_fallback)
def decode_unix_seconds(value: Any) -> UnixSeconds:
    """Decode a HAMi Unix-seconds annotation (``hami.io/vgpu-time``,
    ``hami.io/bind-time``, vendor ``predicate-time`` keys; ``docs/formats.md``
    §pod), e.g. ``"1760929506"``, into seconds since the epoch (UTC).
    ``None`` (annotation absent) gives no error; anything but decimal digits
    gives ``bad_int``."""
    if value is None:
        return UnixSeconds(None)
    if not isinstance(value, str):
        return UnixSeconds(None, (error("bad_type", value),))
    text = value.strip()
    if not _SECONDS_RE.fullmatch(text):
        return UnixSeconds(None, (error("empty" if not text else "bad_int", value),))
    return UnixSeconds(int(text))


# --------------------------------------------------------------------------- whole pod


@dataclass(frozen=True, slots=True)
class VendorAllocation:
    """One allocation annotation of a pod, classified and decoded."""

    key: AllocationKey
    devices: ContainerDeviceList


@dataclass(frozen=True, slots=True)
class HamiPodAnnotations:
    """Everything HAMi (or Volcano's vGPU plugin) recorded on one pod.

    ``allocations``: every allocation key present (both kinds, all vendors),
    sorted by key.  ``node``: node chosen at Filter (``hami.io/vgpu-node``...).
    ``filter_time_s`` / ``bind_time_s``: Unix seconds.  ``bind_phase``: in
    :data:`BIND_PHASES` or ``None``.  ``errors``: every sub-decoder's errors.
    """

    allocations: tuple[VendorAllocation, ...] = ()
    node: str | None = None
    filter_time_s: int | None = None
    bind_time_s: int | None = None
    bind_phase: str | None = None
    errors: tuple[DecodeError, ...] = ()

    def allocated(self) -> tuple[VendorAllocation, ...]:
        """Only the ``allocated`` lists (the record that outlives Allocate)."""
        return tuple(a for a in self.allocations if a.key.kind == "allocated")

    def to_allocate(self) -> tuple[VendorAllocation, ...]:
        """Only the ``to-allocate`` lists (non-empty while Allocate is pending)."""
        return tuple(a for a in self.allocations if a.key.kind == "to-allocate")


def _pod_fallback(raw: Any, err: DecodeError) -> HamiPodAnnotations:
    return HamiPodAnnotations(errors=(err,))


def _first(annotations: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in annotations:
            return annotations[k]
    return None


@never_raises(_pod_fallback)
def decode_pod_annotations(
    annotations: Any, *, core_scales: Mapping[str, int] | None = None
) -> HamiPodAnnotations:
    """Decode all HAMi pod annotations of one pod (``metadata.annotations``,
    a ``{str: str}`` mapping; ``docs/formats.md`` §pod, hami-formats.md §3).

    Output: :class:`HamiPodAnnotations` with every allocation list decoded
    (:func:`decode_container_devices`), the Filter node and time, the bind
    time and the bind phase.  Unrelated annotations are ignored.
    """
    if annotations is None:
        return HamiPodAnnotations()
    if not isinstance(annotations, Mapping):
        return HamiPodAnnotations(errors=(error("bad_type", annotations),))
    errors: list[DecodeError] = []
    allocations: list[VendorAllocation] = []
    for key in sorted(k for k in annotations if isinstance(k, str)):
        info = classify_allocation_key(key)
        if info is None:
            continue
        devices = decode_container_devices(annotations[key], core_scales=core_scales)
        errors.extend(devices.errors)
        allocations.append(VendorAllocation(info, devices))
    node = _first(annotations, NODE_KEYS)
    if node is not None and (not isinstance(node, str) or not node.strip()):
        errors.append(error("bad_type" if not isinstance(node, str) else "empty", node))
        node = None
    filter_time = decode_unix_seconds(_first(annotations, FILTER_TIME_KEYS))
    bind_time = decode_unix_seconds(_first(annotations, BIND_TIME_KEYS))
    phase = decode_bind_phase(_first(annotations, BIND_PHASE_KEYS))
    errors.extend(filter_time.errors + bind_time.errors + phase.errors)
    return HamiPodAnnotations(
        allocations=tuple(allocations),
        node=node.strip() if isinstance(node, str) else None,
        filter_time_s=filter_time.seconds,
        bind_time_s=bind_time.seconds,
        bind_phase=phase.phase,
        errors=tuple(errors),
    )
