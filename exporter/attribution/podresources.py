"""Device -> pod attribution from the kubelet PodResources API.

The kubelet serves ``v1.PodResourcesLister`` on a Unix socket
(``/var/lib/kubelet/pod-resources/kubelet.sock``).  ``List`` returns every pod
on the node with the device IDs each container was given per extended
resource (``nvidia.com/gpu``, ``huawei.com/Ascend910``...);
``GetAllocatableResources`` returns every device the device plugins
registered.  :class:`PodResourcesClient` wraps the two calls and returns plain
dataclasses; :class:`DeviceAttributor` turns the answer into a lookup table,
refreshed **off the scrape path** (its own daemon thread every ``interval``
seconds, or :meth:`DeviceAttributor.refresh` called by the runtime), and
:meth:`DeviceAttributor.apply` fills ``attribution`` on a
:class:`~exporter.model.Snapshot` with dict lookups only.

Device IDs understood (``device_ids`` of one ``ContainerDevices``):

* GPU UUIDs (``GPU-…``), MIG UUIDs (``MIG-…``), serial numbers, PCI bus IDs
  (AMD's plugin), and any other ID equal to a device's ``hw_id`` or a slice's
  ``hw_id`` (case-insensitive);
* time-slicing replicas ``<id>::N`` (NVIDIA plugin, also MIG on EKS) and
  ``<uuid>-N`` (a full UUID plus a replica number, HAMi's split devices):
  the suffix is stripped;
* GKE ``nvidiaX`` / ``nvidiaX/vgpuZ`` (GPU with index X) and
  ``nvidiaX/giY[/vgpuZ]`` (the MIG slice of GPU X whose ``slice_id`` starts
  with ``giY``);
* Ascend ``Ascend910-3`` (NPU with index 3) and virtual NPUs
  ``Ascend910-2c-100-3`` (the ``vnpu`` slice with ``slice_id`` ``100``);
* plain ordinals of the other vendors (``0``, ``dcu3``, ``mlu2``, ``card1``,
  Intel's ``card1-0``): the device of that index **of the vendor the resource
  name belongs to** (``amd.com/`` -> ``amd``, ``hygon.com/`` -> ``hygon``...);
* comma-separated lists inside one ID (HAMi): every UUID-looking element is
  used; ordinals are not taken from lists.

An exact ID match wins over an index match.  One device allocated to several
containers of one pod gets the pod without a container; a device shared by
several pods (time-slicing, MPS, HAMi sharing) gets **no** attribution: one
device series cannot belong to two pods, and copying it per pod (what
dcgm-exporter does) double-counts under ``sum()``.  Per-pod usage of shared
devices comes from slices (HAMi vGPU) and the per-process family.

While a PodResources table is valid it is authoritative: a device or MIG
slice not allocated to any listed pod loses whatever attribution the source
gave it, and a source attribution (HAMi shared-region directory names, the
mock inventory) naming a pod that PodResources no longer lists is cleared at
the next refresh.  This is the fix for stale pod labels after the workload
exits (dcgm-exporter #140, HAMi #1129).

Fallbacks, when the socket is unavailable:

1. HAMi allocation annotations (``hami.io/<type>-devices-allocated``, also
   the older ``4pd.io/`` prefix) from a pod list, when a ``list_pods``
   callable is injected (:func:`kube_pod_lister` builds one from the
   Kubernetes API, node-scoped).  The same list fills missing namespace/pod
   names from pod UIDs and clears attributions of pods no longer listed.
2. The HAMi-core shared-region directory names ``<podUID>_<container>``:
   already on the HAMi vGPU source's slices; they are kept as they are.

Errors (socket missing, permission denied, gRPC status, timeout) are counted
in :attr:`DeviceAttributor.stats` (a :class:`~exporter.render.SourceStats`
named ``pod-resources``, so the usual ``accel_exporter_collect_*`` families
cover it) and logged once per outage; the last good table is used for at
most one more interval (``grace``, default ``interval``) and then dropped,
after which only the source attributions (subject to the fallbacks) remain.

Stubs: ``podresources_pb2.py`` and ``podresources_pb2_grpc.py`` are generated
from ``podresources.proto`` (written from the public kubelet v1 API) and
committed.  Regenerate from the repository root with grpcio-tools 1.85.1 (in
any virtualenv; it is not a runtime dependency)::

    python -m pip install grpcio-tools==1.85.1
    python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. \\
        exporter/attribution/podresources.proto

The generated code needs ``grpcio>=1.85.1`` and ``protobuf>=7.35.1,<8`` at
runtime (it checks both on import).  ``grpc`` is imported lazily, so the
attribution logic and :meth:`DeviceAttributor.apply` work without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from accelscope.logs import event
from exporter.attribution.k8s_pods import ListPods, PodInfo, kube_pod_lister  # noqa: F401 - re-exported
from exporter.model import Attribution, Device, Slice, Snapshot
from exporter.render import SourceStats

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
#: the kubelet's own limit for PodResources messages
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: ``accel_source`` of the refresh statistics
STATS_SOURCE = "pod-resources"
#: error kinds (``error_type``); all exported from the start at 0
ERROR_KINDS = ("socket_missing", "permission", "unavailable", "timeout", "unimplemented", "grpc", "exception",
               "pod_list")

_HINTS = {
    "socket_missing": "mount the kubelet's /var/lib/kubelet/pod-resources into the exporter (hostPath) "
                      "or set --pod-resources-socket",
    "permission": "the socket belongs to root; run the exporter as root or give it access to the socket",
    "unavailable": "the kubelet does not answer on the socket",
    "timeout": "the kubelet did not answer within the timeout",
}


# -- client ----------------------------------------------------------------


class PodResourcesError(Exception):
    """A failed PodResources call.  ``kind``: one of :data:`ERROR_KINDS`;
    ``detail``: free text for the log line; ``code``: the gRPC status name
    (``UNAVAILABLE``...) when the failure came from gRPC."""

    def __init__(self, kind: str, detail: str, code: str | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.code = code


@dataclass(frozen=True, slots=True)
class DeviceGroup:
    """Devices of one resource (``ContainerDevices``): ``resource_name``,
    ``device_ids`` as the device plugin advertised them, NUMA ``numa_nodes``."""

    resource_name: str
    device_ids: tuple[str, ...]
    numa_nodes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerAllocation:
    name: str
    devices: tuple[DeviceGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class PodAllocation:
    """One pod of ``List``: ``namespace``, ``name`` and its containers."""

    namespace: str
    name: str
    containers: tuple[ContainerAllocation, ...] = ()


class PodResourcesClient:
    """Blocking client of the kubelet PodResources v1 API.

    ``socket``: path of the kubelet's Unix socket; ``timeout``: seconds per
    call.  :meth:`list` and :meth:`allocatable` raise
    :class:`PodResourcesError` (never a raw ``grpc.RpcError``).  The channel
    is created lazily and dropped after an error, so a restarted kubelet is
    reached at the next call without gRPC's reconnect backoff.
    """

    def __init__(self, socket: str = DEFAULT_SOCKET, timeout: float = 5.0) -> None:
        self.socket = socket
        self.timeout = timeout
        self._channel = None
        self._stub = None
        self._lock = threading.Lock()

    def list(self) -> list[PodAllocation]:
        """``List``: every pod on the node with its containers' devices."""
        from exporter.attribution import podresources_pb2 as pb

        resp = self._call("List", pb.ListPodResourcesRequest())
        return [_pod_from_pb(p) for p in resp.pod_resources]

    def allocatable(self) -> list[DeviceGroup]:
        """``GetAllocatableResources``: every device the plugins registered."""
        from exporter.attribution import podresources_pb2 as pb

        resp = self._call("GetAllocatableResources", pb.AllocatableResourcesRequest())
        return [_group_from_pb(g) for g in resp.devices]

    def close(self) -> None:
        with self._lock:
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()

    # -- internals ---------------------------------------------------------

    def _call(self, method: str, request):
        self._check_socket()
        import grpc

        stub = self._get_stub()
        try:
            return getattr(stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            self.close()
            raise _error_from_rpc(self.socket, exc) from None

    def _get_stub(self):
        with self._lock:
            if self._stub is None:
                import grpc

                from exporter.attribution import podresources_pb2_grpc as pb_grpc

                target = "unix://" + os.path.abspath(self.socket)
                self._channel = grpc.insecure_channel(target, options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                    ("grpc.enable_retries", 0),
                ])
                self._stub = pb_grpc.PodResourcesListerStub(self._channel)
            return self._stub

    def _check_socket(self) -> None:
        path = self.socket
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise PodResourcesError("socket_missing", f"{path}: no such file") from None
        except PermissionError:
            raise PodResourcesError("permission", f"{path}: permission denied") from None
        except OSError as exc:
            raise PodResourcesError("socket_missing", f"{path}: {exc.strerror or exc}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise PodResourcesError("socket_missing", f"{path}: not a Unix socket")
        if not os.access(path, os.R_OK | os.W_OK):
            raise PodResourcesError("permission", f"{path}: permission denied (needs read and write)")


def _error_from_rpc(path: str, exc) -> PodResourcesError:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    name = getattr(code, "name", None) or "UNKNOWN"
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    detail = f"{path}: gRPC {name}: {details}"
    if "permission denied" in (details or "").lower() or name == "PERMISSION_DENIED":
        kind = "permission"
    else:
        kind = {"DEADLINE_EXCEEDED": "timeout", "UNAVAILABLE": "unavailable",
                "UNIMPLEMENTED": "unimplemented"}.get(name, "grpc")
    return PodResourcesError(kind, detail, name)


def _group_from_pb(g) -> DeviceGroup:
    nodes = tuple(n.ID for n in g.topology.nodes) if g.HasField("topology") else ()
    return DeviceGroup(g.resource_name, tuple(g.device_ids), nodes)


def _pod_from_pb(p) -> PodAllocation:
    return PodAllocation(p.namespace, p.name, tuple(
        ContainerAllocation(c.name, tuple(_group_from_pb(g) for g in c.devices)) for c in p.containers))


# -- pod list (HAMi annotation fallback) ------------------------------------


# PodInfo, ListPods and kube_pod_lister live in exporter.attribution.k8s_pods (one lister per node)


_HAMI_ANNOTATION = re.compile(r"^(?:hami\.io|4pd\.io)/[\w.-]+-devices-allocated$")


def hami_allocations(annotations: Mapping[str, str]) -> list[tuple[int, str]]:
    """``[(container position, device UUID)]`` from HAMi allocation
    annotations: containers separated by ``;``, devices by ``:``, the fields
    of one device by ``,`` with the UUID first, e.g.
    ``GPU-a,NVIDIA,10240,30:;GPU-b,NVIDIA,2048,0:;``."""
    out: list[tuple[int, str]] = []
    for key, value in annotations.items():
        if not _HAMI_ANNOTATION.match(key) or not value:
            continue
        for pos, segment in enumerate(value.split(";")):
            for dev in segment.split(":"):
                uuid = dev.split(",", 1)[0].strip()
                if uuid:
                    out.append((pos, uuid))
    return out


# -- device ID parsing --------------------------------------------------------

_VENDOR_BY_RESOURCE = (
    ("nvidia.com/", "nvidia"), ("amd.com/", "amd"), ("huawei.com/", "huawei"), ("hygon.com/", "hygon"),
    ("cambricon.com/", "cambricon"), ("iluvatar.ai/", "iluvatar"), ("kunlunxin.com/", "kunlunxin"),
    ("metax-tech.com/", "metax"), ("mthreads.com/", "moorethreads"), ("gpu.intel.com/", "intel"),
)
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_REPLICA = re.compile(rf"^((?:GPU-|MIG-)?{_UUID})-\d+$")
_UUID_LIKE = re.compile(rf"^(?:GPU-|MIG-|{_UUID})", re.IGNORECASE)
_GKE = re.compile(r"^nvidia(\d+)(?:/gi(\d+))?(?:/vgpu\d+)?$")
_ASCEND = re.compile(r"^Ascend\w*?-(\d+)$")
_ASCEND_VIRTUAL = re.compile(r"^Ascend\w*?-\w+-(\d+)-(\d+)$")
_ORDINAL = re.compile(r"^(?:gpu|npu|dcu|mlu|xpu|card|davinci|accel)?(\d+)(?:-\d+)?$", re.IGNORECASE)
_MIG_GI = re.compile(r"^gi(\d+)(?:/|$)")

Key = tuple


def vendor_for_resource(resource_name: str) -> str | None:
    """The device vendor of an extended resource name, ``None`` if unknown."""
    for prefix, vendor in _VENDOR_BY_RESOURCE:
        if resource_name.startswith(prefix):
            return vendor
    return None


def _norm_pci(value: str) -> str | None:
    parts = value.lower().split(":")
    if len(parts) != 3 or "." not in parts[2]:
        return None
    if len(parts[0]) == 8:  # NVIDIA's 00000000:C1:00.0
        parts[0] = parts[0][4:]
    return ":".join(parts)


def _strip_replica(token: str) -> str:
    token = token.strip()
    head, sep, tail = token.rpartition("::")
    if sep and tail.isdigit() and head:
        token = head
    m = _UUID_REPLICA.match(token)
    return m.group(1) if m else token


def device_id_keys(resource_name: str, device_id: str) -> list[Key]:
    """Lookup keys of one advertised device ID (see the module docstring).

    ``("id", lower-case id)`` for exact matches, ``("index", vendor, n)``,
    ``("mig", vendor, gpu index, gi)`` and ``("vnpu", vendor, vnpu id)``."""
    vendor = vendor_for_resource(resource_name)
    parts = [p.strip() for p in device_id.split(",") if p.strip()]
    if len(parts) > 1:
        parts = [p for p in parts if _UUID_LIKE.match(p)]
        single = False
    else:
        single = True
    keys: list[Key] = []
    for part in parts:
        tok = _strip_replica(part)
        keys.append(("id", tok.lower()))
        pci = _norm_pci(tok)
        if pci:
            keys.append(("id", pci))
        if not single or vendor is None:
            continue
        if vendor == "nvidia" and (m := _GKE.match(tok)):
            if m.group(2) is not None:
                keys.append(("mig", vendor, int(m.group(1)), int(m.group(2))))
            else:
                keys.append(("index", vendor, int(m.group(1))))
        elif m := _ASCEND_VIRTUAL.match(tok):
            keys.append(("vnpu", vendor, m.group(1)))
        elif m := _ASCEND.match(tok):
            keys.append(("index", vendor, int(m.group(1))))
        elif m := _ORDINAL.match(tok):
            keys.append(("index", vendor, int(m.group(1))))
    return list(dict.fromkeys(keys))


def _device_keys(d: Device) -> tuple[list[Key], list[Key]]:
    exact = [("id", d.hw_id.lower())]
    if d.serial:
        exact.append(("id", d.serial.lower()))
    if d.pci_bus_id and (pci := _norm_pci(d.pci_bus_id)):
        exact.append(("id", pci))
    fallback = [("index", d.vendor, d.index)] if d.index is not None else []
    return exact, fallback


def _slice_keys(s: Slice) -> tuple[list[Key], list[Key]]:
    exact = [("id", s.hw_id.lower())]
    fallback: list[Key] = []
    if s.slice_type == "mig" and s.parent_index is not None and (m := _MIG_GI.match(s.slice_id)):
        fallback.append(("mig", s.vendor, s.parent_index, int(m.group(1))))
    elif s.slice_type == "vnpu":
        fallback.append(("vnpu", s.vendor, s.slice_id))
    return exact, fallback


# -- tables -------------------------------------------------------------------

Owner = tuple  # (namespace, pod, container | None)


def _freeze(owners: dict[Key, set[Owner]]) -> dict[Key, frozenset[Owner]]:
    return {k: frozenset(v) for k, v in owners.items()}


def build_owner_table(pods: Iterable[PodAllocation]) -> dict[Key, frozenset[Owner]]:
    """Lookup key -> owners ``(namespace, pod, container)`` from ``List``."""
    owners: dict[Key, set[Owner]] = {}
    for pod in pods:
        for c in pod.containers:
            for group in c.devices:
                for dev_id in group.device_ids:
                    for key in device_id_keys(group.resource_name, dev_id):
                        owners.setdefault(key, set()).add((pod.namespace, pod.name, c.name))
    return _freeze(owners)


@dataclass(frozen=True, slots=True)
class _PodResourcesTable:
    owners: dict[Key, frozenset[Owner]]
    pods: frozenset[tuple[str, str]]
    ok_at: float


@dataclass(frozen=True, slots=True)
class _PodListTable:
    owners: dict[Key, frozenset[Owner]]   # from HAMi annotations
    by_uid: dict[str, tuple[str, str]]
    uid_by_name: dict[tuple[str, str], str]
    ok_at: float


def _pod_list_table(pods: Iterable[PodInfo], ok_at: float) -> _PodListTable:
    owners: dict[Key, set[Owner]] = {}
    by_uid: dict[str, tuple[str, str]] = {}
    for p in pods:
        by_uid[p.uid] = (p.namespace, p.name)
        for pos, uuid in hami_allocations(p.annotations):
            container = p.containers[pos] if pos < len(p.containers) else None
            owners.setdefault(("id", _strip_replica(uuid).lower()), set()).add((p.namespace, p.name, container))
    return _PodListTable(_freeze(owners), by_uid, {v: k for k, v in by_uid.items()}, ok_at)


def _from_owners(owners: frozenset[Owner]) -> Attribution | None:
    pods = {(ns, pod) for ns, pod, _ in owners}
    if len(pods) != 1:
        return None  # shared by several pods: no single owner
    (ns, pod), = pods
    containers = {c for _, _, c in owners}
    container = next(iter(containers)) if len(containers) == 1 else None
    return Attribution(namespace=ns, pod=pod, container=container)


# -- attributor ---------------------------------------------------------------


class DeviceAttributor:
    """Fills ``attribution`` on snapshots from PodResources (see the module
    docstring for the rules).

    ``client``: anything with ``list()`` and ``allocatable()`` (default a
    :class:`PodResourcesClient` on ``socket`` with ``timeout``).
    ``interval``: seconds between refreshes of the background thread.
    ``grace``: how long a table outlives its refresh interval when refreshes
    fail (default ``interval``); a table older than ``interval + grace`` is
    dropped.  ``list_pods``: optional pod list for the HAMi annotation
    fallback and UID -> name resolution (:func:`kube_pod_lister`).
    ``clock``: monotonic seconds (expiry); ``wall_clock``: Unix seconds
    (``stats.last_success``).

    Thread-safety: the refresh thread swaps immutable tables; :meth:`apply`
    reads them without locking.  :attr:`generation` increases whenever the
    effective tables change (a different answer, a dropped table); callbacks
    given to :meth:`subscribe` are called then, outside any lock, so a
    snapshot store can re-render.
    """

    def __init__(self, client=None, *, socket: str = DEFAULT_SOCKET, timeout: float = 5.0,
                 interval: float = 10.0, grace: float | None = None,
                 list_pods: ListPods | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.client = client if client is not None else PodResourcesClient(socket, timeout)
        self.interval = float(interval)
        self.grace = float(interval if grace is None else grace)
        self._list_pods = list_pods
        self._clock = clock
        self._wall = wall_clock
        self._pr: _PodResourcesTable | None = None
        self._pods: _PodListTable | None = None
        #: resource name -> device IDs from the last GetAllocatableResources
        self.allocatable: dict[str, tuple[str, ...]] = {}
        self._use_allocatable = True
        self._allocatable_logged = False
        self.generation = 0
        self.stats = SourceStats(STATS_SOURCE)
        self.stats.errors = {k: 0 for k in ERROR_KINDS}
        self._failing: set[str] = set()       # kinds logged in the current outage
        self._refresh_lock = threading.Lock()
        self._subscribers: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public ------------------------------------------------------------

    @property
    def max_age(self) -> float:
        return self.interval + self.grace

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the refresh thread) after every change."""
        self._subscribers.append(callback)

    def start(self) -> None:
        """Start the background thread; it refreshes at once, then every
        ``interval`` seconds.  Never raises on API trouble."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pod-resources", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout if timeout is not None else self.interval + 1)
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    def refresh(self) -> bool:
        """Query PodResources (and the pod list, when given) once; returns
        True when ``List`` succeeded.  Never raises."""
        with self._refresh_lock:
            t0 = self._clock()
            changed = False
            ok = False
            try:
                ok, changed = self._refresh_pod_resources()
                if self._list_pods is not None:
                    changed |= self._refresh_pod_list()
            except Exception as exc:  # noqa: BLE001 - a bug here must not kill the loop
                self._fail("exception", f"{type(exc).__name__}: {exc}")
            changed |= self._expire()
            self.stats.observe(self._clock() - t0)
            self.stats.success = ok
            if ok:
                self.stats.last_success = self._wall()
        if changed:
            self._changed()
        return ok

    def apply(self, snapshot: Snapshot) -> Snapshot:
        """Return ``snapshot`` with ``attribution`` filled or cleared on its
        devices and slices (new objects where it changed; the input is not
        modified).  Without any valid table the snapshot is returned as is."""
        now = self._clock()
        pr = self._pr if self._pr is not None and now - self._pr.ok_at < self.max_age else None
        pl = self._pods if self._pods is not None and now - self._pods.ok_at < self.max_age else None
        if pr is None and pl is None:
            return snapshot
        owners = pr.owners if pr is not None else pl.owners
        devices = [self._attributed(d, _device_keys(d), owners, pr, pl) for d in snapshot.devices]
        slices = [self._attributed(s, _slice_keys(s), owners, pr, pl) for s in snapshot.slices]
        return dataclasses.replace(snapshot, devices=devices, slices=slices)

    def lookup(self, resource_name: str, device_id: str) -> Attribution | None:
        """The owner of one advertised device ID, from the current table."""
        pr = self._pr
        if pr is None or self._clock() - pr.ok_at >= self.max_age:
            return None
        found: set[Owner] = set()
        for key in device_id_keys(resource_name, device_id):
            found |= pr.owners.get(key, frozenset())
        return _from_owners(frozenset(found)) if found else None

    # -- internals ---------------------------------------------------------

    def _attributed(self, obj, keys, owners, pr, pl):
        new = self._resolve(obj.attribution, keys, owners, pr, pl)
        if new == obj.attribution:
            return obj
        return dataclasses.replace(obj, attribution=new)

    @staticmethod
    def _resolve(current: Attribution | None, keys, owners, pr, pl) -> Attribution | None:
        exact, fallback = keys
        found: set[Owner] = set()
        for key in exact:
            found |= owners.get(key, frozenset())
        if not found:
            for key in fallback:
                found |= owners.get(key, frozenset())
        if found:
            attr = _from_owners(frozenset(found))
            if attr is None:
                return None
            if current is not None and (current.namespace, current.pod) == (attr.namespace, attr.pod):
                attr.pod_uid = current.pod_uid
            if attr.pod_uid is None and pl is not None:
                attr.pod_uid = pl.uid_by_name.get((attr.namespace, attr.pod))
            return attr
        if current is None:
            return None
        # Not allocated in the table: keep the source's attribution while its pod lives.
        attr = Attribution(current.namespace, current.pod, current.container, current.pod_uid)
        if pl is not None and attr.pod_uid:
            named = pl.by_uid.get(attr.pod_uid)
            if named is None:
                return None  # that pod (this incarnation of it) is gone
            attr.namespace, attr.pod = named
        if attr.namespace and attr.pod:
            if pr is not None:
                return attr if (attr.namespace, attr.pod) in pr.pods else None
            if pl is not None:
                return attr if (attr.namespace, attr.pod) in pl.uid_by_name else None
        return attr  # only a pod UID and no pod list to check it against: kept

    def _refresh_pod_resources(self) -> tuple[bool, bool]:
        try:
            pods = self.client.list()
        except PodResourcesError as exc:
            self._fail(exc.kind, exc.detail)
            return False, False
        if self._use_allocatable:
            self._refresh_allocatable()
        table = _PodResourcesTable(build_owner_table(pods),
                                   frozenset((p.namespace, p.name) for p in pods), self._clock())
        old = self._pr
        self._pr = table
        if self._failing - {"pod_list"}:
            event("pod_resources_recovered", logging.INFO, pods=len(table.pods))
            self._failing &= {"pod_list"}
        return True, old is None or old.owners != table.owners or old.pods != table.pods

    def _refresh_allocatable(self) -> None:
        """``GetAllocatableResources`` is informative only (kubelet >= 1.21
        with the feature on): a failure is logged once and never fatal;
        ``UNIMPLEMENTED`` stops further calls."""
        try:
            groups = self.client.allocatable()
        except PodResourcesError as exc:
            if exc.kind == "unimplemented":
                self._use_allocatable = False
            if not self._allocatable_logged:
                self._allocatable_logged = True
                event("pod_resources_allocatable_failed", logging.INFO, error_type=exc.kind, detail=exc.detail)
            return
        merged: dict[str, list[str]] = {}
        for g in groups:
            merged.setdefault(g.resource_name, []).extend(g.device_ids)
        self.allocatable = {k: tuple(v) for k, v in merged.items()}

    def _refresh_pod_list(self) -> bool:
        try:
            pods = self._list_pods()
        except Exception as exc:  # noqa: BLE001 - API trouble only loses the fallback
            self._fail("pod_list", f"{type(exc).__name__}: {exc}")
            return False
        table = _pod_list_table(pods, self._clock())
        old = self._pods
        self._pods = table
        if "pod_list" in self._failing:
            event("pod_list_recovered", logging.INFO, pods=len(table.by_uid))
            self._failing.discard("pod_list")
        return old is None or old.owners != table.owners or old.by_uid != table.by_uid

    def _fail(self, kind: str, detail: str) -> None:
        """Count every failure; log the first of each kind per outage."""
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
        if kind in self._failing:
            return
        self._failing.add(kind)
        fields = {"error_type": kind, "detail": detail}
        if kind in _HINTS:
            fields["hint"] = _HINTS[kind]
        if kind != "pod_list" and self._pr is not None:
            fields["message"] = f"keeping the last pod attribution for at most {self.grace:g}s more"
        event("pod_resources_failed", logging.WARNING, **fields)

    def _expire(self) -> bool:
        now = self._clock()
        changed = False
        if self._pr is not None and now - self._pr.ok_at >= self.max_age:
            self._pr = None
            changed = True
            event("pod_attribution_dropped", logging.WARNING, source="pod-resources",
                  detail=f"no successful PodResources List for {self.max_age:g}s")
        if self._pods is not None and now - self._pods.ok_at >= self.max_age:
            self._pods = None
            changed = True
            event("pod_attribution_dropped", logging.WARNING, source="pod-list",
                  detail=f"no successful pod list for {self.max_age:g}s")
        return changed

    def _changed(self) -> None:
        self.generation += 1
        for cb in list(self._subscribers):
            try:
                cb()
            except Exception as exc:  # noqa: BLE001
                event("pod_attribution_callback_failed", logging.WARNING, detail=f"{type(exc).__name__}: {exc}")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            if self._stop.wait(self.interval):
                break


__all__ = [
    "DEFAULT_SOCKET",
    "ContainerAllocation",
    "DeviceAttributor",
    "DeviceGroup",
    "PodAllocation",
    "PodInfo",
    "PodResourcesClient",
    "PodResourcesError",
    "build_owner_table",
    "device_id_keys",
    "hami_allocations",
    "kube_pod_lister",
    "vendor_for_resource",
]
