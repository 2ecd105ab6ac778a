"""Tests for the generic vendor CLI backend (exporter.sources.vendor_cli):
running tools with a timeout, detection by what is on the node, the amdsmi
library path, and the replay wiring proposed for the four CLI formats."""

from __future__ import annotations

import stat
import sys
import time
import types
from pathlib import Path

import pytest

from exporter.model import MIB
from exporter.parsers import hy_smi, npu_smi
from exporter.sources import replay, vendor_cli
from exporter.sources.vendor_cli import BACKENDS, AmdSmiLibrarySource, CliSource, detect_backends, make_source

NPU = "npu-smi-info_910-8npu_24.1.0.txt"


def tool(tmp_path: Path, name: str, body: str) -> str:
    """Write an executable shell script standing in for a vendor tool."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def source(argv, parser=npu_smi.parse, **kw) -> CliSource:
    return CliSource("ascend", "huawei", argv, parser, [], clock=lambda: 123.0, **kw)


def kinds(snap) -> list[str]:
    return [p.kind for p in snap.problems]


# ---------------------------------------------------------------- running tools

def test_runs_tool_and_parses(tmp_path, vendor_smi):
    argv = [tool(tmp_path, "npu-smi", f'[ "$1" = info ] || exit 9\ncat "{vendor_smi / NPU}"\n'), "info"]
    snap = source(argv).collect()
    assert (snap.source, snap.timestamp, snap.problems) == ("ascend", 123.0, [])
    assert len(snap.devices) == 8
    assert snap.devices[0].hw_id == "huawei-0000:c1:00.0" and snap.devices[0].power_watts == 70.0


def test_hanging_tool_is_killed_and_counted(tmp_path):
    pids = tmp_path / "pids"
    argv = [tool(tmp_path, "npu-smi", f'sleep 30 &\necho $! > "{pids}"\necho $$ >> "{pids}"\nwait\n')]
    started = time.monotonic()
    snap = source(argv, timeout=0.3).collect()
    assert time.monotonic() - started < 3
    assert kinds(snap) == ["timeout"]
    assert snap.devices == []
    for pid in (int(p) for p in pids.read_text().split()):  # the tool and its child are gone
        for _ in range(50):
            if not _running(pid):
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"process {pid} survived the timeout")


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan waits for
    init to reap it, which a container's init may never do)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_nonzero_exit_is_tool_error_with_first_stderr_line(tmp_path):
    argv = [tool(tmp_path, "npu-smi", 'echo "dcmi module initialize failed. ret is -8005" >&2\n'
                                      'echo "second line" >&2\nexit 3\n')]
    snap = source(argv).collect()
    assert kinds(snap) == ["tool_error"]
    assert "exit 3: dcmi module initialize failed. ret is -8005" in snap.problems[0].detail


def test_nonzero_exit_still_parses_stdout(tmp_path, vendor_smi):
    argv = [tool(tmp_path, "npu-smi", f'cat "{vendor_smi / NPU}"\necho warn >&2\nexit 1\n')]
    snap = source(argv).collect()
    assert kinds(snap) == ["tool_error"] and len(snap.devices) == 8


def test_garbage_output_is_unknown_format(tmp_path):
    argv = [tool(tmp_path, "npu-smi", 'printf "\\000\\001 garbage %%s\\n" x\n')]
    snap = source(argv).collect()
    assert kinds(snap) == ["unknown_format"]
    assert snap.problems[0].detail.startswith("ascend: ")


def test_empty_output_is_counted(tmp_path):
    snap = source([tool(tmp_path, "npu-smi", "exit 0\n")]).collect()
    assert kinds(snap) == ["unknown_format"] and snap.devices == []


def test_missing_tool(tmp_path):
    snap = source([str(tmp_path / "nope")]).collect()
    assert kinds(snap) == ["tool_missing"]


def test_parser_exception_is_contained(tmp_path):
    def broken(text):
        raise RuntimeError("bug")
    snap = source([tool(tmp_path, "t", "echo hi\n")], parser=broken).collect()
    assert kinds(snap) == ["parse"]


def test_fake_runner_and_extra_commands():
    calls = []

    def runner(argv, timeout):
        calls.append((list(argv), timeout))
        if argv[1:] == ["--showmeminfo", "vram"]:
            return vendor_cli.RunResult(0, "HCU[0] : vram Total Memory (MiB): 65520\n", "")
        return vendor_cli.RunResult(0, "HCU  Temp  AvgPwr  HCU%\n0  50.0C  80.0W  2.5%\n", "")

    src = CliSource("hygon", "hygon", ["hy-smi"], hy_smi.parse, [], timeout=2.0, runner=runner,
                    extra_argv=[["hy-smi", "--showmeminfo", "vram"]])
    snap = src.collect()
    assert snap.problems == []
    assert calls == [(["hy-smi"], 2.0), (["hy-smi", "--showmeminfo", "vram"], 2.0)]
    (dev,) = snap.devices
    assert dev.memory_total_bytes == 65520 * MIB and dev.utilization == {"general": 0.025}


def test_no_device_node_skips_the_tool(tmp_path):
    ran = []
    src = CliSource("ascend", "huawei", ["npu-smi", "info"], npu_smi.parse, ["/dev/davinci[0-9]*"],
                    runner=lambda a, t: ran.append(a), root=tmp_path)
    assert kinds(src.collect()) == ["no_device"] and ran == []


# ---------------------------------------------------------------- detection

def fake_root(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    for rel, content in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if rel.startswith(("/usr/", "/opt/")):
            path.chmod(0o755)  # tools
    return root


def names(root) -> list[str]:
    return [b.name for b in detect_backends(root)]


KFD = {"/dev/kfd": "", "/dev/dri/renderD128": ""}


@pytest.mark.parametrize("files,expected", [
    ({}, []),
    ({"/dev/davinci0": "", "/dev/davinci_manager": ""}, ["ascend"]),
    ({"/dev/davinci_manager": ""}, []),  # the manager node alone is no NPU
    ({"/dev/xpu0": "", "/dev/xpuctrl": ""}, ["kunlunxin"]),
    # Intel's xpu-smi on a node with an Intel GPU: not Kunlunxin
    ({"/usr/bin/xpu-smi": "", "/dev/dri/renderD128": ""}, []),
    ({**KFD, "/sys/class/drm/card0/device/vendor": "0x1002\n"}, ["amd"]),
    ({**KFD, "/sys/class/drm/card0/device/vendor": "0x1d94\n"}, ["hygon"]),
    ({**KFD, "/sys/class/drm/card0/device/vendor": "0x8086\n"}, []),
    # sysfs says Hygon even though an amd-smi binary is installed
    ({**KFD, "/sys/class/drm/card0/device/vendor": "0x1d94\n", "/opt/rocm/bin/amd-smi": ""}, ["hygon"]),
    # no sysfs view (container): the tool present decides
    ({**KFD, "/opt/hyhal/bin/hy-smi": ""}, ["hygon"]),
    ({**KFD, "/opt/rocm/bin/amd-smi": ""}, ["amd"]),
    ({**KFD}, []),
    ({"/sys/class/drm/card0/device/vendor": "0x1002\n"}, []),  # no device nodes: no backend
    ({"/dev/davinci3": "", "/dev/xpu0": ""}, ["ascend", "kunlunxin"]),
])
def test_detect_backends_on_a_fake_root(tmp_path, files, expected):
    assert names(fake_root(tmp_path, files)) == expected


def test_backends_declare_capabilities():
    assert [b.name for b in BACKENDS[:4]] == ["amd", "ascend", "hygon", "kunlunxin"]
    for backend in BACKENDS[:4]:
        assert backend.capabilities["vendor"] == backend.vendor
        assert backend.capabilities["kind"] == backend.kind


def test_make_source_uses_the_tool_found_under_root(tmp_path, vendor_smi):
    root = fake_root(tmp_path, {"/dev/davinci0": "",
                                "/usr/local/Ascend/driver/tools/npu-smi": f'#!/bin/sh\ncat "{vendor_smi / NPU}"\n'})
    (backend,) = detect_backends(root)
    src = make_source(backend, root=root, timeout=5.0)
    assert isinstance(src, CliSource)
    assert src.argv == [str(root / "usr/local/Ascend/driver/tools/npu-smi"), "info"]
    snap = src.collect()
    assert snap.problems == [] and len(snap.devices) == 8


def test_make_source_falls_back_to_cli_without_amdsmi(monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # import fails
    src = make_source(BACKENDS[0], root="/nonexistent")
    assert isinstance(src, CliSource) and src.argv == ["amd-smi", "metric", "--json"]


# ---------------------------------------------------------------- amdsmi library

class _NotSupported(Exception):
    pass


def fake_amdsmi() -> types.ModuleType:
    """A stand-in for the amdsmi module with one MI300X-like GPU."""
    mod = types.ModuleType("amdsmi")
    state = {"init": 0}
    mod.AmdSmiTemperatureType = types.SimpleNamespace(EDGE="edge", HOTSPOT="hotspot", VRAM="vram")
    mod.AmdSmiTemperatureMetric = types.SimpleNamespace(CURRENT="current")
    mod.AmdSmiMemoryType = types.SimpleNamespace(VRAM="vram")
    mod.AmdSmiClkType = types.SimpleNamespace(GFX="gfx", MEM="mem")
    mod.amdsmi_init = lambda: state.__setitem__("init", state["init"] + 1)
    mod.amdsmi_shut_down = lambda: None
    mod.amdsmi_get_processor_handles = lambda: ["h0"]
    mod.amdsmi_get_gpu_device_uuid = lambda h: "1fff74b5-0000-1000-8000-000000000000"
    mod.amdsmi_get_gpu_device_bdf = lambda h: "0000:0c:00.0"
    mod.amdsmi_get_gpu_asic_info = lambda h: {"market_name": "AMD Instinct MI300X", "asic_serial": "0xABCDEF"}
    mod.amdsmi_get_gpu_board_info = lambda h: {"product_name": "N/A"}
    mod.amdsmi_get_gpu_driver_info = lambda h: {"driver_version": "6.8.5"}
    mod.amdsmi_get_gpu_vbios_info = lambda h: {"version": "113-M3000100-102"}
    mod.amdsmi_get_gpu_activity = lambda h: {"gfx_activity": 87, "umc_activity": 12, "mm_activity": "N/A"}
    mod.amdsmi_get_power_info = lambda h: {"socket_power": 640, "gfx_voltage": "N/A"}
    mod.amdsmi_get_power_cap_info = lambda h: {"power_cap": 750_000_000}

    def temp(h, kind, metric):
        if kind == "vram":
            raise _NotSupported("AMDSMI_STATUS_NOT_SUPPORTED")
        return {"edge": 45, "hotspot": 61}[kind]

    mod.amdsmi_get_temp_metric = temp
    mod.amdsmi_get_gpu_memory_total = lambda h, t: 192 * 1024 * MIB
    mod.amdsmi_get_gpu_memory_usage = lambda h, t: 1024 * MIB
    mod.amdsmi_get_clock_info = lambda h, t: {"clk": 2100 if t == "gfx" else 1300}
    mod.amdsmi_get_energy_count = lambda h: {"energy_accumulator": 1_000_000, "counter_resolution": 15.3}

    def ecc(h):
        raise RuntimeError("AMDSMI_STATUS_DRM_ERROR")

    mod.amdsmi_get_gpu_total_ecc_count = ecc
    mod.amdsmi_get_gpu_compute_partition = lambda h: "SPX"
    mod.state = state
    return mod


def test_amdsmi_library_source(monkeypatch):
    lib = fake_amdsmi()
    monkeypatch.setitem(sys.modules, "amdsmi", lib)
    src = make_source(BACKENDS[0], clock=lambda: 5.0)
    assert isinstance(src, AmdSmiLibrarySource)
    src.start()
    snap = src.collect()
    src.close()
    assert kinds(snap) == ["library"]  # the ECC call failed; N/A calls are not errors
    (dev,) = snap.devices
    assert (dev.hw_id, dev.model, dev.pci_bus_id, dev.serial) == (
        "1fff74b5-0000-1000-8000-000000000000", "AMD Instinct MI300X", "0000:0c:00.0", "0xABCDEF")
    assert (dev.driver_version, dev.firmware_version) == ("6.8.5", "113-M3000100-102")
    assert dev.utilization == {"general": 0.87} and dev.memory_bandwidth_utilization == 0.12
    assert dev.power_watts == 640.0 and dev.power_limit_watts == pytest.approx(750.0)
    assert dev.temperatures == {"edge": 45.0, "hotspot": 61.0}
    assert (dev.memory_used_bytes, dev.memory_total_bytes) == (1024 * MIB, 192 * 1024 * MIB)
    assert dev.clocks_hz == {"graphics": 2100e6, "memory": 1300e6}
    assert dev.energy_joules == pytest.approx(15.3)
    assert dev.errors == {}
    assert snap.slices == []


# ---------------------------------------------------------------- replay wiring

def test_replay_of_this_module_s_captures(vendor_smi, tmp_path):
    """The replay source recognises the four vendors' captures by content."""
    captures = tmp_path / "captures"
    captures.mkdir()
    for path in vendor_smi.iterdir():
        if path.name.startswith(("amd-smi", "npu-smi", "hy-smi", "xpu-smi")):
            (captures / path.name).write_bytes(path.read_bytes())
    snap = replay.ReplaySource(captures, clock=lambda: 1.0).collect()
    by_vendor: dict[str, int] = {}
    for dev in snap.devices:
        by_vendor[dev.vendor] = by_vendor.get(dev.vendor, 0) + 1
    # 8 classic + 5 A3 dies; the two hy-smi captures come from different hosts and name DCUs 0-3
    # alike (per-node ids): kept apart (8 + 4) and each clash counted
    assert by_vendor == {"amd": 1, "huawei": 13, "hygon": 12, "kunlunxin": 8}
    assert [p.kind for p in snap.problems] == ["ambiguous_id"] * 4
    assert len(snap.processes) == 3
