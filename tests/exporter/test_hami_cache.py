"""Tests for the HAMi-core shared-region reader and the HAMi vGPU source.

The ``.cache`` files are written by ``hami_cache_writer.c`` (compiled here with
gcc), which declares each layout as a C struct, so the byte offsets the reader
uses are checked against the compiler's padding and alignment rather than
against our own arithmetic.  The default scenario written by the helper is
described at the top of that file and mirrored by :func:`expected`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from exporter.model import Attribution
from exporter.parsers import hami_cache
from exporter.parsers.hami_cache import (
    LAYOUT_PRE_UTIL,
    LAYOUT_V0,
    LAYOUT_V1_1,
    LAYOUT_V1_1_INTERIM,
    LAYOUT_V1_2,
    MAGIC,
    SEQLOCK_RETRIES,
    bytes_reader,
    parse_region,
    read_cache,
)
from exporter.sources.hami_vgpu import HamiVgpuSource

HERE = Path(__file__).resolve().parent
WRITER_SRC = HERE / "hami_cache_writer.c"
MIB = 1024 * 1024

UUID0 = "GPU-11111111-2222-3333-4444-555555555555"
UUID1 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

# writer layout name -> (our Layout, parsed layout name)
LAYOUTS = {
    "v12": LAYOUT_V1_2,
    "v11": LAYOUT_V1_1,
    "interim": LAYOUT_V1_1_INTERIM,
    "v0": LAYOUT_V0,
    "preutil": LAYOUT_PRE_UTIL,
}
FILE_SIZES = {"v12": 2008953, "v11": 2008953, "interim": 2008985, "v0": 1197897, "preutil": 804681}


@pytest.fixture(scope="session")
def writer(tmp_path_factory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: the HAMi-core layout tests compile hami_cache_writer.c")
    exe = tmp_path_factory.mktemp("hami-writer") / "hami_cache_writer"
    subprocess.run([gcc, "-O1", "-Wall", "-o", str(exe), str(WRITER_SRC)], check=True)
    return exe


@pytest.fixture()
def write(writer, tmp_path):
    """``write(layout, *opts, path=None) -> Path`` of a freshly written file."""
    counter = iter(range(10_000))

    def _write(layout: str, *opts: str, path: Path | None = None) -> Path:
        out = path or tmp_path / f"f{next(counter)}-{layout}.cache"
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(writer), layout, str(out), *opts], check=True)
        return out

    return _write


def expected(layout: str, *, active=(0, 2, 3), ndev=2) -> dict:
    """Sums the default scenario yields over the given active slots."""
    devs = []
    for d in range(ndev):
        ctx = sum((p + 1) * MIB + d for p in active)
        mod = sum(2 * (p + 1) * MIB + d for p in active)
        data = sum(256 * (p + 1) * MIB + d for p in active)
        util = sum(5 * (p + 1) + d for p in active)
        devs.append(
            dict(
                index=d,
                uuid=(UUID0, UUID1)[d],
                memory_limit_bytes=(4096 * MIB, 8192 * MIB)[d],
                sm_limit=(30, 0)[d],
                context_bytes=ctx,
                module_bytes=mod,
                data_bytes=data,
                used_bytes=ctx + mod + data,
                sm_util=None if layout == "preutil" else util,
            )
        )
    hostpids = {0: 1001, 1: 1002, 2: 1003, 3: 0, 4: 1005}
    return dict(
        devices=devs,
        host_pids=tuple(hostpids[p] for p in active if hostpids[p]),
        active=len(active),
        last_kernel_time=1760000000 if layout in ("v12", "v11", "interim") else None,
    )


def kinds(region) -> list[str]:
    return [p.kind for p in region.problems]


# -- layout offsets against the compiler ------------------------------------


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_offsets_match_gcc(writer, name):
    got = json.loads(subprocess.run([str(writer), "offsets", name], check=True, capture_output=True, text=True).stdout)
    lay = LAYOUTS[name]
    assert got["size"] == lay.struct_size
    assert lay.file_size == FILE_SIZES[name]
    for key in (
        "device_num", "uuids", "limit", "sm_limit", "procs", "slot_size", "slot_hostpid",
        "slot_used", "used_stride", "slot_util", "util_stride", "slot_status", "slot_seqlock",
        "proc_num", "last_kernel_time",
    ):
        assert got[key] == getattr(lay, key), key
    if got["sm_util"] is not None:
        assert got["sm_util"] == 16


# -- exact values per layout --------------------------------------------------


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_parse_each_layout(write, name):
    path = write(name)
    assert path.stat().st_size == FILE_SIZES[name]
    region = read_cache(path)
    assert region.problems == []
    assert region.layout == LAYOUTS[name].name
    exp = expected(name)
    assert region.proc_num == 4
    assert region.active_processes == exp["active"]
    assert region.host_pids == exp["host_pids"]
    assert region.last_kernel_time == exp["last_kernel_time"]
    if name in ("v12", "v11", "interim"):
        assert (region.major_version, region.minor_version) == ((1, 2) if name == "v12" else (1, 1))
    else:
        assert region.major_version is None and region.minor_version is None
    assert len(region.devices) == 2
    for dev, want in zip(region.devices, exp["devices"]):
        for key, value in want.items():
            assert getattr(dev, key) == value, (key, dev)
        assert dev.last_kernel_time == exp["last_kernel_time"]
        assert dev.active_processes == exp["active"]
        assert dev.host_pids == exp["host_pids"]
    assert region.bytes_read < 8192


def test_procnum_limits_slots_and_is_clamped(write):
    # proc_num 1: only slot 0 is considered even though slots 2..4 are active.
    r = read_cache(write("v12", "procnum=1"))
    assert r.active_processes == 1 and r.host_pids == (1001,)
    assert r.devices[0].used_bytes == expected("v12", active=(0,))["devices"][0]["used_bytes"]
    # proc_num 5000 is clamped to 1024; slot 4 (status 1) now counts too.
    r = read_cache(write("v12", "procnum=5000"))
    assert r.problems == [] and r.proc_num == 1024
    assert r.active_processes == 4 and r.host_pids == (1001, 1003, 1005)
    # negative -> 0
    r = read_cache(write("v11", "procnum=-3"))
    assert r.proc_num == 0 and r.active_processes == 0 and r.devices[0].used_bytes == 0
    assert r.devices[0].sm_util == 0


def test_last_kernel_time_zero_is_none(write):
    r = read_cache(write("v12", "lkt=0"))
    assert r.last_kernel_time is None and r.devices[1].last_kernel_time is None


# -- errors -------------------------------------------------------------------


def test_missing_file_is_io(tmp_path):
    r = read_cache(tmp_path / "gone.cache")
    assert kinds(r) == ["io"] and not r.ok and r.devices == []


def test_truncated_and_oversized(write, tmp_path):
    src = write("v12").read_bytes()
    for n, size in enumerate((0, 3, 1000, len(src) - 1, len(src) + 1, len(src) + 4096, 1197896)):
        p = tmp_path / f"size{n}.cache"
        p.write_bytes((src + b"\0" * 8192)[:size])
        r = read_cache(p)
        assert kinds(r) == ["bad_size"], size
        assert r.devices == [] and r.layout is None


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.cache"
    text.write_bytes(b"hello, this is not a shared region\n" * 100)
    assert kinds(read_cache(text)) == ["bad_magic"]
    right_size = tmp_path / "foreign.cache"
    right_size.write_bytes(b"\x01\x02\x03\x04" + b"\xff" * (2008953 - 4))
    assert kinds(read_cache(right_size)) == ["bad_magic"]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_zero_filled_is_corrupt(write, name):
    r = read_cache(write(name, "zero"))
    assert kinds(r) == ["corrupt"] and r.devices == []


@pytest.mark.parametrize(
    "layout,opts",
    [
        ("v12", ("minor=3",)),  # 1.3 with a compatible size
        ("v12", ("major=2", "minor=0")),
        ("v12", ("minor=0",)),
        ("interim", ("minor=2",)),  # the interim size never carried 1.2
    ],
)
def test_unknown_version(write, layout, opts):
    r = read_cache(write(layout, *opts))
    assert kinds(r) == ["unknown_version"] and r.devices == []


@pytest.mark.parametrize(
    "opts",
    [("devnum=17",), ("devnum=0",), ("uuid0=\x01garbage",), ("uuid0=NVIDIA-A100",), ("flag=0",)],
)
def test_half_written_is_corrupt(write, opts):
    r = read_cache(write("v12", *opts))
    assert kinds(r) == ["corrupt"] and r.devices == []


def test_mig_uuid_accepted(write):
    r = read_cache(write("v11", "uuid0=MIG-0c2f2e3a-53c0-5d6a-9a3b-0123456789ab"))
    assert r.ok and r.devices[0].uuid == "MIG-0c2f2e3a-53c0-5d6a-9a3b-0123456789ab"


def test_interim_read_as_v1_would_be_garbage(write):
    """The v2.8.1 file (issue #1811) must not be parsed with v1 offsets."""
    path = write("interim")
    raw = path.read_bytes()
    assert not raw[64:104].startswith(b"GPU-")  # what HAMi v2.8.1's monitor exported
    r = read_cache(path)
    assert r.layout == "1.1-interim" and r.devices[0].uuid == UUID0


# -- seqlock ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v12", "interim"])
def test_odd_seqlock_that_never_settles(write, name):
    r = read_cache(write(name, "oddseq=0"))
    assert kinds(r) == ["torn_read"]
    assert r.ok
    assert r.active_processes == 2 and r.host_pids == (1003,)
    want = expected(name, active=(2, 3))
    assert [d.used_bytes for d in r.devices] == [d["used_bytes"] for d in want["devices"]]
    assert [d.sm_util for d in r.devices] == [d["sm_util"] for d in want["devices"]]


def test_v11_ignores_seqlock_word(write):
    # 1.1 has unused[0] where 1.2 has seqlock: an odd value there means nothing.
    path = write("v11")
    raw = bytearray(path.read_bytes())
    raw[1856 + 1936] = 7
    r = parse_region(bytes_reader(raw), len(raw))
    assert r.problems == [] and r.active_processes == 3


def test_seqlock_retry_settles(write):
    """A writer finishing between two reads: odd, then changed, then stable."""
    path = write("v12")
    raw = bytearray(path.read_bytes())
    seq_off = LAYOUT_V1_2.procs + LAYOUT_V1_2.slot_seqlock  # slot 0
    reads = {"n": 0}
    base = bytes_reader(raw)
    # successive values seen by reads that cover slot 0's seqlock
    script = [3, 4, 6, 8, 8]

    def read_at(offset, length):
        if offset <= seq_off < offset + length:
            i = min(reads["n"], len(script) - 1)
            reads["n"] += 1
            raw[seq_off : seq_off + 8] = script[i].to_bytes(8, "little")
        return base(offset, length)

    r = parse_region(read_at, len(raw))
    assert r.problems == [] and r.active_processes == 3
    assert r.devices[0].used_bytes == expected("v12")["devices"][0]["used_bytes"]


def test_seqlock_retries_are_bounded(write):
    path = write("v12", "procnum=1")
    raw = bytearray(path.read_bytes())
    seq_off = LAYOUT_V1_2.procs + LAYOUT_V1_2.slot_seqlock
    base = bytes_reader(raw)
    calls = {"n": 0}

    def read_at(offset, length):
        if offset <= seq_off < offset + length:
            calls["n"] += 1
            raw[seq_off : seq_off + 8] = (2 * calls["n"]).to_bytes(8, "little")  # always moving
        return base(offset, length)

    r = parse_region(read_at, len(raw))
    assert kinds(r) == ["torn_read"] and r.active_processes == 0
    assert calls["n"] <= 2 * SEQLOCK_RETRIES + 1


# -- I/O discipline -----------------------------------------------------------


def test_reads_only_a_few_bytes(write, monkeypatch):
    path = write("v12", "procnum=2")  # slot 0 active, slot 1 inactive
    preads: list[tuple[int, int]] = []
    real_pread = os.pread

    def counting_pread(fd, n, offset):
        preads.append((n, offset))
        return real_pread(fd, n, offset)

    def no_read(*a, **k):  # pragma: no cover - failing path
        raise AssertionError("os.read must not be used")

    flags_seen = []

    def opener(p, flags):
        flags_seen.append(flags)
        return os.open(p, flags)

    monkeypatch.setattr(os, "pread", counting_pread)
    monkeypatch.setattr(os, "read", no_read)
    r = read_cache(path, opener=opener)
    monkeypatch.undo()

    assert r.problems == [] and r.active_processes == 1 and r.host_pids == (1001,)
    assert flags_seen and all(f & os.O_ACCMODE == os.O_RDONLY for f in flags_seen)
    total = sum(n for n, _ in preads)
    assert total == r.bytes_read
    # header (< 2 KiB) + tail + 2 status words + one slot prefix + one seqlock re-read
    assert total < 4096, preads
    assert len(preads) <= 6, preads
    assert max(off for _, off in preads) < 2008953


def test_not_a_regular_file_is_io(tmp_path):
    fifo = tmp_path / "pipe.cache"
    os.mkfifo(fifo)
    assert kinds(read_cache(fifo)) == ["io"]  # and it did not block
    (tmp_path / "dir.cache").mkdir()
    assert kinds(read_cache(tmp_path / "dir.cache")) == ["io"]


def test_opener_failure_is_io(tmp_path):
    def opener(p, flags):
        raise PermissionError(13, "Permission denied")

    r = read_cache(tmp_path / "x.cache", opener=opener)
    assert kinds(r) == ["io"]


def test_reader_exception_is_contained():
    def read_at(offset, length):
        raise RuntimeError("boom")

    r = parse_region(read_at, 2008953, path="x")
    assert kinds(r) == ["io"] and not r.ok


def test_file_shrinking_mid_read(write):
    raw = write("v12").read_bytes()

    def read_at(offset, length):
        return raw[:3000][offset : offset + length]  # shrank after fstat

    r = parse_region(read_at, len(raw))
    assert kinds(r) == ["bad_size"] and r.devices == []


# -- the source ---------------------------------------------------------------


def make_tree(root: Path, write) -> None:
    a = root / "5c8316be-0c88-479c-85fc-475f3874d05f_stable-diffusion"
    write("v12", path=a / "f2df89ca-28bd-4b23-83c0-212835ac1724.cache")
    (a / "libvgpu.so").write_bytes(b"\x7fELF not really")
    (a / "libvgpu.so.1").write_bytes(b"\x7fELF")
    (a / "README").write_text("hello\n")
    b = root / "0f000000-0000-0000-0000-00000000000b_my_side_car"
    write("preutil", path=b / "old.cache")


def test_source_slices(write, tmp_path):
    root = tmp_path / "containers"
    make_tree(root, write)
    resolved = []

    def resolver(uid):
        resolved.append(uid)
        return ("ml", "sd-web-0") if uid.startswith("5c83") else None

    src = HamiVgpuSource(root, clock=lambda: 1234.5, pod_resolver=resolver)
    src.start()
    snap = src.collect()
    src.close()
    assert snap.source == "hami-vgpu" and snap.timestamp == 1234.5
    assert snap.problems == []
    assert sorted(resolved) == sorted(set(resolved))  # once per pod
    by_id = {s.slice_id: s for s in snap.slices}
    uid_a = "5c8316be-0c88-479c-85fc-475f3874d05f"
    uid_b = "0f000000-0000-0000-0000-00000000000b"
    assert sorted(by_id) == sorted(
        [f"{uid_b}/my_side_car/0", f"{uid_b}/my_side_car/1", f"{uid_a}/stable-diffusion/0", f"{uid_a}/stable-diffusion/1"]
    )
    exp = expected("v12")["devices"]
    s0 = by_id[f"{uid_a}/stable-diffusion/0"]
    assert s0.hw_id == f"hami-vgpu-{uid_a}-stable-diffusion-0"
    assert (s0.slice_type, s0.vendor, s0.kind, s0.parent_id) == ("hami_vgpu", "nvidia", "gpu", UUID0)
    assert s0.memory_used_bytes == exp[0]["used_bytes"]
    assert s0.memory_limit_bytes == 4096 * MIB
    assert s0.core_limit == pytest.approx(0.30)
    assert s0.utilization == pytest.approx(0.40) and s0.clamped is False
    assert s0.last_kernel_time == 1760000000.0
    assert s0.attribution == Attribution(namespace="ml", pod="sd-web-0", container="stable-diffusion", pod_uid=uid_a)
    s1 = by_id[f"{uid_a}/stable-diffusion/1"]
    assert s1.parent_id == UUID1 and s1.core_limit == 1.0  # sm_limit 0 = unlimited
    assert s1.utilization == pytest.approx(0.43)
    # container name with underscores, pre-util layout: no utilisation, no kernel time
    b0 = by_id[f"{uid_b}/my_side_car/0"]
    assert b0.attribution == Attribution(container="my_side_car", pod_uid=uid_b)
    assert b0.utilization is None and b0.clamped is False and b0.last_kernel_time is None
    assert b0.memory_used_bytes == exp[0]["used_bytes"]


def test_source_utilization_clamped(write, tmp_path):
    root = tmp_path / "c"
    write("v12", "smutil=0:0:215", path=root / "uid-1_main" / "a.cache")  # 215 + 15 + 20 = 250 %
    snap = HamiVgpuSource(root).collect()
    s0 = next(s for s in snap.slices if s.slice_id == "uid-1/main/0")
    assert s0.utilization == 1.0 and s0.clamped is True
    s1 = next(s for s in snap.slices if s.slice_id == "uid-1/main/1")
    assert s1.clamped is False


def test_source_multiple_caches_newest_wins(write, tmp_path):
    d = tmp_path / "c" / "uid-2_worker"
    old = write("v11", "procnum=1", path=d / "old.cache")
    new = write("v12", path=d / "new.cache")
    bad = d / "junk.cache"
    bad.write_bytes(b"")  # an empty (just created) file
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    snap = HamiVgpuSource(tmp_path / "c").collect()
    assert sorted(p.kind for p in snap.problems) == ["bad_size", "multiple_caches"]
    assert [s.slice_id for s in snap.slices] == ["uid-2/worker/0", "uid-2/worker/1"]
    assert snap.slices[0].memory_used_bytes == expected("v12")["devices"][0]["used_bytes"]
    # flip the mtimes: the 1.1 file (only slot 0 counted) now wins
    os.utime(old, (3_000_000, 3_000_000))
    snap = HamiVgpuSource(tmp_path / "c").collect()
    assert snap.slices[0].memory_used_bytes == expected("v11", active=(0,))["devices"][0]["used_bytes"]


def test_source_missing_root_and_odd_entries(write, tmp_path):
    snap = HamiVgpuSource(tmp_path / "nope").collect()
    assert snap.slices == [] and snap.problems == []
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    snap = HamiVgpuSource(not_a_dir).collect()
    assert snap.slices == [] and [p.kind for p in snap.problems] == ["io"]
    root = tmp_path / "r"
    (root / "no-underscore").mkdir(parents=True)
    (root / "uid-3_empty").mkdir()  # CUDA not initialised yet: no file, no problem
    (root / "stray.cache").write_bytes(b"")  # files directly under root are ignored
    snap = HamiVgpuSource(root).collect()
    assert snap.slices == [] and [p.kind for p in snap.problems] == ["parse"]


def test_source_resolver_errors_are_contained(write, tmp_path):
    root = tmp_path / "c"
    write("v12", path=root / "uid-4_app" / "a.cache")

    def resolver(uid):
        raise TimeoutError("api down")

    snap = HamiVgpuSource(root, pod_resolver=resolver).collect()
    assert [p.kind for p in snap.problems] == ["attribution"]
    assert len(snap.slices) == 2
    assert snap.slices[0].attribution == Attribution(container="app", pod_uid="uid-4")


def test_magic_constant():
    assert MAGIC == 0x012FF74E
    assert hami_cache.PROBLEM_KINDS
