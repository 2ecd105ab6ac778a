"""Decoders for the node annotations written by HAMi and its device plugins:
the **node register annotation** (device inventory), the **handshake**
annotation, the node allocation lock and the device-cordon list.

Format sources (read from Project-HAMi/HAMi up to v2.10.0, the vendor device
plugins and volcano-vgpu-device-plugin; written down in ``docs/formats.md``
§node, research notes ``hami-formats.md`` §2):

* Register, colon form (HAMi ``pkg/device/devices.go`` ``DecodeNodeDevices``):
  devices separated **and terminated** by ``:``, fields separated by ``,``.

  - 9 fields (HAMi v2.5-v2.7, still DCU / Iluvatar):
    ``id,count,devmem,devcore,type,numa,health,index,mode``
  - 7 fields (HAMi <= v2.4): ``id,count,devmem,devcore,type,numa,health``
  - 6 fields (``volcano.sh/node-vgpu-register``): ``id,count,devmem,type,health,mode``

  ``devmem`` is MiB (after ``deviceMemoryScaling``); ``devcore`` is core units
  (100 = one whole device for NVIDIA); ``health`` is a Go boolean.
* Register, JSON form (NVIDIA since v2.8, Ascend, AMD, Kunlun XPU, Vastai,
  Biren): a JSON array of ``{id, index, count, devmem, devcore, type, numa,
  mode, migProfiles, health, devicevendor, custominfo}``.  Every field is Go
  ``omitempty``: a missing number means 0 and **a missing ``health`` means
  unhealthy**.  Keys match case-insensitively, as Go's ``encoding/json`` does.
* Metax ``metax-tech.com/node-gpu-devices`` (JSON array of ``uuid, model,
  totalDevCount, totalCompute, totalVRam, numa, healthy, ...``) and Enflame
  ``enflame.com/gcu-drs-capacity`` (``{"devices": [{index, minor, capacity}],
  "profiles": {...}}``).
* Handshake (HAMi ``pkg/device/devices.go`` ``CheckHealth``):
  ``Requesting_<time>``, ``Reported <time>`` / ``Reported_<time>``,
  ``Deleted_<time>`` (<= v2.4).  Time forms: Go ``time.Time.String()``
  (``2024-11-10 11:05:48.756620661 +0000 UTC m=+2976.676870749``), Go
  ``time.DateTime`` (``2025-07-12 01:12:20``, writer's local zone) and the
  dotted ``2006.01.02 15:04:05`` (Ascend / MLU plugins, local zone).
* ``hami.io/mutex.lock``: ``<RFC3339>,<namespace>,<pod>`` or a bare RFC3339 time.
* ``hami.io/device-cordon``: comma-separated device UUIDs (HAMi v2.10).

Output units: memory in **bytes** (MiB x 1024**2), cores as a **ratio of one
device** (see :class:`NodeDevice`), counts as ints.

Public API::

    classify_node_annotation(key) -> NodeAnnotationKey | None
    decode_node_register(value, key=None) -> NodeRegister
    decode_handshake(value) -> Handshake
    decode_node_lock(value) -> NodeLock
    decode_device_cordon(value) -> DeviceCordon

No function raises; problems are :class:`~scheduler_events.decoders.common.DecodeError`
records in the result's ``errors``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from collections.abc import Mapping
from typing import Any

from .common import DecodeError, error, never_raises, parse_go_bool, parse_go_int, parse_rfc3339

MIB = 1024 * 1024

#: Vendors whose registered ``devcore`` is on the 0-100-per-device scale
#: everywhere except these, where it is the device's own unit count
#: (Ascend AICore count; AMD compute units before HAMi v2.10).  For those the
#: registered device is one whole device whatever the number.
DEVICE_RELATIVE_CORE_VENDORS = frozenset({"huawei", "amd"})

#: ``type`` prefixes stripped to obtain :attr:`NodeDevice.model`.
_TYPE_PREFIXES = ("NVIDIA-", "DCU-", "MLU-")

#: Iluvatar chip words used in annotation keys (``BI-V100``, ``MR-V50``...).
_ILUVATAR_RE = re.compile(r"(?:BI|MR)-V[0-9]+")

#: Fixed register keys -> (vendor, common word, encoding).
_REGISTER_KEYS: Mapping[str, tuple[str, str | None, str]] = MappingProxyType(
    {
        "hami.io/node-nvidia-register": ("nvidia", "nvidia", "hami"),
        "hami.io/node-dcu-register": ("hygon", "dcu", "hami"),
        "hami.io/node-mlu-register": ("cambricon", "mlu", "hami"),
        "hami.io/node-register-xpu": ("kunlunxin", "xpu", "hami"),
        "hami.io/node-va-register": ("vastai", "va", "hami"),
        "hami.io/node-biren-register": ("biren", "biren", "hami"),
        "hami.io/node-amd-register": ("amd", "amd", "hami"),
        "metax-tech.com/node-gpu-devices": ("metax", "sgpu", "metax"),
        "enflame.com/gcu-drs-capacity": ("enflame", "gcu", "enflame"),
        "volcano.sh/node-vgpu-register": ("nvidia", "vgpu", "volcano"),
    }
)

#: Handshake suffix word -> vendor (``hami.io/node-handshake-<word>``).
_HANDSHAKE_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "dcu": "hygon",
        "mlu": "cambricon",
        "xpu": "kunlunxin",
        "va": "vastai",
        "biren": "biren",
        "amd": "amd",
    }
)


def _vendor_for_word(word: str) -> str:
    """Vendor of a per-model common word found inside a key."""
    if word.startswith("Ascend"):
        return "huawei"
    if _ILUVATAR_RE.fullmatch(word):
        return "iluvatar"
    return _HANDSHAKE_WORDS.get(word, "unknown")


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class NodeAnnotationKey:
    """What a HAMi-family node annotation key is.

    ``kind``: ``register`` | ``handshake`` | ``lock`` | ``cordon``.
    ``vendor``: lower-case vendor key (``nvidia``, ``hygon``, ``huawei``,
    ``iluvatar``, ``cambricon``, ``kunlunxin``, ``vastai``, ``biren``, ``amd``,
    ``metax``, ``enflame``), ``unknown`` for a HAMi-shaped key of an unknown
    vendor, ``""`` for vendor-neutral keys (lock, cordon).
    ``common_word``: the device word in the key (``Ascend910B3``, ``BI-V100``,
    ``dcu``, ``xpu``...), ``None`` when the key has none.
    ``encoding``: for registers, which decoder applies: ``hami`` (colon or
    JSON, sniffed from the value), ``volcano`` (6-field colon), ``metax``,
    ``enflame``; ``""`` for other kinds.
    """

    key: str
    kind: str
    vendor: str
    common_word: str | None
    encoding: str = ""


_REGISTER_PREFIX_RE = re.compile(r"hami\.io/node-register-(?P<word>.+)")
_REGISTER_SUFFIX_RE = re.compile(r"hami\.io/node-(?P<word>.+)-register")
_HANDSHAKE_RE = re.compile(r"hami\.io/node-handshake(?:-(?P<word>.+))?")
_LOCK_KEYS = frozenset({"hami.io/mutex.lock", "volcano.sh/mutex.lock", "cambricon.com/dsmlu.lock"})


def classify_node_annotation(key: Any) -> NodeAnnotationKey | None:
    """Classify a node annotation key (HAMi node register annotation,
    handshake, lock or cordon, see ``docs/formats.md`` §node / hami-formats.md
    §2.2); ``None`` for keys that are none of these (or not a string).

    Register keys: ``hami.io/node-nvidia-register``, ``hami.io/node-dcu-register``,
    ``hami.io/node-<Iluvatar chip>-register``, ``hami.io/node-register-<Ascend
    model>``, ``hami.io/node-register-xpu``, ``hami.io/node-va-register``,
    ``hami.io/node-biren-register``, ``hami.io/node-amd-register``,
    ``hami.io/node-mlu-register`` (old), ``metax-tech.com/node-gpu-devices``,
    ``enflame.com/gcu-drs-capacity``, ``volcano.sh/node-vgpu-register``.
    """
    if not isinstance(key, str):
        return None
    fixed = _REGISTER_KEYS.get(key)
    if fixed is not None:
        vendor, word, encoding = fixed
        return NodeAnnotationKey(key, "register", vendor, word, encoding)
    m = _REGISTER_PREFIX_RE.fullmatch(key) or _REGISTER_SUFFIX_RE.fullmatch(key)
    if m:
        word = m.group("word")
        return NodeAnnotationKey(key, "register", _vendor_for_word(word), word, "hami")
    m = _HANDSHAKE_RE.fullmatch(key)
    if m:
        word = m.group("word")
        vendor = "nvidia" if word is None else _vendor_for_word(word)
        return NodeAnnotationKey(key, "handshake", vendor, word or "nvidia")
    if key in _LOCK_KEYS:
        return NodeAnnotationKey(key, "lock", "", None)
    if key == "hami.io/device-cordon":
        return NodeAnnotationKey(key, "cordon", "", None)
    return None


# --------------------------------------------------------------------------- register


@dataclass(frozen=True, slots=True)
class MigProfile:
    """One MIG profile a device offers (JSON ``migProfiles`` entry).

    ``memory_bytes`` from ``memoryMB`` (MiB); ``core_units`` raw ``core``;
    ``placements`` as ``(start, size)`` pairs.
    """

    name: str
    memory_bytes: int | None
    core_units: int | None
    slice_count: int | None
    placements: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class NodeDevice:
    """One device from a node register annotation.

    ``id``: device ID as registered (NVML UUID ``GPU-…`` for NVIDIA, die ID for
    Ascend; for Enflame, which registers no ID, the index as a string).
    ``index``: device index; ``None`` when the form does not carry it (7- and
    6-field colon forms: HAMi itself assumes 0 there).
    ``count``: maximum concurrent tasks on the device (deviceSplitCount).
    ``memory_bytes``: registered memory in bytes (HAMi registers MiB, after
    ``deviceMemoryScaling``, so it can exceed the physical memory).
    ``core_units``: registered ``devcore`` as written (100 for NVIDIA, the
    AICore count for Ascend, 0 = cores not registered).
    ``cores``: registered cores as a ratio of one device: ``core_units / 100``
    (1.0 = one whole device; > 1.0 with core scaling); for the vendors in
    :data:`DEVICE_RELATIVE_CORE_VENDORS` 1.0 when ``core_units > 0``;
    0.0 when ``core_units`` is 0; ``None`` when not reported.
    ``type``: registered type string (``NVIDIA-Tesla T4``); ``model``: the type
    without the vendor prefix (``Tesla T4``).
    ``numa``: NUMA node; ``mode``: ``hami-core`` | ``mig`` | ``mps`` | vendor
    mode, ``None`` when not reported.
    ``healthy``: device health (JSON: a missing ``health`` is ``False``);
    ``None`` only where the format has no health at all (Enflame).
    ``mig_profiles``: MIG profiles offered (JSON form only).
    ``custom_info``: vendor extras (Ascend ``custominfo``, ``devicevendor``,
    Metax ``bdf``/``qosPolicy``/``available*``, Enflame ``minor``/``profiles``).
    """

    id: str
    index: int | None = None
    count: int | None = None
    memory_bytes: int | None = None
    core_units: int | None = None
    cores: float | None = None
    type: str | None = None
    model: str | None = None
    numa: int | None = None
    mode: str | None = None
    healthy: bool | None = False
    mig_profiles: tuple[MigProfile, ...] = ()
    custom_info: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NodeRegister:
    """A decoded node register annotation.

    ``vendor``: from the key (``unknown`` when no key or an unknown key).
    ``encoding``: ``json``, ``colon-9``, ``colon-7``, ``colon-6``,
    ``colon-mixed``, ``metax-json``, ``enflame-json``, or ``""`` when nothing
    was decoded.  ``devices``: in annotation order.  ``errors``: skipped
    devices and fields (a device with a bad field is kept with that field
    ``None``; a device without an ID or with the wrong field count is skipped).
    """

    key: str | None
    vendor: str
    encoding: str
    devices: tuple[NodeDevice, ...] = ()
    errors: tuple[DecodeError, ...] = ()


def _model(type_: str | None) -> str | None:
    if type_ is None:
        return None
    for prefix in _TYPE_PREFIXES:
        if type_.startswith(prefix):
            return type_[len(prefix) :]
    return type_


def _cores(units: int | None, vendor: str) -> float | None:
    if units is None:
        return None
    if units <= 0:
        return 0.0
    if vendor in DEVICE_RELATIVE_CORE_VENDORS:
        return 1.0
    return units / 100


def _mib(value: int | None) -> int | None:
    return None if value is None else value * MIB


def _register_fallback(raw: Any, err: DecodeError) -> NodeRegister:
    return NodeRegister(None, "unknown", "", (), (err,))


@never_raises(_register_fallback)
def decode_node_register(value: Any, key: str | None = None) -> NodeRegister:
    """Decode a HAMi node register annotation value.

    Input: the annotation value (``str``) and, optionally, its key (selects the
    vendor and, for Metax/Enflame/Volcano keys, the decoder).  Without a key,
    or for HAMi keys, a value starting with ``[`` is the JSON form, anything
    else the colon form (6, 7 or 9 fields per device; the field count decides
    per device).  ``":"`` means "no devices" (no error).  A colon-form value
    without any ``:`` is rejected as HAMi rejects it (``no_terminator``).

    Output: :class:`NodeRegister` with :class:`NodeDevice` entries, memory in
    bytes and cores as a ratio of one device.  Documented in
    ``docs/formats.md`` §node (hami-formats.md §2.3, §2.4).
    """
    info = classify_node_annotation(key) if key is not None else None
    vendor = info.vendor if info is not None and info.kind == "register" else "unknown"
    if not isinstance(value, str):
        return NodeRegister(key, vendor, "", (), (error("bad_type", value),))
    text = value.strip()
    if not text:
        return NodeRegister(key, vendor, "", (), (error("empty", value),))
    hint = info.encoding if info is not None and info.kind == "register" else ""
    if not hint:  # no key or an unrelated key: sniff the value
        if text.startswith("{"):
            hint = "enflame"
        elif text.startswith("[") and _looks_metax(text):
            hint = "metax"
        else:
            hint = "hami"
        if hint != "hami" and vendor == "unknown":
            vendor = hint
    if hint == "enflame":
        return _decode_enflame(text, key, vendor)
    if hint == "metax":
        return _decode_metax(text, key, vendor)
    if text.startswith("["):
        return _decode_json(text, key, vendor)
    if text.startswith("{"):
        return NodeRegister(key, vendor, "", (), (error("bad_shape", text),))
    return _decode_colon(text, key, vendor)


def _looks_metax(text: str) -> bool:
    return '"totalVRam"' in text or ('"uuid"' in text and '"id"' not in text)


def _ci(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Case-insensitive view of a JSON object (exact keys win), as Go's
    ``encoding/json`` matches struct fields."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        lk = str(k).lower()
        if lk not in out or k == lk:
            out[lk] = v
    return out


def _json_int(obj: Mapping[str, Any], name: str, errors: list[DecodeError], default: int | None = 0) -> int | None:
    """Integer JSON field; absent -> ``default`` (Go ``omitempty`` zero)."""
    if name not in obj:
        return default
    raw = obj[name]
    if isinstance(raw, bool) or not isinstance(raw, int):
        errors.append(error("bad_int", f"{name}={raw!r}"))
        return None
    return raw


def _json_str(obj: Mapping[str, Any], name: str, errors: list[DecodeError]) -> str | None:
    if name not in obj:
        return None
    raw = obj[name]
    if not isinstance(raw, str):
        errors.append(error("bad_shape", f"{name}={raw!r}"))
        return None
    return raw


def _json_health(obj: Mapping[str, Any], name: str, errors: list[DecodeError]) -> bool:
    if name not in obj:
        return False  # omitempty: false is omitted, so missing = unhealthy
    raw = obj[name]
    if not isinstance(raw, bool):
        errors.append(error("bad_bool", f"{name}={raw!r}"))
        return False
    return raw


def _load_json_list(text: str, key: str | None, vendor: str) -> tuple[list[Any] | None, NodeRegister | None]:
    try:
        data = json.loads(text)
    except ValueError:
        return None, NodeRegister(key, vendor, "", (), (error("bad_json", text),))
    if not isinstance(data, list):
        return None, NodeRegister(key, vendor, "", (), (error("bad_shape", text),))
    return data, None


def _device_objects(data: list[Any] | None, id_key: str, errors: list[DecodeError]):
    """Yield ``(case-insensitive object, device id)`` for each usable item of
    a JSON device list; items that are not objects or lack the id are
    recorded as ``bad_shape`` and skipped."""
    for item in data or ():
        obj = _ci(item) if isinstance(item, dict) else None
        dev_id = obj.get(id_key) if obj is not None else None
        if not isinstance(dev_id, str) or not dev_id:
            errors.append(error("bad_shape", json.dumps(item)))
            continue
        yield obj, dev_id


def _decode_json(text: str, key: str | None, vendor: str) -> NodeRegister:
    data, failed = _load_json_list(text, key, vendor)
    if failed is not None:
        return failed
    devices: list[NodeDevice] = []
    errors: list[DecodeError] = []
    for obj, dev_id in _device_objects(data, "id", errors):
        type_ = _json_str(obj, "type", errors)
        units = _json_int(obj, "devcore", errors)
        custom: dict[str, Any] = {}
        for extra in ("custominfo", "devicevendor"):
            if extra in obj:
                custom[extra] = obj[extra]
        devices.append(
            NodeDevice(
                id=dev_id,
                index=_json_int(obj, "index", errors),
                count=_json_int(obj, "count", errors),
                memory_bytes=_mib(_json_int(obj, "devmem", errors)),
                core_units=units,
                cores=_cores(units, vendor),
                type=type_,
                model=_model(type_),
                numa=_json_int(obj, "numa", errors),
                mode=_json_str(obj, "mode", errors),
                healthy=_json_health(obj, "health", errors),
                mig_profiles=_mig_profiles(obj.get("migprofiles"), errors),
                custom_info=custom or None,
            )
        )
    return NodeRegister(key, vendor, "json", tuple(devices), tuple(errors))


def _mig_profiles(raw: Any, errors: list[DecodeError]) -> tuple[MigProfile, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(error("bad_shape", f"migProfiles={raw!r}"))
        return ()
    out: list[MigProfile] = []
    for item in raw:
        if not isinstance(item, dict):
            errors.append(error("bad_shape", f"migProfile={item!r}"))
            continue
        obj = _ci(item)
        placements: list[tuple[int, int]] = []
        for p in obj.get("placements") or ():
            pobj = _ci(p) if isinstance(p, dict) else {}
            start, size = pobj.get("start", 0), pobj.get("size", 0)
            if isinstance(start, int) and isinstance(size, int) and not isinstance(start, bool) and not isinstance(size, bool):
                placements.append((start, size))
            else:
                errors.append(error("bad_shape", f"placement={p!r}"))
        name = obj.get("name")
        out.append(
            MigProfile(
                name=name if isinstance(name, str) else "",
                memory_bytes=_mib(_json_int(obj, "memorymb", errors)),
                core_units=_json_int(obj, "core", errors),
                slice_count=_json_int(obj, "slicecount", errors),
                placements=tuple(placements),
            )
        )
    return tuple(out)


_METAX_EXTRAS = ("bdf", "qospolicy", "linkzone", "availabledevcount", "availablecompute", "availablevram")


def _decode_metax(text: str, key: str | None, vendor: str) -> NodeRegister:
    data, failed = _load_json_list(text, key, vendor)
    if failed is not None:
        return failed
    devices: list[NodeDevice] = []
    errors: list[DecodeError] = []
    for obj, dev_id in _device_objects(data, "uuid", errors):
        model = _json_str(obj, "model", errors)
        units = _json_int(obj, "totalcompute", errors)
        custom = {k: obj[k] for k in _METAX_EXTRAS if k in obj}
        devices.append(
            NodeDevice(
                id=dev_id,
                index=None,
                count=_json_int(obj, "totaldevcount", errors),
                memory_bytes=_mib(_json_int(obj, "totalvram", errors)),
                core_units=units,
                cores=_cores(units, "metax"),
                type=model,
                model=model,
                numa=_json_int(obj, "numa", errors),
                mode=None,
                healthy=_json_health(obj, "healthy", errors),
                custom_info=custom or None,
            )
        )
    return NodeRegister(key, vendor, "metax-json", tuple(devices), tuple(errors))


def _decode_enflame(text: str, key: str | None, vendor: str) -> NodeRegister:
    try:
        data = json.loads(text)
    except ValueError:
        return NodeRegister(key, vendor, "", (), (error("bad_json", text),))
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        return NodeRegister(key, vendor, "", (), (error("bad_shape", text),))
    profiles = data.get("profiles")
    devices: list[NodeDevice] = []
    errors: list[DecodeError] = []
    for item in data["devices"]:
        if not isinstance(item, dict):
            errors.append(error("bad_shape", json.dumps(item)))
            continue
        raw_index = item.get("index")
        index = parse_go_int(raw_index if not isinstance(raw_index, str) else raw_index.strip())
        if index is None:
            errors.append(error("bad_int", f"index={raw_index!r}"))
            continue
        capacity = item.get("capacity")
        if isinstance(capacity, str):
            capacity = parse_go_int(capacity)
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)):
            capacity = None
        if capacity is None:
            errors.append(error("bad_int", f"capacity={item.get('capacity')!r}"))
        custom: dict[str, Any] = {}
        if "minor" in item:
            custom["minor"] = item["minor"]
        if isinstance(profiles, dict):
            custom["profiles"] = dict(profiles)
        devices.append(
            NodeDevice(id=str(index), index=index, count=capacity, healthy=None, custom_info=custom or None)
        )
    return NodeRegister(key, vendor, "enflame-json", tuple(devices), tuple(errors))


def _colon_int(text: str, name: str, errors: list[DecodeError], bits: int = 64) -> int | None:
    value = parse_go_int(text, bits)
    if value is None:
        errors.append(error("bad_int", f"{name}={text}"))
    return value


def _decode_colon(text: str, key: str | None, vendor: str) -> NodeRegister:
    if ":" not in text:
        return NodeRegister(key, vendor, "", (), (error("no_terminator", text),))
    devices: list[NodeDevice] = []
    errors: list[DecodeError] = []
    forms: set[int] = set()
    for seg in text.split(":"):
        if not seg:
            continue  # the terminator after the last device, or ":" alone
        fields = seg.split(",")
        n = len(fields)
        if n not in (6, 7, 9):
            errors.append(error("field_count", seg))
            continue
        if not fields[0]:
            errors.append(error("bad_shape", seg))
            continue
        ferr: list[DecodeError] = []
        if n == 6:  # volcano: id,count,devmem,type,health,mode
            dev_id, count, devmem, type_, health, mode = fields
            devcore = numa = index = None
        else:
            dev_id, count, devmem, devcore, type_, numa, health = fields[:7]
            index, mode = (fields[7], fields[8]) if n == 9 else (None, "hami-core")
        healthy = parse_go_bool(health)
        if healthy is None:
            ferr.append(error("bad_bool", f"health={health}"))
        units = _colon_int(devcore, "devcore", ferr, 32) if devcore is not None else None
        devices.append(
            NodeDevice(
                id=dev_id,
                index=_colon_int(index, "index", ferr) if index is not None else None,
                count=_colon_int(count, "count", ferr, 32),
                memory_bytes=_mib(_colon_int(devmem, "devmem", ferr, 32)),
                core_units=units,
                cores=_cores(units, vendor),
                type=type_,
                model=_model(type_),
                numa=_colon_int(numa, "numa", ferr) if numa is not None else None,
                mode=mode,
                healthy=bool(healthy),
            )
        )
        errors.extend(ferr)
        forms.add(n)
    if not forms:
        encoding = ""
    elif len(forms) == 1:
        encoding = f"colon-{forms.pop()}"
    else:
        encoding = "colon-mixed"
    return NodeRegister(key, vendor, encoding, tuple(devices), tuple(errors))


# --------------------------------------------------------------------------- handshake

#: Handshake states (the lower-cased prefix word).
HANDSHAKE_STATES = ("requesting", "reported", "deleted")

_HANDSHAKE_VALUE_RE = re.compile(r"(?P<state>Requesting|Reported|Deleted)(?:[_ ](?P<time>.*))?", re.S)
_GO_STRING_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2}) (?P<clock>[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?"
    r" (?P<sign>[+-])(?P<oh>[0-9]{2})(?P<om>[0-9]{2})(?: (?P<abbr>[A-Za-z0-9+-]+))?"
    r"(?: m=(?P<mono>[+-][0-9]+(?:\.[0-9]+)?))?"
)
_NAIVE_FORMS = (
    ("datetime", "%Y-%m-%d %H:%M:%S"),
    ("dotted", "%Y.%m.%d %H:%M:%S"),
)


@dataclass(frozen=True, slots=True)
class Handshake:
    """A decoded HAMi handshake annotation value.

    ``state``: ``requesting`` (scheduler asked, plugin has not answered),
    ``reported`` (device plugin answered), ``deleted`` (HAMi <= v2.4), or
    ``None`` when unrecognised.
    ``time``: the timestamp; **aware** for the Go ``time.String()`` form,
    **naive** (the writer's local zone, unknown to us) for the
    ``2006-01-02 15:04:05`` and ``2006.01.02 15:04:05`` forms.  Nanoseconds
    are cut to microseconds.  The Ascend plugin adds ``--report_time_offset``
    seconds (default 1) to its time; that is not undone.
    ``time_form``: ``go-string``, ``datetime``, ``dotted``, ``rfc3339`` or ``None``.
    ``monotonic_seconds``: the Go monotonic reading (``m=+2976.676870749``),
    seconds since the writer process started; ``None`` when absent.
    """

    state: str | None
    time: datetime | None = None
    time_form: str | None = None
    monotonic_seconds: float | None = None
    errors: tuple[DecodeError, ...] = ()


def _parse_handshake_time(text: str) -> tuple[datetime | None, str | None, float | None]:
    m = _GO_STRING_RE.fullmatch(text)
    if m:
        offset = timedelta(hours=int(m["oh"]), minutes=int(m["om"]))
        if m["sign"] == "-":
            offset = -offset
        frac = (m["frac"] or "")[:6].ljust(6, "0")
        try:
            naive = datetime.strptime(f"{m['date']} {m['clock']}", "%Y-%m-%d %H:%M:%S")
            when = naive.replace(microsecond=int(frac), tzinfo=timezone(offset))
        except ValueError:
            return None, None, None
        mono = float(m["mono"]) if m["mono"] else None
        return when, "go-string", mono
    for form, pattern in _NAIVE_FORMS:
        try:
            return datetime.strptime(text, pattern), form, None
        except ValueError:
            continue
    parsed = parse_rfc3339(text)
    if parsed is not None:
        return parsed, "rfc3339", None
    return None, None, None


def _handshake_fallback(raw: Any, err: DecodeError) -> Handshake:
    return Handshake(None, errors=(err,))


@never_raises(_handshake_fallback)
def decode_handshake(value: Any) -> Handshake:
    """Decode a HAMi handshake annotation value (``hami.io/node-handshake``,
    ``hami.io/node-handshake-<word>``; see ``docs/formats.md`` §node,
    hami-formats.md §2.1).

    Input: ``Requesting_<time>``, ``Reported <time>`` / ``Reported_<time>``
    or ``Deleted_<time>``; ``_`` and a space are both accepted after the word.
    Output: :class:`Handshake` (state, timestamp, its form, Go monotonic
    seconds).  A known state with a bad or missing time keeps the state and
    records ``bad_time``; anything else gives ``state=None`` and ``no_match``.
    """
    if not isinstance(value, str):
        return Handshake(None, errors=(error("bad_type", value),))
    text = value.strip()
    if not text:
        return Handshake(None, errors=(error("empty", value),))
    m = _HANDSHAKE_VALUE_RE.fullmatch(text)
    if not m:
        return Handshake(None, errors=(error("no_match", value),))
    state = m["state"].lower()
    raw_time = (m["time"] or "").strip()
    when, form, mono = _parse_handshake_time(raw_time) if raw_time else (None, None, None)
    if when is None:
        return Handshake(state, errors=(error("bad_time", value),))
    return Handshake(state, when, form, mono)


# --------------------------------------------------------------------------- lock, cordon


@dataclass(frozen=True, slots=True)
class NodeLock:
    """A decoded node allocation lock (``hami.io/mutex.lock``).

    ``held``: the value is non-empty (HAMi clears it after Allocate).
    ``time``: when it was taken (aware, from RFC 3339); ``namespace``/``pod``:
    the pod holding it, ``None`` for the bare-time form.
    """

    held: bool
    time: datetime | None = None
    namespace: str | None = None
    pod: str | None = None
    errors: tuple[DecodeError, ...] = ()


def _lock_fallback(raw: Any, err: DecodeError) -> NodeLock:
    return NodeLock(False, errors=(err,))


@never_raises(_lock_fallback)
def decode_node_lock(value: Any) -> NodeLock:
    """Decode ``hami.io/mutex.lock`` (also ``volcano.sh/mutex.lock``):
    ``<RFC3339 time>,<namespace>,<pod>`` or a bare RFC3339 time
    (HAMi ``pkg/util/nodelock/nodelock.go``; ``docs/formats.md`` §node).
    An empty value means released (``held=False``, no error)."""
    if value is None:
        return NodeLock(False)
    if not isinstance(value, str):
        return NodeLock(False, errors=(error("bad_type", value),))
    text = value.strip()
    if not text:
        return NodeLock(False)
    parts = text.split(",")
    when = parse_rfc3339(parts[0].strip())
    errors: list[DecodeError] = []
    if when is None:
        errors.append(error("bad_time", parts[0]))
    if len(parts) == 1:
        return NodeLock(True, when, None, None, tuple(errors))
    if len(parts) != 3:
        errors.append(error("field_count", text))
        return NodeLock(True, when, None, None, tuple(errors))
    return NodeLock(True, when, parts[1] or None, parts[2] or None, tuple(errors))


@dataclass(frozen=True, slots=True)
class DeviceCordon:
    """Device IDs excluded from scheduling (``hami.io/device-cordon``)."""

    device_ids: tuple[str, ...] = ()
    errors: tuple[DecodeError, ...] = field(default=())


def _cordon_fallback(raw: Any, err: DecodeError) -> DeviceCordon:
    return DeviceCordon((), (err,))


@never_raises(_cordon_fallback)
def decode_device_cordon(value: Any) -> DeviceCordon:
    """Decode ``hami.io/device-cordon`` (HAMi v2.10, ``docs/formats.md``
    §node): comma-separated device UUIDs; blanks are ignored.  Matching
    devices fail HAMi's filter with ``CardCordoned``."""
    if value is None:
        return DeviceCordon()
    if not isinstance(value, str):
        return DeviceCordon((), (error("bad_type", value),))
    return DeviceCordon(tuple(p.strip() for p in value.split(",") if p.strip()))
