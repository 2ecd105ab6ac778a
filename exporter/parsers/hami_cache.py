"""Reader for one HAMi-core shared-region (``.cache``) file.

Format source: HAMi-core ``src/multiprocess/multiprocess_memory_limit.h``
(``shared_region_t`` / ``shrreg_proc_slot_t``), shared-region versions 1.1
(2024-08 .. 2026-04) and 1.2 (HAMi-core b69b1ea, shipped with HAMi v2.8.2+),
the broken interim "1.1" layout that HAMi v2.8.1 shipped (HAMi-core commits
1988c5d..e200da2: ``seqlock`` moved after ``hostpid``, ``sem_postinit`` after
``sem``, version not bumped), the unversioned v0 layout (HAMi-core 2024-04 ..
2024-08) and the pre-utilisation layout (HAMi-core initial commit, 4paradigm
era).  Offsets, sizes and the detection rules are written down in
``docs/formats.md`` (HAMi-core shared region); the test suite checks every
offset used here against structs compiled by gcc.

Detection: magic ``19920718`` at offset 0, then the **exact file size** (HAMi-core
creates the file by writing one NUL byte at ``sizeof(shared_region_t)``, so
size = sizeof + 1), then the version fields:

=========  ===============================  ==================================
size       layout                            versions accepted
=========  ===============================  ==================================
2008953    v1 (``1.1`` / ``1.2``)            1.1, 1.2 (1.2 adds a per-slot seqlock)
2008985    broken interim ``1.1`` (v2.8.1)   1.1 only
1197897    v0                                (no version fields)
804681     pre-utilisation                   (no version fields, no ``device_util``)
=========  ===============================  ==================================

I/O discipline: the file is opened read-only (``O_RDONLY``) and read with
positioned reads (``os.pread``) only: the header (flag, versions,
``device_num``, ``uuids``, ``limit``, ``sm_limit``: < 2 KiB), the tail
(``proc_num``, ``last_kernel_time``), the status word of each of the first
``proc_num`` slots, and the leading part of active slots (``hostpid``,
``used[0..n)``, ``device_util[0..n)``).  The 2 MB file is never read whole and
never written (HAMi's monitor writes to it; we do not).

Public API::

    read_cache(path, *, opener=os.open) -> CacheRegion
    read_cache_fd(fd, *, path="") -> CacheRegion
    parse_region(read_at, size, *, path="", mtime=None) -> CacheRegion
    bytes_reader(buf) -> read_at   # adapts an in-memory buffer

``read_at(offset, length) -> bytes`` returns up to ``length`` bytes at
``offset`` (``os.pread`` semantics) and may raise ``OSError``.

None of the public functions raises for a bad file: every failure is a
:class:`~exporter.model.Problem` in ``CacheRegion.problems`` with one of the
kinds in :data:`PROBLEM_KINDS`; when the file as a whole is unusable
``CacheRegion.layout`` is ``None`` and ``devices`` is empty.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from typing import Callable

from exporter.model import Problem

#: ``MULTIPROCESS_SHARED_REGION_MAGIC_FLAG``.
MAGIC = 19920718
#: ``CUDA_DEVICE_MAX_COUNT``.
MAX_DEVICES = 16
#: ``SHARED_REGION_MAX_PROCESS_NUM``.
MAX_PROCS = 1024
#: ``typedef char uuid[96]``.
UUID_SLOT = 96
#: How often a 1.2 slot is re-read while its seqlock is odd or changes.
SEQLOCK_RETRIES = 8

#: Bounded ``Problem.kind`` values this module produces.
PROBLEM_KINDS = ("io", "bad_size", "bad_magic", "unknown_version", "corrupt", "torn_read")

ReadAt = Callable[[int, int], bytes]


@dataclass(frozen=True, slots=True)
class Layout:
    """Byte offsets of one shared-region layout (little-endian, LP64).

    Region offsets are from the start of the file; ``slot_*`` offsets are from
    the start of a process slot.  ``None`` = the layout lacks the field.
    """

    name: str
    struct_size: int  # sizeof(shared_region_t); the file is one byte longer
    version: tuple[int, int] | None  # (major, minor) the layout is valid for; None = unversioned
    device_num: int
    uuids: int
    limit: int
    sm_limit: int
    procs: int
    slot_size: int
    slot_hostpid: int
    slot_used: int  # device_memory_t used[16]
    used_stride: int  # sizeof(device_memory_t)
    slot_util: int | None  # device_util_t device_util[16]
    util_stride: int  # sizeof(device_util_t)
    slot_status: int
    slot_seqlock: int | None
    proc_num: int
    last_kernel_time: int | None

    @property
    def file_size(self) -> int:
        return self.struct_size + 1


# device_memory_t: context_size, module_size, data_size, offset, total (+ unused[3] in v1)
# device_util_t:   dec_util, enc_util, sm_util (+ unused[3] in v1); sm_util at +16
_V1 = dict(
    struct_size=2008952, device_num=56, uuids=64, limit=1600, sm_limit=1728,
    procs=1856, slot_size=1960, slot_hostpid=4, slot_used=8, used_stride=64, slot_util=1160,
    util_stride=48, slot_status=1928, proc_num=2008896, last_kernel_time=2008912,
)
LAYOUT_V1_2 = Layout(name="1.2", version=(1, 2), slot_seqlock=1936, **_V1)
LAYOUT_V1_1 = Layout(name="1.1", version=(1, 1), slot_seqlock=None, **_V1)
LAYOUT_V1_1_INTERIM = Layout(
    name="1.1-interim", struct_size=2008984, version=(1, 1), device_num=88, uuids=96,
    limit=1632, sm_limit=1760, procs=1888, slot_size=1960, slot_hostpid=4, slot_used=16,
    used_stride=64, slot_util=1168, util_stride=48, slot_status=1936, slot_seqlock=8,
    proc_num=2008928, last_kernel_time=2008944,
)
LAYOUT_V0 = Layout(
    name="v0", struct_size=1197896, version=None, device_num=48, uuids=56, limit=1592,
    sm_limit=1720, procs=1848, slot_size=1168, slot_hostpid=4, slot_used=8, used_stride=40,
    slot_util=776, util_stride=24, slot_status=1160, slot_seqlock=None, proc_num=1197880,
    last_kernel_time=None,
)
LAYOUT_PRE_UTIL = Layout(
    name="pre-util", struct_size=804680, version=None, device_num=48, uuids=56,
    limit=1592, sm_limit=1720, procs=1848, slot_size=784, slot_hostpid=4, slot_used=8,
    used_stride=40, slot_util=None, util_stride=0, slot_status=776, slot_seqlock=None,
    proc_num=804664, last_kernel_time=None,
)

#: File size -> candidate layouts (v1 sizes are refined by the version fields).
_BY_SIZE: dict[int, tuple[Layout, ...]] = {
    LAYOUT_V1_2.file_size: (LAYOUT_V1_1, LAYOUT_V1_2),
    LAYOUT_V1_1_INTERIM.file_size: (LAYOUT_V1_1_INTERIM,),
    LAYOUT_V0.file_size: (LAYOUT_V0,),
    LAYOUT_PRE_UTIL.file_size: (LAYOUT_PRE_UTIL,),
}
KNOWN_SIZES = tuple(sorted(_BY_SIZE))
# Every layout's header (up to the end of sm_limit[16]) fits in this many bytes.
_HEADER_LEN = max(lay.procs for lay in (LAYOUT_V1_2, LAYOUT_V1_1_INTERIM, LAYOUT_V0))

_I32 = struct.Struct("<i")
_U32x2 = struct.Struct("<II")
_U64 = struct.Struct("<Q")
_16U64 = struct.Struct("<16Q")
_STATUS_SEQ = struct.Struct("<i4xQ")  # status, padding, seqlock (v1.x: adjacent)
_UUID_RE = re.compile(rb"(?:GPU|MIG)-[\x21-\x7e]+(?=\x00|\Z)")


@dataclass(slots=True)
class CacheDevice:
    """One virtual device (index ``d`` < ``min(device_num, 16)``) of a region.

    ``memory_limit_bytes``: ``limit[d]`` as written (0 = no limit set).
    ``sm_limit``: ``sm_limit[d]`` in percent as written (0 = unlimited).
    ``used_bytes`` / ``context_bytes`` / ``module_bytes`` / ``data_bytes``:
    sums of ``used[d].total`` / ``.context_size`` / ``.module_size`` /
    ``.data_size`` over active slots (``status != 0``), bytes.
    ``sm_util``: sum of ``device_util[d].sm_util`` over active slots, raw
    0-100 scale per process (the sum may exceed 100); ``None`` in the
    pre-utilisation layout.
    ``last_kernel_time`` / ``active_processes`` / ``host_pids``: copied from the
    region; a HAMi-core process slot covers every device of the container, so
    these are not per device.
    """

    index: int
    uuid: str
    memory_limit_bytes: int
    sm_limit: int
    used_bytes: int = 0
    context_bytes: int = 0
    module_bytes: int = 0
    data_bytes: int = 0
    sm_util: int | None = None
    last_kernel_time: int | None = None
    active_processes: int = 0
    host_pids: tuple[int, ...] = ()


@dataclass(slots=True)
class CacheRegion:
    """What was read from one ``.cache`` file.

    ``layout``: ``"1.2"``, ``"1.1"``, ``"1.1-interim"``, ``"v0"``,
    ``"pre-util"``, or ``None`` when the file could not be used (see
    ``problems``).  ``major_version`` / ``minor_version``: ``None`` for the
    unversioned layouts.  ``proc_num``: the clamped slot count.
    ``active_processes``: slots with ``status != 0`` that were read
    consistently.  ``host_pids``: their non-zero ``hostpid`` values (0 means
    "not resolved yet" and is left out).  ``last_kernel_time``: Unix seconds,
    ``None`` when 0 or absent from the layout.  ``size`` / ``mtime``: from
    ``fstat``.  ``bytes_read``: total bytes requested from the file.
    """

    path: str = ""
    size: int | None = None
    mtime: float | None = None
    layout: str | None = None
    major_version: int | None = None
    minor_version: int | None = None
    proc_num: int = 0
    active_processes: int = 0
    host_pids: tuple[int, ...] = ()
    last_kernel_time: int | None = None
    devices: list[CacheDevice] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        """True when the layout was recognised and the devices were read."""
        return self.layout is not None


class _Fail(Exception):
    """Internal: abort parsing with one problem."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def bytes_reader(buf: bytes | bytearray | memoryview) -> ReadAt:
    """Adapt an in-memory copy of a file to the ``read_at`` interface."""
    view = memoryview(buf)

    def read_at(offset: int, length: int) -> bytes:
        return bytes(view[offset : offset + length])

    return read_at


def read_cache(path: str | os.PathLike[str], *, opener: Callable[..., int] = os.open) -> CacheRegion:
    """Open ``path`` read-only and parse it.  Never raises for I/O or format errors.

    ``opener(path, flags) -> fd`` defaults to :func:`os.open`; tests pass a
    fake to observe the flags or to fail the open.  The descriptor is closed
    before returning.
    """
    spath = os.fspath(path)
    try:
        # O_NONBLOCK: a FIFO named *.cache must not hang the collector.
        fd = opener(spath, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return CacheRegion(path=spath, problems=[Problem("io", f"{spath}: open: {exc.strerror or exc}")])
    try:
        return read_cache_fd(fd, path=spath)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def read_cache_fd(fd: int, *, path: str = "") -> CacheRegion:
    """Parse the shared region behind an open file descriptor (not closed here)."""
    try:
        st = os.fstat(fd)
    except OSError as exc:
        return CacheRegion(path=path, problems=[Problem("io", f"{path}: fstat: {exc.strerror or exc}")])
    if not stat.S_ISREG(st.st_mode):
        return CacheRegion(path=path, problems=[Problem("io", f"{path}: not a regular file")])

    def read_at(offset: int, length: int) -> bytes:
        return os.pread(fd, length, offset)

    return parse_region(read_at, st.st_size, path=path, mtime=st.st_mtime)


def parse_region(read_at: ReadAt, size: int, *, path: str = "", mtime: float | None = None) -> CacheRegion:
    """Parse one shared region through ``read_at`` given the file ``size``.

    Reads only what it needs (see the module docstring).  Never raises: an
    unusable file gives ``layout=None`` and one problem; per-slot trouble
    (a 1.2 seqlock that never settles) gives a ``torn_read`` problem and the
    slot is left out of the sums.
    """
    region = CacheRegion(path=path, size=size, mtime=mtime)
    counter = [0]

    def rd(offset: int, length: int) -> bytes:
        counter[0] += length
        data = read_at(offset, length)
        if len(data) != length:
            raise _Fail("bad_size", f"short read at {offset}: {len(data)} of {length} bytes (file shrank?)")
        return data

    try:
        _parse(rd, size, region, path)
    except _Fail as exc:
        region.layout = None
        region.devices = []
        region.problems.append(Problem(exc.kind, f"{path}: {exc.detail}" if path else exc.detail))
    except OSError as exc:
        region.layout = None
        region.devices = []
        region.problems.append(Problem("io", f"{path}: read: {exc.strerror or exc}"))
    except Exception as exc:  # a faulty reader must not take the caller down
        region.layout = None
        region.devices = []
        region.problems.append(Problem("io", f"{path}: {type(exc).__name__}: {exc}"))
    region.bytes_read = counter[0]
    return region


def _decode_uuid(raw: bytes) -> str | None:
    """The NUL-terminated UUID if it looks like ``GPU-...``/``MIG-...`` (printable ASCII)."""
    match = _UUID_RE.match(raw)
    return match.group(0).decode("ascii") if match else None


def _parse(rd: ReadAt, size: int, region: CacheRegion, path: str) -> None:
    if size < 4:
        raise _Fail("bad_size", f"{size} bytes; too small for a shared region")
    header = rd(0, min(size, _HEADER_LEN))
    flag = _I32.unpack_from(header, 0)[0]
    if flag not in (MAGIC, 0):
        raise _Fail("bad_magic", f"initialized_flag {flag}, want {MAGIC}")
    candidates = _BY_SIZE.get(size)
    if candidates is None:
        raise _Fail("bad_size", f"{size} bytes; known sizes are {', '.join(map(str, KNOWN_SIZES))}")
    if flag == 0:
        raise _Fail("corrupt", "initialized_flag not set (region not initialised yet)")

    layout = candidates[0]
    if layout.version is not None:
        major, minor = _U32x2.unpack_from(header, 4)
        region.major_version, region.minor_version = major, minor
        for cand in candidates:
            if cand.version == (major, minor):
                layout = cand
                break
        else:
            raise _Fail("unknown_version", f"version {major}.{minor} with a {size}-byte file")
    region.layout = layout.name

    device_num = _U64.unpack_from(header, layout.device_num)[0]
    if device_num == 0 or device_num > MAX_DEVICES:
        raise _Fail("corrupt", f"device_num {device_num}")
    ndev = int(device_num)
    uuids: list[str] = []
    for d in range(ndev):
        off = layout.uuids + UUID_SLOT * d
        uuid = _decode_uuid(header[off : off + UUID_SLOT])
        if uuid is None:
            raw = header[off : off + 40].split(b"\0", 1)[0]
            raise _Fail("corrupt", f"uuids[{d}] is not a GPU-/MIG- UUID: {raw[:40]!r}")
        uuids.append(uuid)
    limits = _16U64.unpack_from(header, layout.limit)
    sm_limits = _16U64.unpack_from(header, layout.sm_limit)

    if layout.last_kernel_time is not None:
        tail = rd(layout.proc_num, layout.last_kernel_time + 8 - layout.proc_num)
        proc_num = _I32.unpack_from(tail, 0)[0]
        lkt = _U64.unpack_from(tail, layout.last_kernel_time - layout.proc_num)[0]
        region.last_kernel_time = lkt or None
    else:
        proc_num = _I32.unpack_from(rd(layout.proc_num, 4), 0)[0]
    proc_num = max(0, min(MAX_PROCS, proc_num))
    region.proc_num = proc_num

    used_s, util_s = _slot_structs(layout, ndev)
    used_rows: list[tuple[int, ...]] = []
    util_rows: list[tuple[int, ...]] = []
    pids: list[int] = []
    # Leading part of a slot that holds hostpid, used[0..n) and device_util[0..n).
    data_len = layout.slot_used + used_s.size if util_s is None else layout.slot_util + util_s.size
    seq_off_in_slot = layout.slot_seqlock
    seq_adjacent = seq_off_in_slot == layout.slot_status + 8
    status_len = 16 if seq_adjacent else 4
    status_off = layout.slot_status
    slot_size = layout.slot_size
    procs = layout.procs

    for p in range(proc_num):
        base = procs + slot_size * p
        head = rd(base + status_off, status_len)
        if _I32.unpack_from(head, 0)[0] == 0:
            continue  # free slot
        if seq_off_in_slot is None:
            slot = rd(base, data_len)
        else:
            seq_off = base + seq_off_in_slot
            seq1 = _STATUS_SEQ.unpack_from(head, 0)[1] if seq_adjacent else _U64.unpack_from(rd(seq_off, 8), 0)[0]
            slot = None
            for attempt in range(SEQLOCK_RETRIES):
                if attempt:
                    _yield()
                    seq1 = _U64.unpack_from(rd(seq_off, 8), 0)[0]
                if seq1 & 1:
                    continue  # write in progress
                candidate = rd(base, data_len)
                if _U64.unpack_from(rd(seq_off, 8), 0)[0] == seq1:
                    slot = candidate
                    break
            if slot is None:
                region.problems.append(
                    Problem("torn_read", f"{path}: slot {p}: seqlock did not settle after {SEQLOCK_RETRIES} tries")
                )
                continue
        hostpid = _I32.unpack_from(slot, layout.slot_hostpid)[0]
        if hostpid > 0:
            pids.append(hostpid)
        used_rows.append(used_s.unpack_from(slot, layout.slot_used))
        if util_s is not None:
            util_rows.append(util_s.unpack_from(slot, layout.slot_util))

    active = len(used_rows)
    region.active_processes = active
    region.host_pids = tuple(pids)
    # Column sums: word w of device d is at index d * words + w.
    used_sum = [sum(col) for col in zip(*used_rows)] if used_rows else [0] * (used_s.size // 8)
    uw = layout.used_stride // 8  # u64 words per device_memory_t
    tw = layout.util_stride // 8  # u64 words per device_util_t
    util_sum: list[int] | None = None
    if util_s is not None:
        util_sum = [sum(col) for col in zip(*util_rows)] if util_rows else [0] * (util_s.size // 8)
    lkt = region.last_kernel_time
    host_pids = region.host_pids
    region.devices = [
        CacheDevice(
            d,
            uuids[d],
            limits[d],
            sm_limits[d],
            used_sum[uw * d + 4],  # total
            used_sum[uw * d],  # context_size
            used_sum[uw * d + 1],  # module_size
            used_sum[uw * d + 2],  # data_size
            None if util_sum is None else util_sum[tw * d + 2],  # sm_util
            lkt,
            active,
            host_pids,
        )
        for d in range(ndev)
    ]


@functools.lru_cache(maxsize=None)
def _slot_structs(layout: Layout, ndev: int) -> tuple[struct.Struct, struct.Struct | None]:
    """Structs for ``used[0..ndev)`` and ``device_util[0..ndev)`` as flat u64 words."""
    used_s = struct.Struct(f"<{layout.used_stride // 8 * ndev}Q")
    util_s = None if layout.slot_util is None else struct.Struct(f"<{layout.util_stride // 8 * ndev}Q")
    return used_s, util_s


def _yield() -> None:
    sched_yield = getattr(os, "sched_yield", None)
    if sched_yield is not None:
        sched_yield()
