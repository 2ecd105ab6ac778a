"""The capability matrix: ``docs/capabilities.md``, generated.

What each backend can report, by vendor, metric family (the device, slice
and process families of :mod:`exporter.schema`, by ``spec.name``) and slice
kind.  Built from the ``CAPABILITIES`` declaration of every module in
:mod:`exporter.parsers` (found with :mod:`pkgutil`, so a new parser appears
without an edit here)::

    CAPABILITIES = {
        "vendor": "cambricon", "kind": "mlu", "tool": "cnmon (default table)",
        "metrics": ["hw_power_watts", ...],   # schema spec names it can fill
        "slices": ["mim", "sriov_vf"],        # accel_slice_type values
        "status": "stable" | "experimental",
        "source": "captures tested: ...",
    }

(a module covering several tools may declare a list of such dicts).

The NVIDIA modules predate these declarations; their rows come from
:data:`NVIDIA_BACKENDS` below, each line justified from the module's code.
A module's own ``CAPABILITIES`` wins over that table.  Modules with neither
are listed as undeclared; names that are not schema families are listed as
errors, so a typo shows in the generated page instead of vanishing.

``generate()`` is pure and deterministic (sorted by vendor and module).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from exporter import schema

DOC_PATH = "docs/capabilities.md"

_DEVICE = [s.name for s in schema.DEVICE_FAMILIES]
_SLICE = [s.name for s in schema.SLICE_FAMILIES]
_PROCESS = [s.name for s in schema.PROCESS_FAMILIES]
_FAMILIES = _DEVICE + _SLICE + _PROCESS
_MIG_SLICE = ["accel_slice_memory_usage_bytes", "accel_slice_memory_limit_bytes", "accel_slice_utilization_ratio",
              "accel_slice_info"]

#: NVIDIA backends, by module.  Justification, per module:
#:
#: * ``exporter.sources.nvml`` (not a parser; NVML): its docstring and
#:   ``_read_device``: utilization gpu/enc/dec and memory (bandwidth),
#:   memory info, PCIe bytes (``io_bytes``), power, enforced limit, total
#:   energy, gpu/memory temperature and slowdown/shutdown thresholds, clocks,
#:   violation counters, volatile ECC and XID events (``errors``,
#:   ``xid_counts``), fan, remapped rows / lost GPU (``state``), MIG slices
#:   with memory (utilization when the driver answers), compute processes.
#: * ``nvidia_smi_xml``: ``_map_gpu`` fills the same minus PCIe bytes and XID
#:   (ECC only); MIG slices with memory and utilization; processes.
#: * ``nvidia_smi_text``: rebuilds a ``-q -x`` tree and calls the same
#:   ``parse_tree``, so the same families as the XML parser.
#: * ``nvidia_smi_csv``: ``parse_query_gpu`` fills utilization, memory,
#:   bandwidth, power, limit, energy, temperatures, clocks, fan, ECC,
#:   clock-event counters, recovery/remap state; no thresholds, no slices;
#:   ``parse_compute_apps`` gives processes.
#: * ``nvidia_smi_list``: identity only: devices and MIG slices with UUID
#:   and profile (the info families).
#: * ``hami_cache`` (read by ``exporter.sources.hami_vgpu``): HAMi-core
#:   shared regions -> ``hami_vgpu`` slices on NVIDIA GPUs with memory
#:   used/limit, core limit, utilization and last-kernel time.
NVIDIA_BACKENDS: dict[str, dict[str, Any]] = {
    "exporter.sources.nvml": {
        "vendor": "nvidia", "kind": "gpu", "tool": "NVML (nvidia-ml-py)",
        "metrics": _DEVICE + _MIG_SLICE + _PROCESS,
        "slices": ["mig"], "status": "stable",
        "source": "tests with a fake pynvml built from the A100 MIG capture, one test on a real driver",
    },
    "exporter.parsers.nvidia_smi_xml": {
        "vendor": "nvidia", "kind": "gpu", "tool": "nvidia-smi -q -x",
        "metrics": [m for m in _DEVICE if m != "hw_gpu_io_bytes_total"] + _MIG_SLICE + _PROCESS,
        "slices": ["mig"], "status": "stable",
        "source": "captures tested: A100-SXM4-40GB MIG (510.47.03), RTX 4070 Laptop (575.51.02)",
    },
    "exporter.parsers.nvidia_smi_text": {
        "vendor": "nvidia", "kind": "gpu", "tool": "nvidia-smi -q",
        "metrics": [m for m in _DEVICE if m != "hw_gpu_io_bytes_total"] + _MIG_SLICE + _PROCESS,
        "slices": ["mig"], "status": "stable", "source": "captures tested: H100 80GB HBM3 (590.48.01)",
    },
    "exporter.parsers.nvidia_smi_csv": {
        "vendor": "nvidia", "kind": "gpu", "tool": "nvidia-smi --query-gpu / --query-compute-apps (CSV)",
        "metrics": [m for m in _DEVICE if m not in ("hw_gpu_io_bytes_total", "hw_temperature_limit_celsius")]
        + _PROCESS,
        "slices": [], "status": "stable",
        "source": "captures tested: H100 (590.48.01), L40S (595.80), H100 MIG compute-apps",
    },
    "exporter.parsers.nvidia_smi_list": {
        "vendor": "nvidia", "kind": "gpu", "tool": "nvidia-smi -L",
        "metrics": ["accel_device_info", "accel_slice_info"],
        "slices": ["mig"], "status": "stable", "source": "captures tested: H100 MIG (590.48.01)",
    },
    "exporter.parsers.hami_cache": {
        "vendor": "nvidia", "kind": "gpu", "tool": "HAMi-core shared region (*.cache)",
        "metrics": list(_SLICE),
        "slices": ["hami_vgpu"], "status": "stable",
        "source": "layouts tested: v1.1, v1.2, broken interim 1.1, v0, pre-utilisation (gcc-compiled structs)",
    },
}

#: not parser modules, but backends all the same
_EXTRA_MODULES = ("exporter.sources.nvml",)


def _as_list(caps: Any) -> list[dict[str, Any]]:
    if isinstance(caps, dict):
        return [caps]
    if isinstance(caps, (list, tuple)):
        return [c for c in caps if isinstance(c, dict)]
    return []


def discover() -> tuple[list[dict[str, Any]], list[str]]:
    """Every backend declaration, and the parser modules that declare none.

    Returns ``(backends, undeclared)``: each backend is its declaration plus
    ``"module"``; sorted by (vendor, module, tool).  A module that fails to
    import is listed as undeclared with the exception's class name.
    """
    import exporter.parsers as parsers

    backends: list[dict[str, Any]] = []
    undeclared: list[str] = []
    names = sorted(f"{parsers.__name__}.{info.name}" for info in pkgutil.iter_modules(parsers.__path__)
                   if not info.name.startswith("_"))
    for name in list(_EXTRA_MODULES) + names:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken module must not break the docs build
            undeclared.append(f"{name} (import failed: {type(exc).__name__})")
            continue
        declared = _as_list(getattr(module, "CAPABILITIES", None)) or _as_list(NVIDIA_BACKENDS.get(name))
        if not declared:
            undeclared.append(name)
            continue
        for caps in declared:
            backends.append({**caps, "module": name})
    backends.sort(key=lambda b: (str(b.get("vendor", "")), b["module"], str(b.get("tool", ""))))
    return backends, sorted(undeclared)


def _experimental(backend: dict[str, Any]) -> bool:
    return str(backend.get("status", "stable")).lower() != "stable"


def _cell(backends: list[dict[str, Any]]) -> str:
    if not backends:
        return ""
    return "✔" if any(not _experimental(b) for b in backends) else "✔ᵉ"


def render(backends: list[dict[str, Any]], undeclared: list[str]) -> str:
    """The Markdown page for ``backends`` (see :func:`discover`)."""
    vendors = sorted({str(b.get("vendor", "?")) for b in backends})
    out = [
        "# Capability matrix",
        "",
        "Generated from the `CAPABILITIES` declaration of every backend module (`exporter/parsers/*`, plus",
        "`exporter/sources/nvml.py`; NVIDIA rows from the table in `exporter/capabilities.py`) by",
        "`make generate`; do not edit by hand. Metric names are those of [the metric reference](metrics.md).",
        "",
        "**Legend.** ✔ = reported by at least one stable backend of the vendor; ✔ᵉ = reported only by an",
        "*experimental* backend (written from documentation, no real capture tested yet); blank = not",
        "reported. `hw_status` is emitted for every device (`ok` unless a source says otherwise); ✔ there means",
        "the tool reports a health or state signal. `accel_device_info` is emitted for every device.",
        "",
        "## Device and process metrics by vendor",
        "",
        "| Metric family | " + " | ".join(f"`{v}`" for v in vendors) + " |",
        "|---|" + "---|" * len(vendors),
    ]
    for family in _DEVICE + _PROCESS:
        cells = [_cell([b for b in backends if b.get("vendor") == v and family in b.get("metrics", [])])
                 for v in vendors]
        out.append(f"| `{family}` | " + " | ".join(cells) + " |")

    out += [
        "",
        "## Slice kinds and slice metrics by vendor",
        "",
        "Slices are separate series (`accel_slice_*`, linked to their device by `hw_parent`).",
        "",
        "| Vendor | Slice kind | " + " | ".join(f"`{f}`" for f in _SLICE) + " |",
        "|---|---|" + "---|" * len(_SLICE),
    ]
    pairs = sorted({(str(b.get("vendor")), str(k)) for b in backends for k in b.get("slices", [])})
    for vendor, kind in pairs:
        having = [b for b in backends if b.get("vendor") == vendor and kind in b.get("slices", [])]
        cells = [_cell([b for b in having if f in b.get("metrics", [])]) for f in _SLICE]
        out.append(f"| `{vendor}` | `{kind}` | " + " | ".join(cells) + " |")
    without = [v for v in vendors if v not in {p[0] for p in pairs}]
    if without:
        out += ["", "No slices from: " + ", ".join(f"`{v}`" for v in without) + "."]

    out += [
        "",
        "## Backends",
        "",
        "| Vendor | Kind | Tool | Module | Status | Slice kinds | Tested against |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in backends:
        slices = ", ".join(f"`{k}`" for k in b.get("slices", [])) or "—"
        status = str(b.get("status", "stable"))
        if _experimental(b):
            status = f"**{status}**"
        source = str(b.get("source", "")).replace("|", "\\|")
        out.append(f"| `{b.get('vendor')}` | `{b.get('kind')}` | {b.get('tool')} | `{b['module']}` | {status} | "
                   f"{slices} | {source} |")

    unknown = sorted({(b["module"], m) for b in backends for m in b.get("metrics", []) if m not in _FAMILIES})
    if unknown:
        out += ["", "## Declared names that are not schema families", ""]
        out += [f"- `{module}`: `{name}`" for module, name in unknown]
    if undeclared:
        out += ["", "## Parser modules without a declaration", ""]
        out += [f"- `{name}`" for name in undeclared]
    return "\n".join(out) + "\n"


def generate() -> dict[str, str]:
    """``{"docs/capabilities.md": text}`` for ``make generate``."""
    backends, undeclared = discover()
    return {DOC_PATH: render(backends, undeclared)}
