"""HAMi vGPU source: per-container slices from HAMi-core shared-region files.

HAMi's device plugin bind-mounts ``<root>/<podUID>_<containerName>/`` into
each vGPU container; HAMi-core (``src/multiprocess/multiprocess_memory_limit.h``)
keeps its shared region there as ``<uuid4>.cache``.  The default root is the
Helm default ``devicePlugin.monitor.ctrPath`` (``/usr/local/vgpu/containers``).
This source reads those files read-only with :mod:`exporter.parsers.hami_cache`
(shared-region layouts 1.2, 1.1, the broken interim 1.1 of HAMi v2.8.1, v0 and
pre-utilisation; see ``docs/formats.md``) and emits one
:class:`~exporter.model.Slice` per container x virtual device, the data HAMi's
own vGPU monitor exports as ``hami_vgpu_*`` / ``hami_container_*``.

Per slice (``slice_type="hami_vgpu"``, ``vendor="nvidia"``, ``kind="gpu"``):

* ``parent_id``: the GPU UUID stored in the file (``uuids[d]``);
* ``slice_id``: ``<podUID>/<container>/<d>``; ``hw_id``:
  ``hami-vgpu-<podUID>-<container>-<d>``;
* ``memory_used_bytes``: sum of ``used[d].total`` over active process slots
  (what HAMi-core tracked, not NVML);
* ``memory_limit_bytes``: ``limit[d]``; ``None`` when 0 (HAMi-core enforces
  no limit then);
* ``core_limit``: ``sm_limit[d] / 100``; an ``sm_limit`` of 0 means
  *unlimited* and is reported as ``1.0`` (the whole parent), values over 100
  are capped at ``1.0``;
* ``utilization``: ``min(1, sum(sm_util) / 100)`` with ``clamped=True`` when
  the raw sum exceeded 100 (it is a sum of per-process NVML samples, HAMi
  issue #555); ``None`` for the pre-utilisation layout;
* ``last_kernel_time``: Unix seconds, ``None`` when 0 or not in the layout;
* ``attribution``: pod UID and container from the directory name (split on
  the first ``_``), namespace/pod from ``pod_resolver`` when given.

Directory rules: files other than ``*.cache`` (``libvgpu.so*``, READMEs...) are
ignored.  A directory with several ``.cache`` files gets one
``multiple_caches`` problem; all of them are read and, per device UUID, the
newest file (mtime) wins.  A missing root is not an error.  Files are opened
per :meth:`HamiVgpuSource.collect` and closed right away; each read touches a
few KiB of the 2 MB file.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable

from exporter.model import Attribution, Problem, Slice, Snapshot
from exporter.parsers.hami_cache import CacheDevice, CacheRegion, read_cache

PodResolver = Callable[[str], "tuple[str, str] | None"]

DEFAULT_ROOT = "/usr/local/vgpu/containers"


class HamiVgpuSource:
    """Reads every HAMi-core ``.cache`` file under ``root`` on each collect.

    ``clock``: returns Unix seconds, used for ``Snapshot.timestamp``.
    ``pod_resolver``: optional ``pod_uid -> (namespace, pod_name) | None``;
    called at most once per pod UID per collect; an exception from it is
    recorded as an ``attribution`` problem and the slice keeps UID/container.
    """

    name = "hami-vgpu"

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        *,
        clock: Callable[[], float] = time.time,
        pod_resolver: PodResolver | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self._clock = clock
        self._pod_resolver = pod_resolver
        self._resolved: dict[str, tuple[str, str] | None] = {}

    def start(self) -> None:
        """Files are opened per collect; this only warns (once) when the
        directory does not exist, since a mis-mounted ``ctrPath`` would
        otherwise lose every vGPU slice without a word."""
        if not os.path.isdir(self.root):
            from accelscope.logs import event

            event("hami_vgpu_dir_missing", logging.WARNING, path=str(self.root),
                  detail="no HAMi-core shared-region directory; vGPU slices appear when it exists "
                         "(set --hami-vgpu-dir to HAMi's devicePlugin.monitor.ctrPath)")

    def close(self) -> None:
        """Nothing held between collects."""

    def collect(self) -> Snapshot:
        problems: list[Problem] = []
        slices: list[Slice] = []
        self._resolved = {}
        for pod_uid, container, regions in self._scan(problems):
            attribution = self._attribution(pod_uid, container, problems)
            slices.extend(_slices_for(pod_uid, container, regions, attribution))
        return Snapshot(source=self.name, timestamp=self._clock(), slices=slices, problems=problems)

    # -- internals ---------------------------------------------------------

    def _scan(self, problems: list[Problem]):
        """Yield ``(pod_uid, container, [usable CacheRegion...])`` sorted by directory name."""
        try:
            with os.scandir(self.root) as it:
                entries = sorted((e for e in it), key=lambda e: e.name)
        except FileNotFoundError:
            return
        except OSError as exc:
            problems.append(Problem("io", f"{self.root}: {exc.strerror or exc}"))
            return
        for entry in entries:
            try:
                if not entry.is_dir():
                    continue
            except OSError:
                continue
            pod_uid, sep, container = entry.name.partition("_")
            if not sep or not pod_uid or not container:
                problems.append(Problem("parse", f"{entry.path}: not <podUID>_<container>"))
                continue
            try:
                with os.scandir(entry.path) as it:
                    caches = sorted(
                        e.path for e in it if e.name.endswith(".cache") and _is_file(e)
                    )
            except OSError as exc:
                problems.append(Problem("io", f"{entry.path}: {exc.strerror or exc}"))
                continue
            if not caches:
                continue  # CUDA not initialised yet in this container
            if len(caches) > 1:
                problems.append(Problem("multiple_caches", f"{entry.path}: {len(caches)} .cache files"))
            regions = []
            for path in caches:
                region = _read(path)
                problems.extend(region.problems)
                if region.ok:
                    regions.append(region)
            yield pod_uid, container, regions

    def _attribution(self, pod_uid: str, container: str, problems: list[Problem]) -> Attribution:
        attribution = Attribution(pod_uid=pod_uid, container=container)
        if self._pod_resolver is None:
            return attribution
        cache = self._resolved
        if pod_uid not in cache:
            try:
                cache[pod_uid] = self._pod_resolver(pod_uid)
            except Exception as exc:  # resolver trouble must not lose the slice
                cache[pod_uid] = None
                problems.append(Problem("attribution", f"pod {pod_uid}: {type(exc).__name__}: {exc}"))
        found = cache[pod_uid]
        if found:
            attribution.namespace, attribution.pod = found
        return attribution


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _read(path: str) -> CacheRegion:
    try:
        return read_cache(path)
    except Exception as exc:  # read_cache promises not to raise; belt and braces
        return CacheRegion(path=path, problems=[Problem("parse", f"{path}: {type(exc).__name__}: {exc}")])


def _slices_for(
    pod_uid: str,
    container: str,
    regions: list[CacheRegion],
    attribution: Attribution,
) -> list[Slice]:
    # Newest file wins per device UUID, then per virtual-device index (two
    # files naming different GPUs at the same index would collide on hw_id).
    newest_first = sorted(regions, key=lambda r: r.mtime or 0.0, reverse=True)
    by_uuid: dict[str, CacheDevice] = {}
    for region in newest_first:
        for dev in region.devices:
            by_uuid.setdefault(dev.uuid, dev)
    by_index: dict[int, CacheDevice] = {}
    for dev in by_uuid.values():
        by_index.setdefault(dev.index, dev)
    out = []
    for d in sorted(by_index):
        out.append(_slice(pod_uid, container, by_index[d], attribution))
    return out


def _slice(pod_uid: str, container: str, dev: CacheDevice, attribution: Attribution) -> Slice:
    d = dev.index
    if dev.sm_limit == 0:
        core_limit = 1.0  # 0 = unlimited: the whole parent GPU
    else:
        core_limit = min(1.0, dev.sm_limit / 100.0)
    utilization: float | None = None
    clamped = False
    if dev.sm_util is not None:
        raw = dev.sm_util / 100.0
        clamped = raw > 1.0
        utilization = min(1.0, raw)
    return Slice(
        hw_id=f"hami-vgpu-{pod_uid}-{container}-{d}",
        parent_id=dev.uuid,
        slice_type="hami_vgpu",
        slice_id=f"{pod_uid}/{container}/{d}",
        vendor="nvidia",
        kind="gpu",
        memory_used_bytes=dev.used_bytes,
        memory_limit_bytes=dev.memory_limit_bytes or None,
        core_limit=core_limit,
        utilization=utilization,
        clamped=clamped,
        last_kernel_time=float(dev.last_kernel_time) if dev.last_kernel_time else None,
        attribution=Attribution(
            namespace=attribution.namespace,
            pod=attribution.pod,
            container=attribution.container,
            pod_uid=attribution.pod_uid,
        ),
    )
