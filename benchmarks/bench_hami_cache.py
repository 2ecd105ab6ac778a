"""Benchmark: positioned reads vs whole-file reads of HAMi-core ``.cache`` files.

Writes 256 real-size shared-region 1.2 files (2 008 953 bytes each, the
layout of HAMi-core ``src/multiprocess/multiprocess_memory_limit.h``; see
``docs/formats.md``) with a few active process slots into a temporary
directory, then times, over several rounds, one full pass of

* ``reader``: :func:`exporter.parsers.hami_cache.read_cache` (``os.pread`` of
  the header, tail and active slots only), and
* ``whole``: ``Path.read_bytes()`` of each file, then the same parser over
  the in-memory copy.

Prints one JSON object per line: per-round timings, then a summary with the
p50 of a full pass for both and the speed-up ratio (target >= 20x).  Not part
of the test suite.  Run: ``python benchmarks/bench_hami_cache.py [--files N]
[--rounds N] [--active N] [--dir PATH]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.parsers.hami_cache import (  # noqa: E402
    LAYOUT_V1_2 as L,
    MAGIC,
    bytes_reader,
    parse_region,
    read_cache,
)

MIB = 1024 * 1024


def build_region(i: int, active: int, ndev: int = 2) -> bytes:
    """One 1.2 region (struct + trailing NUL) with ``active`` running slots."""
    buf = bytearray(L.file_size)
    struct.pack_into("<iIIiQ", buf, 0, MAGIC, 1, 2, 1, 0)
    struct.pack_into("<Q", buf, L.device_num, ndev)
    for d in range(ndev):
        uuid = f"GPU-{i:08x}-{d:04x}-0000-0000-000000000000".encode()
        buf[L.uuids + 96 * d : L.uuids + 96 * d + len(uuid)] = uuid
        struct.pack_into("<Q", buf, L.limit + 8 * d, (4 + d) * 1024 * MIB)
        struct.pack_into("<Q", buf, L.sm_limit + 8 * d, 25 * (d + 1))
    nslots = active + 2  # two freed (status 0) slots among the used ones
    struct.pack_into("<i", buf, L.proc_num, nslots)
    struct.pack_into("<Q", buf, L.last_kernel_time, 1_760_000_000 + i)
    for p in range(nslots):
        base = L.procs + L.slot_size * p
        struct.pack_into("<ii", buf, base, 100 + p, 5000 + p)
        struct.pack_into("<i", buf, base + L.slot_status, 0 if p % 3 == 1 else 1)
        struct.pack_into("<Q", buf, base + L.slot_seqlock, 2 * p)
        for d in range(ndev):
            c, m, b = MIB, 2 * MIB, (p + 1) * 256 * MIB
            struct.pack_into("<5Q", buf, base + L.slot_used + L.used_stride * d, c, m, b, 0, c + m + b)
            struct.pack_into("<Q", buf, base + L.slot_util + L.util_stride * d + 16, 10 + p)
    return bytes(buf)


def pass_reader(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        r = read_cache(p)
        if not r.ok:
            raise SystemExit(f"reader failed on {p}: {r.problems}")
    return time.perf_counter() - t0


def pass_whole(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        data = p.read_bytes()
        r = parse_region(bytes_reader(data), len(data), path=str(p))
        if not r.ok:
            raise SystemExit(f"whole-file parse failed on {p}: {r.problems}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--active", type=int, default=3, help="active process slots per file")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hami-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        paths = []
        for i in range(args.files):
            d = root / f"{i:08x}-0000-0000-0000-000000000000_ctr{i}"
            d.mkdir()
            path = d / "region.cache"
            path.write_bytes(build_region(i, args.active))
            paths.append(path)
        # warm-up (also checks both paths agree)
        a = read_cache(paths[0])
        data = paths[0].read_bytes()
        b = parse_region(bytes_reader(data), len(data), path=str(paths[0]))
        assert a.devices == b.devices and a.host_pids == b.host_pids, "reader and whole-file parse disagree"
        pass_reader(paths)
        pass_whole(paths)

        reader_t, whole_t = [], []
        for rnd in range(args.rounds):
            # alternate the order so neither always runs on a warmer cache
            if rnd % 2:
                w, r = pass_whole(paths), pass_reader(paths)
            else:
                r, w = pass_reader(paths), pass_whole(paths)
            reader_t.append(r)
            whole_t.append(w)
            print(json.dumps({"round": rnd, "reader_s": round(r, 6), "whole_s": round(w, 6)}))

        p50_r = statistics.median(reader_t)
        p50_w = statistics.median(whole_t)
        print(
            json.dumps(
                {
                    "bench": "hami_cache",
                    "files": args.files,
                    "file_bytes": paths[0].stat().st_size,
                    "active_slots": args.active,
                    "rounds": args.rounds,
                    "bytes_read_per_file": a.bytes_read,
                    "reader_pass_p50_s": round(p50_r, 6),
                    "whole_pass_p50_s": round(p50_w, 6),
                    "reader_per_file_us": round(p50_r / args.files * 1e6, 2),
                    "whole_per_file_us": round(p50_w / args.files * 1e6, 2),
                    "speedup": round(p50_w / p50_r, 1),
                    "target_speedup": 20,
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
