"""Vendor backends that run a vendor CLI (or library) and parse its output.

Three parts:

* :class:`CliSource`: a generic source that runs one vendor tool (plus
  optional extra commands whose output is appended) with a timeout and
  parses the text with a pure parser from :mod:`exporter.parsers`.  A tool
  that hangs is killed (its whole process group) and counted as a
  ``timeout`` Problem; a non-zero exit is a ``tool_error`` Problem with the
  first stderr line (stdout, if any, is still parsed); a tool that is not
  installed is ``tool_missing``; output the parser does not recognise is
  its ``unknown_format``.  Nothing raises out of :meth:`CliSource.collect`.
* :data:`BACKENDS`: one :class:`Backend` descriptor per vendor (AMD,
  Huawei Ascend, Hygon DCU, Kunlunxin XPU here; more are appended by other
  modules), with the detection rule, the command, the parser and the
  capability declaration.
* :func:`detect_backends`: which backends apply to a node, judged **by
  what is on the node** (device nodes, PCI vendor ids in sysfs), never by a
  binary's name alone: Kunlunxin and Intel both ship ``xpu-smi``, and AMD
  and Hygon both use ``/dev/kfd`` + ``/dev/dri/renderD*``.  ``root`` lets
  tests point it at a fake tree.

Detection rule of a backend (:meth:`Backend.matches`):

1. every glob in ``device_globs`` matches at least one path under ``root``
   (AMD/Hygon: ``/dev/kfd`` and ``/dev/dri/renderD*``; Ascend:
   ``/dev/davinci<N>``; Kunlunxin: ``/dev/xpu<N>``);
2. when the backend lists ``pci_vendor_ids`` (needed only where device
   nodes are shared: AMD ``0x1002``, Hygon ``0x1d94``), the vendor files
   under ``sysfs_vendor_glob`` must contain one of them; if sysfs shows no
   vendor file at all (a container without ``/sys``), the backend's tool
   must be found instead (``amd-smi`` vs ``hy-smi``).

:func:`make_source` builds the source for a detected backend: the vendor's
Python library when the backend names one that imports and initialises
(``amdsmi`` for AMD, an optional dependency), else a :class:`CliSource`.
"""

from __future__ import annotations

import glob
import importlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.model import Parsed, Problem, Snapshot
from exporter.parsers import amd_smi, cnmon, hy_smi, ixsmi, mthreads_gmi, mx_smi, npu_smi, xpu_smi

#: Characters of a tool's stdout kept at most (larger output is cut and counted).
MAX_OUTPUT_CHARS = 16 * 1024 * 1024


# ----------------------------------------------------------------------------
# Running a tool
# ----------------------------------------------------------------------------


@dataclass(slots=True)
class RunResult:
    """What one run of a tool gave: exit status and decoded output."""

    returncode: int
    stdout: str
    stderr: str


class ToolTimeout(Exception):
    """The tool ran past its timeout (it has been killed)."""


#: A runner: ``runner(argv, timeout_seconds) -> RunResult``; raises
#: :class:`ToolTimeout` on timeout and ``OSError`` (``FileNotFoundError``,
#: ``PermissionError``) when the tool cannot be started.
Runner = Callable[[Sequence[str], float], RunResult]


def subprocess_runner(argv: Sequence[str], timeout: float) -> RunResult:
    """Run ``argv`` in its own process group with ``LC_ALL=C``; kill the
    group when it runs past ``timeout`` seconds and raise :class:`ToolTimeout`."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:  # a grandchild still holds the pipes: give up on them
            pass
        raise ToolTimeout(f"{argv[0]} ran past {timeout:g} s") from None
    return RunResult(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the process group this runner created for ``proc`` (and only it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass


# ----------------------------------------------------------------------------
# The generic CLI source
# ----------------------------------------------------------------------------


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _matches(root: str | Path, pattern: str) -> list[str]:
    return glob.glob(os.path.join(str(root), pattern.lstrip("/")))


class CliSource:
    """A source that runs a vendor CLI and parses its output.

    ``argv`` is the command; ``extra_argv`` are further commands whose
    stdout is appended (for detail flags, e.g. ``hy-smi --showmeminfo
    vram``), each with the same ``timeout``.  ``parser`` turns the text into
    a :class:`Parsed`.  ``device_globs`` (absolute paths with globs, read
    under ``root``) must all match before the tool is run; otherwise the
    cycle reports a ``no_device`` Problem (the driver went away) without
    running anything.  ``runner`` is injectable for tests.
    """

    def __init__(self, name: str, vendor: str, argv: list[str], parser: Callable[[str], Parsed],
                 device_globs: list[str], timeout: float = 5.0, runner: Runner = subprocess_runner, *,
                 extra_argv: Sequence[Sequence[str]] = (), root: str | Path = "/",
                 clock: Callable[[], float] = time.time) -> None:
        if not argv:
            raise ValueError("CliSource needs a command")
        self.name = name
        self.vendor = vendor
        self.argv = list(argv)
        self.extra_argv = [list(a) for a in extra_argv]
        self.parser = parser
        self.device_globs = list(device_globs)
        self.timeout = timeout
        self.runner = runner
        self.root = root
        self._clock = clock

    def start(self) -> None:
        """Nothing to start: the tool runs on each collection."""

    def close(self) -> None:
        """Nothing to release."""

    def collect(self) -> Snapshot:
        """Run the tool(s), parse, return one Snapshot; never raises."""
        problems: list[Problem] = []
        missing = [g for g in self.device_globs if not _matches(self.root, g)]
        if missing:
            problems.append(Problem(kind="no_device", detail=f"{self.name}: no {', '.join(missing)} on the node"))
            return self._snapshot(Parsed(), problems)
        texts = []
        for argv in [self.argv, *self.extra_argv]:
            text = self._run(argv, problems)
            if text:
                texts.append(text)
            elif argv is self.argv and problems and problems[-1].kind in ("timeout", "tool_missing"):
                break  # the main command failed outright: do not pile up more runs
        if not texts:
            return self._snapshot(Parsed(), problems)
        text = "\n".join(texts)
        try:
            parsed = self.parser(text)
        except Exception as err:  # a parser bug must not take the scrape down
            problems.append(Problem(kind="parse", detail=f"{self.name}: parser failed: {err!r}"))
            parsed = Parsed()
        problems.extend(Problem(p.kind, f"{self.name}: {p.detail}") for p in parsed.problems)
        return self._snapshot(parsed, problems)

    def _run(self, argv: list[str], problems: list[Problem]) -> str:
        command = " ".join(argv)
        try:
            result = self.runner(argv, self.timeout)
        except ToolTimeout:
            problems.append(Problem(kind="timeout", detail=f"{command}: no answer within {self.timeout:g} s; killed"))
            return ""
        except FileNotFoundError:
            problems.append(Problem(kind="tool_missing", detail=f"{command}: {argv[0]} not found"))
            return ""
        except OSError as err:
            problems.append(Problem(kind="tool_error", detail=f"{command}: cannot run: {err.strerror or err}"))
            return ""
        if result.returncode != 0:
            line = _first_line(result.stderr) or _first_line(result.stdout) or "(no output)"
            problems.append(Problem(kind="tool_error", detail=f"{command}: exit {result.returncode}: {line}"))
        stdout = result.stdout
        if result.returncode == 0 and not stdout.strip():
            problems.append(Problem(kind="unknown_format", detail=f"{command}: no output"))
        if len(stdout) > MAX_OUTPUT_CHARS:
            problems.append(Problem(kind="too_large", detail=f"{command}: output cut at {MAX_OUTPUT_CHARS} chars"))
            stdout = stdout[:MAX_OUTPUT_CHARS]
        return stdout

    def _snapshot(self, parsed: Parsed, problems: list[Problem]) -> Snapshot:
        return Snapshot(source=self.name, timestamp=self._clock(), devices=parsed.devices, slices=parsed.slices,
                        processes=parsed.processes, problems=problems)


# ----------------------------------------------------------------------------
# Backend descriptors and detection
# ----------------------------------------------------------------------------

#: Directories searched for a tool under ``root`` when ``root`` is not ``/``
#: (for ``/`` the process ``PATH`` is searched too).
STANDARD_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


@dataclass(frozen=True, slots=True)
class Backend:
    """One vendor backend: how to recognise its hardware and read it.

    ``name``: the source name (``accel_source`` label), e.g. ``amd``.
    ``vendor`` / ``kind``: as on the devices it reports.
    ``argv``: the command run by :class:`CliSource`; ``extra_argv``: further
    commands whose output is appended.
    ``parser`` / ``detector``: the pure parser and content detector of the
    tool's output (the same pair the replay source uses).
    ``device_globs``: absolute globs that must all match (see module doc).
    ``pci_vendor_ids`` / ``sysfs_vendor_glob``: optional discriminator read
    from sysfs (lower-case ``0x....``).
    ``tool_dirs``: vendor install directories searched for ``argv[0]``
    besides the standard ones.
    ``library``: a Python module preferred over the CLI when it imports.
    ``capabilities``: the parser's ``CAPABILITIES`` declaration.
    """

    name: str
    vendor: str
    kind: str
    argv: tuple[str, ...]
    parser: Callable[[str], Parsed]
    detector: Callable[[str], bool]
    device_globs: tuple[str, ...]
    pci_vendor_ids: tuple[str, ...] = ()
    sysfs_vendor_glob: str = "/sys/bus/pci/devices/*/vendor"
    tool_dirs: tuple[str, ...] = ()
    extra_argv: tuple[tuple[str, ...], ...] = ()
    library: str | None = None
    capabilities: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def tool(self) -> str:
        return self.argv[0]

    def find_tool(self, root: str | Path = "/") -> str | None:
        """Path of ``argv[0]`` on the node under ``root``, or ``None``."""
        dirs = [os.path.join(str(root), d.lstrip("/")) for d in (*self.tool_dirs, *STANDARD_BIN_DIRS)]
        if str(root) in ("/", ""):
            dirs = [*dirs, *os.environ.get("PATH", "").split(os.pathsep)]
        return shutil.which(self.tool, path=os.pathsep.join(d for d in dirs if d))

    def pci_vendors(self, root: str | Path = "/") -> set[str] | None:
        """PCI vendor ids seen under ``sysfs_vendor_glob`` (``None``: no sysfs view)."""
        files = _matches(root, self.sysfs_vendor_glob)
        if not files:
            return None
        seen = set()
        for path in files:
            try:
                seen.add(Path(path).read_text(encoding="ascii", errors="replace").strip().lower())
            except OSError:
                continue
        return seen

    def matches(self, root: str | Path = "/") -> bool:
        """The detection rule (see the module docstring)."""
        if not all(_matches(root, g) for g in self.device_globs):
            return False
        if not self.pci_vendor_ids:
            return True
        vendors = self.pci_vendors(root)
        if vendors is None:
            return self.find_tool(root) is not None
        return bool(vendors & {v.lower() for v in self.pci_vendor_ids})


_DRM_VENDOR = "/sys/class/drm/*/device/vendor"

BACKENDS: list[Backend] = [
    Backend(
        name="amd", vendor="amd", kind="gpu", argv=("amd-smi", "metric", "--json"),
        parser=amd_smi.parse, detector=amd_smi.detect,
        device_globs=("/dev/kfd", "/dev/dri/renderD*"), pci_vendor_ids=("0x1002",),
        sysfs_vendor_glob=_DRM_VENDOR, tool_dirs=("/opt/rocm/bin",), library="amdsmi",
        capabilities=amd_smi.CAPABILITIES,
    ),
    Backend(
        name="ascend", vendor="huawei", kind="npu", argv=("npu-smi", "info"),
        parser=npu_smi.parse, detector=npu_smi.detect,
        device_globs=("/dev/davinci[0-9]*",),
        tool_dirs=("/usr/local/sbin", "/usr/local/Ascend/driver/tools"),
        capabilities=npu_smi.CAPABILITIES,
    ),
    Backend(
        name="hygon", vendor="hygon", kind="dcu", argv=("hy-smi",),
        parser=hy_smi.parse, detector=hy_smi.detect,
        device_globs=("/dev/kfd", "/dev/dri/renderD*"), pci_vendor_ids=("0x1d94",),
        sysfs_vendor_glob=_DRM_VENDOR, tool_dirs=("/opt/hyhal/bin", "/opt/dtk/bin"),
        extra_argv=(("hy-smi", "--showmeminfo", "vram"),),
        capabilities=hy_smi.CAPABILITIES,
    ),
    Backend(
        name="kunlunxin", vendor="kunlunxin", kind="xpu", argv=("xpu-smi",),
        parser=xpu_smi.parse, detector=xpu_smi.detect,
        device_globs=("/dev/xpu[0-9]*",), tool_dirs=("/usr/local/xpu/bin",),
        capabilities=xpu_smi.CAPABILITIES,
    ),
    # device nodes below come from the vendors' public container setup docs; tool_dirs are the usual
    # install prefixes (not verified on hardware)
    Backend(
        name="cambricon", vendor="cambricon", kind="mlu", argv=("cnmon",), parser=cnmon.parse,
        detector=cnmon.detect, device_globs=("/dev/cambricon_dev[0-9]*",), tool_dirs=("/usr/local/neuware/bin",),
        capabilities=cnmon.CAPABILITIES,
    ),
    Backend(
        name="iluvatar", vendor="iluvatar", kind="gpu", argv=("ixsmi",), parser=ixsmi.parse,
        detector=ixsmi.detect, device_globs=("/dev/iluvatar[0-9]*",), tool_dirs=("/usr/local/corex/bin",),
        capabilities=ixsmi.CAPABILITIES,
    ),
    Backend(
        name="metax", vendor="metax", kind="gpu", argv=("mx-smi",), parser=mx_smi.parse, detector=mx_smi.detect,
        device_globs=("/dev/mxcd",), tool_dirs=("/opt/mxdriver/bin", "/opt/maca/bin"),
        extra_argv=(("mx-smi", "dmon", "--show-temperature", "--show-board-power", "--show-usage",
                     "--show-memory", "--total-memory", "--show-bdf", "--format", "csv", "-c", "1"),),
        capabilities=mx_smi.CAPABILITIES,
    ),
    Backend(
        name="moorethreads", vendor="moorethreads", kind="gpu", argv=("mthreads-gmi", "-q"),
        parser=mthreads_gmi.parse, detector=mthreads_gmi.detect, device_globs=("/dev/mtgpu.[0-9]*",),
        capabilities=mthreads_gmi.CAPABILITIES,
    ),
]


def detect_backends(root: str | Path = "/") -> list[Backend]:
    """The backends of :data:`BACKENDS` whose hardware is on the node under ``root``."""
    found = []
    for backend in BACKENDS:
        try:
            if backend.matches(root):
                found.append(backend)
        except OSError:
            continue
    return found


def make_source(backend: Backend, *, root: str | Path = "/", timeout: float = 5.0,
                runner: Runner = subprocess_runner, prefer_library: bool = True,
                clock: Callable[[], float] = time.time) -> Any:
    """The source for ``backend``: its Python library when it imports and
    initialises (only ``amdsmi`` today), else a :class:`CliSource` running
    the tool found on the node (or its bare name, which then reports
    ``tool_missing`` each cycle)."""
    if prefer_library and backend.library:
        lib = _load_library(backend.library)
        if lib is not None and backend.library == "amdsmi":
            return AmdSmiLibrarySource(lib, name=backend.name, clock=clock)
    tool = backend.find_tool(root) or backend.tool
    argv = [tool, *backend.argv[1:]]
    extra = [[tool if a[0] == backend.tool else a[0], *a[1:]] for a in backend.extra_argv]
    return CliSource(backend.name, backend.vendor, argv, backend.parser, list(backend.device_globs),
                     timeout=timeout, runner=runner, extra_argv=extra, root=root, clock=clock)


def _load_library(name: str) -> Any | None:
    """Import and probe-initialise an optional vendor library; ``None`` if unusable."""
    try:
        lib = importlib.import_module(name)
        lib.amdsmi_init()
        lib.amdsmi_shut_down()
    except Exception:  # not installed, no native library, no driver: use the CLI
        return None
    return lib


# ----------------------------------------------------------------------------
# amdsmi (AMD's Python binding, optional)
# ----------------------------------------------------------------------------


class AmdSmiLibrarySource:
    """AMD backend through the ``amdsmi`` Python library (experimental).

    Each cycle builds, per processor handle, an entry in the ``amd-smi
    metric --json`` vocabulary (values as ``{"value", "unit"}`` objects)
    from library calls and maps it with :func:`amd_smi.parse_entries`, so
    the units and partition rules are the parser's.  Unlike the CLI's
    ``metric`` output it also has the UUID, bus id, product name, serial,
    driver and VBIOS versions.  A call that raises "not supported" leaves
    its fields unreported; any other failure is a ``library`` Problem.
    """

    def __init__(self, lib: Any, *, name: str = "amd", clock: Callable[[], float] = time.time) -> None:
        self.lib = lib
        self.name = name
        self._clock = clock
        self._started = False

    def start(self) -> None:
        self.lib.amdsmi_init()
        self._started = True

    def close(self) -> None:
        if self._started:
            try:
                self.lib.amdsmi_shut_down()
            finally:
                self._started = False

    def collect(self) -> Snapshot:
        problems: list[Problem] = []
        if not self._started:
            self.start()
        handles = self._call(problems, "amdsmi_get_processor_handles") or []
        entries = [self._entry(i, h, problems) for i, h in enumerate(handles)]
        parsed = amd_smi.parse_entries(entries)
        problems.extend(parsed.problems)
        return Snapshot(source=self.name, timestamp=self._clock(), devices=parsed.devices, slices=parsed.slices,
                        processes=parsed.processes, problems=problems)

    def _call(self, problems: list[Problem], fn: str, *args: Any) -> Any:
        try:
            return getattr(self.lib, fn)(*args)
        except Exception as err:  # amdsmi raises AmdSmiLibraryException for N/A values
            text = str(err).lower()
            if "not_supported" not in text and "not supported" not in text and not isinstance(err, AttributeError):
                problems.append(Problem(kind="library", detail=f"amdsmi.{fn}: {err}"))
            return None

    def _enum(self, enum: str, member: str) -> Any:
        return getattr(getattr(self.lib, enum, None), member, None)

    def _entry(self, index: int, h: Any, problems: list[Problem]) -> dict[str, Any]:
        call = lambda fn, *a: self._call(problems, fn, h, *a)  # noqa: E731
        obj = lambda v, u: {"value": v, "unit": u} if isinstance(v, (int, float)) else v  # noqa: E731
        entry: dict[str, Any] = {"gpu": index}
        entry["uuid"] = call("amdsmi_get_gpu_device_uuid")
        entry["bdf"] = call("amdsmi_get_gpu_device_bdf")
        entry["asic"] = call("amdsmi_get_gpu_asic_info") or {}
        entry["board"] = call("amdsmi_get_gpu_board_info") or {}
        driver = call("amdsmi_get_gpu_driver_info") or {}
        entry["driver"] = {"version": driver.get("driver_version")}
        entry["vbios"] = call("amdsmi_get_gpu_vbios_info") or {}
        activity = call("amdsmi_get_gpu_activity") or {}
        entry["usage"] = {k: obj(activity.get(k), "%") for k in ("gfx_activity", "umc_activity")}
        power = call("amdsmi_get_power_info") or {}
        cap = call("amdsmi_get_power_cap_info") or {}
        entry["power"] = {
            "socket_power": obj(power.get("socket_power", power.get("current_socket_power",
                                                                     power.get("average_socket_power"))), "W"),
            "power_limit": obj(cap.get("power_cap"), "uW"),
        }
        temps = {}
        for sensor, member in (("edge", "EDGE"), ("hotspot", "HOTSPOT"), ("mem", "VRAM")):
            kind, metric = self._enum("AmdSmiTemperatureType", member), self._enum("AmdSmiTemperatureMetric", "CURRENT")
            if kind is not None and metric is not None:
                temps[sensor] = obj(call("amdsmi_get_temp_metric", kind, metric), "C")
        entry["temperature"] = temps
        vram = self._enum("AmdSmiMemoryType", "VRAM")
        if vram is not None:
            entry["mem_usage"] = {"total_vram": obj(call("amdsmi_get_gpu_memory_total", vram), "B"),
                                  "used_vram": obj(call("amdsmi_get_gpu_memory_usage", vram), "B")}
        clocks = {}
        for key, member in (("gfx_0", "GFX"), ("mem_0", "MEM")):
            clk_type = self._enum("AmdSmiClkType", member)
            info = call("amdsmi_get_clock_info", clk_type) if clk_type is not None else None
            if isinstance(info, dict):
                clocks[key] = {"clk": obj(info.get("clk", info.get("cur_clk")), "MHz")}
        entry["clock"] = clocks
        energy = call("amdsmi_get_energy_count") or {}
        ticks = energy.get("energy_accumulator", energy.get("power"))
        resolution = energy.get("counter_resolution")
        if isinstance(ticks, (int, float)) and isinstance(resolution, (int, float)):
            entry["energy"] = {"total_energy_consumption": {"value": ticks * resolution, "unit": "uJ"}}
        ecc = call("amdsmi_get_gpu_total_ecc_count") or {}
        entry["ecc"] = {"total_correctable_count": ecc.get("correctable_count"),
                        "total_uncorrectable_count": ecc.get("uncorrectable_count")}
        compute = call("amdsmi_get_gpu_compute_partition")
        if isinstance(compute, str) and compute.strip().upper() not in ("", "SPX", "N/A"):
            kfd = call("amdsmi_get_gpu_kfd_info") or {}
            if kfd.get("current_partition_id") is not None:
                entry["partition"] = {"partition_id": kfd["current_partition_id"], "compute_partition": compute,
                                      "memory_partition": call("amdsmi_get_gpu_memory_partition")}
        return entry
