#!/usr/bin/env python3
"""Compare :class:`exporter.sources.nvml.NvmlSource` with ``nvidia-smi -q -x``.

For a machine with an NVIDIA GPU and driver.  Starts the NVML source, then
launches ``nvidia-smi -q -x`` and collects once while it runs, parses the XML
with :func:`exporter.parsers.nvidia_smi_xml.parse`, and prints one table per
device (and MIG slice): field, NVML value, nvidia-smi value, diff, verdict.

Verdicts: ``pass``; ``FAIL`` (identity, memory total and limits must be
equal; moving values such as power, utilization, temperatures, clocks and
used memory must be within a tolerance); ``warn`` (only one side reports the
field, or the two sides measure different things, e.g. throttle counters).
Both sides absent: no row.

Exit code: 0 when nothing FAILs, 1 otherwise, 2 when a side could not be read.

    python scripts/validate_nvml.py [--json OUT] [--nvidia-smi PATH]
"""

from __future__ import annotations

import argparse
import json
import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.model import Device, Slice  # noqa: E402

MIB = 1024 * 1024

#: field -> (absolute tolerance, relative tolerance); absent = must be equal
TOLERANCE: dict[str, tuple[float, float]] = {
    "memory_used_bytes": (256 * MIB, 0.05),
    "power_watts": (30.0, 0.15),
    "energy_joules": (500.0, 0.01),
    "utilization": (0.20, 0.0),
    "memory_bandwidth_utilization": (0.20, 0.0),
    "temperatures": (3.0, 0.0),
    "clocks_hz": (60e6, 0.10),
    "fan_speed": (0.05, 0.0),
    "slice.memory_used_bytes": (256 * MIB, 0.05),
    "slice.utilization": (0.20, 0.0),
    "process.memory_bytes": (64 * MIB, 0.05),
}
#: fields where the two tools measure different things: a mismatch is only a warning
INFORMATIONAL = {"throttle_seconds", "errors"}

DEVICE_FIELDS = ("hw_id", "model", "index", "serial", "driver_version", "firmware_version", "pci_bus_id",
                 "state", "memory_total_bytes", "memory_used_bytes", "power_watts", "power_limit_watts",
                 "energy_joules", "memory_bandwidth_utilization", "fan_speed")
DEVICE_DICTS = ("utilization", "temperatures", "temperature_limits", "clocks_hz", "throttle_seconds", "errors")
SLICE_FIELDS = ("parent_id", "slice_id", "profile", "memory_limit_bytes", "memory_used_bytes", "utilization")


def compare(field: str, nvml: Any, smi: Any) -> dict[str, Any]:
    group = field.split("[", 1)[0]
    row: dict[str, Any] = {"field": field, "nvml": nvml, "nvidia_smi": smi, "diff": None}
    if nvml is None or smi is None:
        row["verdict"] = "warn"
        row["note"] = "only nvml" if smi is None else "only nvidia-smi"
        return row
    if isinstance(nvml, (int, float)) and isinstance(smi, (int, float)) and not isinstance(nvml, bool):
        diff = float(nvml) - float(smi)
        row["diff"] = diff
        abs_tol, rel_tol = TOLERANCE.get(group, (0.0, 0.0))
        ok = abs(diff) <= max(abs_tol, rel_tol * max(abs(nvml), abs(smi)), 1e-9 * max(abs(nvml), 1))
    else:
        ok = nvml == smi
    row["verdict"] = "pass" if ok else ("warn" if group.removeprefix("slice.") in INFORMATIONAL else "FAIL")
    return row


def device_rows(nv: Device | None, smi: Device | None) -> list[dict[str, Any]]:
    rows = []
    for f in DEVICE_FIELDS:
        a, b = getattr(nv, f, None), getattr(smi, f, None)
        if a is not None or b is not None:
            rows.append(compare(f, a, b))
    for f in DEVICE_DICTS:
        da, db = getattr(nv, f, None) or {}, getattr(smi, f, None) or {}
        for key in sorted(set(da) | set(db), key=str):
            label = "/".join(key) if isinstance(key, tuple) else key
            rows.append(compare(f"{f}[{label}]", da.get(key), db.get(key)))
    return rows


def slice_rows(nv: Slice | None, smi: Slice | None) -> list[dict[str, Any]]:
    rows = []
    for f in SLICE_FIELDS:
        a, b = getattr(nv, f, None), getattr(smi, f, None)
        if a is not None or b is not None:
            rows.append(compare(f"slice.{f}", a, b))
    return rows


def _plain(value: Any) -> Any:
    """JSON-friendly copy: tuple dict keys become "a/b"."""
    if isinstance(value, dict):
        return {("/".join(map(str, k)) if isinstance(k, tuple) else str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def process_rows(nv: Any, smi: Any) -> list[dict[str, Any]]:
    return [compare(f"process.{f}", getattr(nv, f, None), getattr(smi, f, None))
            for f in ("parent_id", "memory_bytes")]


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n== {title}")
    width = max([len(r["field"]) for r in rows] + [5])
    print(f"{'field':<{width}}  {'nvml':>24}  {'nvidia-smi':>24}  {'diff':>12}  verdict")
    for r in rows:
        verdict = r["verdict"] + (f" ({r['note']})" if r.get("note") else "")
        print(f"{r['field']:<{width}}  {fmt(r['nvml']):>24}  {fmt(r['nvidia_smi']):>24}  {fmt(r['diff']):>12}  "
              f"{verdict}")


def match(items: list[Any], other: list[Any], *keys: Any) -> list[tuple[Any, Any]]:
    """Pair items by the first key function that matches (default: hw_id); leftovers pair with None."""
    keys = keys or (lambda o: o.hw_id,)
    left = list(other)
    pairs = []
    for item in items:
        found = None
        for key in keys:
            found = next((o for o in left if key(o) == key(item)), None)
            if found is not None:
                left.remove(found)
                break
        pairs.append((item, found))
    return pairs + [(None, o) for o in left]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="OUT", help="also write the result as JSON to OUT")
    ap.add_argument("--nvidia-smi", default="nvidia-smi", help="nvidia-smi binary (default: from PATH)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for nvidia-smi")
    args = ap.parse_args(argv)

    try:
        from exporter.parsers.nvidia_smi_xml import parse
        from exporter.sources.nvml import NvmlSource
    except ImportError as exc:
        print(f"cannot import the exporter modules: {exc}", file=sys.stderr)
        return 2

    src = NvmlSource(xid_events=False, per_process=True, pcie_throughput=False)
    try:
        src.start()
    except Exception as exc:  # noqa: BLE001
        print(f"NVML unavailable: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            proc = subprocess.Popen([args.nvidia_smi, "-q", "-x"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        except OSError as exc:
            print(f"cannot run {args.nvidia_smi}: {exc}", file=sys.stderr)
            return 2
        t0 = time.monotonic()
        snap = src.collect()  # while nvidia-smi is querying the same devices
        collect_seconds = time.monotonic() - t0
        try:
            out, err = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            print(f"nvidia-smi did not finish in {args.timeout}s", file=sys.stderr)
            return 2
    finally:
        src.close()
    if proc.returncode != 0:
        print(f"nvidia-smi -q -x exited {proc.returncode}: {err.strip()}", file=sys.stderr)
        return 2
    parsed = parse(out)

    result: dict[str, Any] = {
        "collect_seconds": collect_seconds,
        "nvml_snapshot": _plain(dataclasses.asdict(snap)),
        "nvml_problems": [{"kind": p.kind, "detail": p.detail} for p in snap.problems],
        "smi_problems": [{"kind": p.kind, "detail": p.detail} for p in parsed.problems],
        "devices": [],
        "slices": [],
        "processes": [],
    }
    count_row = compare("device_count", len(snap.devices), len(parsed.devices))
    for nv, smi in match(snap.devices, parsed.devices):
        rows = device_rows(nv, smi)
        title = f"device {(nv or smi).hw_id} ({(nv or smi).model})"
        print_table(title, rows)
        result["devices"].append({"hw_id": (nv or smi).hw_id, "rows": rows})
    for nv, smi in match(snap.slices, parsed.slices, lambda s: s.hw_id, lambda s: (s.parent_id, s.slice_id)):
        rows = slice_rows(nv, smi)
        print_table(f"slice {(nv or smi).hw_id}", rows)
        result["slices"].append({"hw_id": (nv or smi).hw_id, "rows": rows})
    for nv, smi in match(snap.processes, parsed.processes, lambda p: p.pid):
        rows = process_rows(nv, smi)
        print_table(f"process {(nv or smi).pid}", rows)
        result["processes"].append({"pid": (nv or smi).pid, "rows": rows})

    groups = ("devices", "slices", "processes")
    all_rows = [count_row] + [r for group in groups for d in result[group] for r in d["rows"]]
    summary = {v: sum(1 for r in all_rows if r["verdict"] == v) for v in ("pass", "warn", "FAIL")}
    summary["devices"] = f"nvml={len(snap.devices)} nvidia-smi={len(parsed.devices)}"
    result["summary"] = summary
    for label, problems in (("NVML problems", result["nvml_problems"]), ("parse problems", result["smi_problems"])):
        if problems:
            print(f"\n{label}:")
            for p in problems:
                print(f"  {p['kind']}: {p['detail']}")
    failed = [r["field"] for r in all_rows if r["verdict"] == "FAIL"]
    print(f"\nSUMMARY: {summary['pass']} pass, {summary['warn']} warn, {summary['FAIL']} FAIL "
          f"({summary['devices']}, {len(snap.slices)} NVML slices, collect {collect_seconds:.3f}s)"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
