"""The capability matrix (``exporter.capabilities``) and the declarations it reads."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types

import pytest

import exporter.parsers
from exporter import capabilities, schema
from exporter.model import Snapshot
from exporter.parsers import cnmon, ixsmi, mthreads_gmi, mx_smi
from exporter.render import RenderOptions, render_families

MINE = {cnmon: "cambricon", ixsmi: "iluvatar", mx_smi: "metax", mthreads_gmi: "moorethreads"}
FAMILIES = {s.name for s in schema.DEVICE_FAMILIES + schema.SLICE_FAMILIES + schema.PROCESS_FAMILIES}
SLICE_TYPES = {"mig", "hami_vgpu", "partition", "vnpu", "vdcu", "mim", "smlu", "sriov_vf", "sgpu", "timeslice"}


def parser_modules() -> list[str]:
    return sorted(f"exporter.parsers.{m.name}" for m in pkgutil.iter_modules(exporter.parsers.__path__)
                  if not m.name.startswith("_"))


def test_generate_is_deterministic_and_only_the_doc():
    first, second = capabilities.generate(), capabilities.generate()
    assert first == second
    assert list(first) == ["docs/capabilities.md"]
    assert first["docs/capabilities.md"].endswith("\n")


def test_every_parser_module_and_family_is_listed():
    text = capabilities.generate()["docs/capabilities.md"]
    for module in parser_modules() + ["exporter.sources.nvml"]:
        assert f"`{module}`" in text, module
    for family in FAMILIES:
        assert f"`{family}`" in text, family
    backends, undeclared = capabilities.discover()
    listed = {b["module"] for b in backends} | {u.split(" ")[0] for u in undeclared}
    assert set(parser_modules()) <= listed


def test_my_declarations_are_valid():
    for module, vendor in MINE.items():
        caps = module.CAPABILITIES
        assert set(caps) == {"vendor", "kind", "tool", "metrics", "slices", "status", "source"}
        assert caps["vendor"] == vendor and caps["kind"] == module.KIND
        assert set(caps["metrics"]) <= FAMILIES, set(caps["metrics"]) - FAMILIES
        assert set(caps["slices"]) <= SLICE_TYPES
        assert caps["status"] in ("stable", "experimental")
        assert caps["source"].startswith("captures tested:")
    assert cnmon.CAPABILITIES["kind"] == "mlu"
    assert mthreads_gmi.CAPABILITIES["status"] == "experimental"
    for name, caps in capabilities.NVIDIA_BACKENDS.items():
        assert set(caps["metrics"]) <= FAMILIES, name
        assert set(caps["slices"]) <= SLICE_TYPES, name


def test_nvidia_rows_come_from_the_table_and_every_module_is_importable():
    backends, undeclared = capabilities.discover()
    by_module = {b["module"]: b for b in backends}
    for name in capabilities.NVIDIA_BACKENDS:
        module = importlib.import_module(name)
        if getattr(module, "CAPABILITIES", None) is None:
            assert by_module[name]["vendor"] == "nvidia"
    assert not [u for u in undeclared if "import failed" in u]


def test_experimental_marking():
    text = capabilities.generate()["docs/capabilities.md"]
    row = next(line for line in text.splitlines() if "`exporter.parsers.mthreads_gmi`" in line)
    assert "**experimental**" in row
    util = next(line for line in text.splitlines() if line.startswith("| `hw_gpu_utilization_ratio` |"))
    header = next(line for line in text.splitlines() if line.startswith("| Metric family |"))
    cells = dict(zip([c.strip() for c in header.split("|")[1:-1]], [c.strip() for c in util.split("|")[1:-1]]))
    assert cells["`moorethreads`"] == "✔ᵉ"
    assert cells["`cambricon`"] == cells["`iluvatar`"] == cells["`metax`"] == cells["`nvidia`"] == "✔"


def test_render_marks_mixed_vendors_typos_and_undeclared():
    backends = [
        {"module": "m.a", "vendor": "acme", "kind": "gpu", "tool": "a", "metrics": ["hw_power_watts"],
         "slices": ["sgpu"], "status": "experimental", "source": "x"},
        {"module": "m.b", "vendor": "acme", "kind": "gpu", "tool": "b", "metrics": ["hw_power_watts", "hw_pwr"],
         "slices": [], "status": "stable", "source": "y|z"},
    ]
    text = capabilities.render(backends, ["m.c"])
    assert "| `hw_power_watts` | ✔ |" in text  # one stable backend is enough
    assert "| `acme` | `sgpu` |" in text
    assert "- `m.b`: `hw_pwr`" in text
    assert "- `m.c`" in text
    assert "y\\|z" in text


def test_a_module_without_declaration_is_listed(monkeypatch):
    real = pkgutil.iter_modules

    def fake_iter(path):
        yield from real(path)
        yield pkgutil.ModuleInfo(None, "zz_undeclared", False)

    monkeypatch.setattr(capabilities.pkgutil, "iter_modules", fake_iter)
    name = "exporter.parsers.zz_undeclared"
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    text = capabilities.generate()["docs/capabilities.md"]
    assert "## Parser modules without a declaration" in text
    assert "- `exporter.parsers.zz_undeclared`" in text


# ------------------------------------------------ declarations match what the parsers produce

_SPEC_BY_FAMILY = {s.family_name: s.name for s in schema.ALL}


def emitted(parsed) -> set[str]:
    snap = Snapshot(source="t", timestamp=0.0, devices=parsed.devices, slices=parsed.slices,
                    processes=parsed.processes)
    names = {_SPEC_BY_FAMILY[f.name] for f in render_families([snap], [], RenderOptions(per_process=True))}
    return names & FAMILIES


@pytest.mark.parametrize(("module", "prefix"), [(cnmon, "cnmon_"), (ixsmi, "ixsmi_"), (mx_smi, "mx-smi")])
def test_declared_covers_what_the_captures_emit(vendor_smi, module, prefix):
    declared = set(module.CAPABILITIES["metrics"]) | {"hw_status"}  # hw_status is emitted for every device
    seen: set[str] = set()
    for path in sorted(vendor_smi.glob(f"{prefix}*")):
        names = emitted(module.parse(path.read_text()))
        assert names <= declared, (path.name, names - declared)
        seen |= names
    assert "hw_power_watts" in seen and "accel_device_info" in seen


def test_declared_covers_synthetic_moorethreads():
    from tests.exporter.test_vendor_moorethreads import TEXT

    names = emitted(mthreads_gmi.parse(TEXT))
    assert names <= set(mthreads_gmi.CAPABILITIES["metrics"]) | {"hw_status"}
    assert {"hw_power_watts", "accel_clock_frequency_hertz", "hw_gpu_memory_usage_bytes"} <= names
