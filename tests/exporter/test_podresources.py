"""PodResources attribution against a real gRPC server started by the test
on a Unix socket (the kubelet's v1 PodResourcesLister, canned pods)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent import futures

import grpc
import pytest

from exporter.attribution import podresources_pb2 as pb
from exporter.attribution import podresources_pb2_grpc as pb_grpc
from exporter.attribution.podresources import (
    DeviceAttributor,
    PodInfo,
    PodResourcesClient,
    PodResourcesError,
    _error_from_rpc,
    device_id_keys,
    hami_allocations,
)
from exporter.model import Attribution, Device, Slice, Snapshot
from exporter.render import RenderOptions, render_families

U = "-0000-4000-8000-00000000000"
GPU = {i: f"GPU-{i:08d}{U}{i}" for i in range(8)}
MIG = {i: f"MIG-{i + 10:08d}{U}{i}" for i in range(1, 4)}


def _dev(resource: str, *ids: str) -> pb.ContainerDevices:
    return pb.ContainerDevices(resource_name=resource, device_ids=list(ids),
                               topology=pb.TopologyInfo(nodes=[pb.NUMANode(ID=0)]))


def _pod(ns: str, name: str, *containers: tuple[str, list[pb.ContainerDevices]]) -> pb.PodResources:
    return pb.PodResources(namespace=ns, name=name, containers=[
        pb.ContainerResources(name=c, devices=devs, cpu_ids=[2, 3]) for c, devs in containers])


def canned_pods() -> list[pb.PodResources]:
    return [
        _pod("ml", "train", ("trainer", [_dev("nvidia.com/gpu", GPU[0])]), ("sidecar", [])),
        _pod("ml", "infer-a", ("server", [_dev("nvidia.com/mig-1g.10gb", MIG[1])])),
        _pod("ml", "infer-b", ("server", [_dev("nvidia.com/mig-1g.10gb", MIG[2] + "::0")])),   # EKS style
        _pod("ml", "gke-mig", ("main", [_dev("nvidia.com/gpu", "nvidia1/gi3")])),
        _pod("lab", "notebook", ("jupyter", [_dev("nvidia.com/gpu", GPU[2] + "::2", GPU[2] + "::3")])),
        _pod("batch", "hami-job", ("worker", [_dev("nvidia.com/gpu", f"{GPU[3]},{GPU[4]}")])),
        _pod("lab", "share-1", ("a", [_dev("nvidia.com/gpu", GPU[5] + "::0")])),
        _pod("lab", "share-2", ("b", [_dev("nvidia.com/gpu", GPU[5] + "::1")])),
        _pod("old", "legacy", ("app", [_dev("nvidia.com/gpu", "nvidia6")])),
        _pod("npu", "npu-job", ("mindspore", [_dev("huawei.com/Ascend910", "Ascend910-3")])),
        _pod("rocm", "amd-job", ("hip", [_dev("amd.com/gpu", "0000:c1:00.0")])),
        _pod("kube-system", "cpu-only", ("app", [_dev("example.com/nic", "0000:3b:00.2")])),
    ]


class FakeKubelet(pb_grpc.PodResourcesListerServicer):
    def __init__(self) -> None:
        self.pods = canned_pods()
        self.calls = 0

    def List(self, request, context):  # noqa: N802 - gRPC method name
        self.calls += 1
        return pb.ListPodResourcesResponse(pod_resources=list(self.pods))

    def GetAllocatableResources(self, request, context):  # noqa: N802
        return pb.AllocatableResourcesResponse(devices=[
            _dev("nvidia.com/gpu", *[GPU[i] for i in (0, 2, 3, 4, 5)]),
            _dev("huawei.com/Ascend910", "Ascend910-3")], cpu_ids=[0, 1, 2, 3])


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="pr-")  # short: Unix socket paths are limited to 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kubelet(sockdir):
    path = os.path.join(sockdir, "kubelet.sock")
    servicer = FakeKubelet()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_PodResourcesListerServicer_to_server(servicer, server)
    server.add_insecure_port("unix://" + path)
    server.start()
    servicer.server = server
    servicer.path = path
    yield servicer
    server.stop(None)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def events():
    """Captured accelscope log events (names), whatever the logger config."""
    records: list[logging.LogRecord] = []

    class H(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("accelscope")
    h = H(logging.DEBUG)
    old_level = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(h)
    logger.setLevel(old_level)


def _gpu(i: int, **kw) -> Device:
    return Device(hw_id=GPU[i], vendor="nvidia", model="NVIDIA H100 80GB HBM3", index=i, **kw)


def node_snapshot() -> Snapshot:
    devices = [_gpu(i) for i in range(6)]
    devices.append(Device(hw_id="GPU-legacy", vendor="nvidia", model="Tesla T4", index=6))
    # a device the source attributed (mock inventory style) to a pod that no longer exists
    devices.append(_gpu(7, attribution=Attribution("old", "gone", "app", "uid-gone")))
    devices.append(Device(hw_id="npu-0-serial-xyz", vendor="huawei", model="Ascend910B4", kind="npu", index=3))
    devices.append(Device(hw_id="npu-0-serial-abc", vendor="huawei", model="Ascend910B4", kind="npu", index=4))
    devices.append(Device(hw_id="amd-7f3c", vendor="amd", model="MI300X", index=0, pci_bus_id="0000:C1:00.0"))
    slices = [
        Slice(hw_id=MIG[gi], parent_id=GPU[1], slice_type="mig", slice_id=f"gi{gi}/ci0", vendor="nvidia",
              parent_index=1, profile="1g.10gb")
        for gi in (1, 2, 3)
    ]
    slices += [
        Slice(hw_id="hami-vgpu-uid-h1-worker-0", parent_id=GPU[3], slice_type="hami_vgpu",
              slice_id="uid-h1/worker/0", vendor="nvidia", parent_index=3,
              attribution=Attribution("batch", "hami-job", "worker", "uid-h1")),
        Slice(hw_id="hami-vgpu-uid-h2-main-0", parent_id=GPU[3], slice_type="hami_vgpu",
              slice_id="uid-h2/main/0", vendor="nvidia", parent_index=3,
              attribution=Attribution(None, None, "main", "uid-h2")),
        Slice(hw_id="hami-vgpu-uid-h3-main-0", parent_id=GPU[3], slice_type="hami_vgpu",
              slice_id="uid-h3/main/0", vendor="nvidia", parent_index=3,
              attribution=Attribution("batch", "finished", "main", "uid-h3")),
    ]
    return Snapshot(source="nvml", timestamp=1.0, devices=devices, slices=slices)


def _attr(snap: Snapshot) -> dict[str, tuple | None]:
    out = {}
    for obj in list(snap.devices) + list(snap.slices):
        a = obj.attribution
        out[obj.hw_id] = None if a is None else (a.namespace, a.pod, a.container, a.pod_uid)
    return out


EXPECTED = {
    GPU[0]: ("ml", "train", "trainer", None),
    GPU[1]: None,                                   # MIG parent: shared by its slices
    GPU[2]: ("lab", "notebook", "jupyter", None),   # uuid::N replicas of one container
    GPU[3]: ("batch", "hami-job", "worker", None),  # HAMi comma list
    GPU[4]: ("batch", "hami-job", "worker", None),
    GPU[5]: None,                                   # time-sliced between two pods
    "GPU-legacy": ("old", "legacy", "app", None),  # nvidia6 -> index 6
    GPU[7]: None,                                   # source attribution of a gone pod: cleared
    "npu-0-serial-xyz": ("npu", "npu-job", "mindspore", None),   # Ascend910-3 -> index 3
    "npu-0-serial-abc": None,
    "amd-7f3c": ("rocm", "amd-job", "hip", None),   # PCI bus ID
    MIG[1]: ("ml", "infer-a", "server", None),
    MIG[2]: ("ml", "infer-b", "server", None),      # MIG-uuid::0
    MIG[3]: ("ml", "gke-mig", "main", None),        # nvidia1/gi3
    "hami-vgpu-uid-h1-worker-0": ("batch", "hami-job", "worker", "uid-h1"),  # live pod: kept
    "hami-vgpu-uid-h2-main-0": (None, None, "main", "uid-h2"),               # UID only: kept
    "hami-vgpu-uid-h3-main-0": None,                                         # pod gone: cleared
}


def test_client_lists_pods_and_allocatable(kubelet):
    client = PodResourcesClient(kubelet.path, timeout=2)
    pods = client.list()
    assert [(p.namespace, p.name) for p in pods][:2] == [("ml", "train"), ("ml", "infer-a")]
    train = pods[0]
    assert [c.name for c in train.containers] == ["trainer", "sidecar"]
    assert train.containers[0].devices[0].resource_name == "nvidia.com/gpu"
    assert train.containers[0].devices[0].device_ids == (GPU[0],)
    assert train.containers[0].devices[0].numa_nodes == (0,)
    alloc = client.allocatable()
    assert [g.resource_name for g in alloc] == ["nvidia.com/gpu", "huawei.com/Ascend910"]
    client.close()


def test_exact_attribution_of_every_id_format(kubelet):
    clock = Clock()
    att = DeviceAttributor(socket=kubelet.path, timeout=2, interval=10, clock=clock)
    snap = node_snapshot()
    assert att.apply(snap) is snap          # nothing known yet: untouched
    assert att.refresh() is True
    out = att.apply(snap)
    assert _attr(out) == EXPECTED
    assert _attr(snap)[GPU[7]] == ("old", "gone", "app", "uid-gone")   # input not modified
    assert out.devices[0] is not snap.devices[0] and out.devices[1] is snap.devices[1]
    assert att.allocatable["huawei.com/Ascend910"] == ("Ascend910-3",)
    assert att.stats.success is True and att.stats.last_success is not None
    assert sum(att.stats.errors.values()) == 0
    assert att.lookup("nvidia.com/gpu", GPU[2] + "::7") == Attribution("lab", "notebook", "jupyter")


def test_removed_pod_is_unattributed_at_next_refresh(kubelet):
    att = DeviceAttributor(socket=kubelet.path, timeout=2, interval=10)
    changes = []
    att.subscribe(lambda: changes.append(att.generation))
    att.refresh()
    assert changes == [1]
    att.refresh()                           # same answer: no change notification
    assert changes == [1]
    kubelet.pods = [p for p in kubelet.pods if p.name not in ("train", "hami-job", "share-2")]
    att.refresh()
    assert changes == [1, 2]
    got = _attr(att.apply(node_snapshot()))
    assert got[GPU[0]] is None
    assert got[GPU[3]] is None and got[GPU[4]] is None
    assert got["hami-vgpu-uid-h1-worker-0"] is None       # its pod left PodResources
    assert got[GPU[5]] == ("lab", "share-1", "a", None)   # no longer shared
    assert got[GPU[2]] == ("lab", "notebook", "jupyter", None)


def test_server_down_counts_error_then_drops_after_grace(kubelet, events):
    clock = Clock()
    att = DeviceAttributor(socket=kubelet.path, timeout=1, interval=10, clock=clock)
    changes = []
    att.subscribe(lambda: changes.append(att.generation))
    assert att.refresh()
    kubelet.server.stop(None).wait()
    if not os.path.exists(kubelet.path):     # some gRPC versions keep the file, some unlink it
        import socket as _socket
        s = _socket.socket(_socket.AF_UNIX)
        s.bind(kubelet.path)                 # bound, never listening: connection refused
        kubelet.dead = s
    clock.t += 10
    t0 = time.monotonic()
    assert att.refresh() is False
    assert time.monotonic() - t0 < 1.5
    assert att.stats.errors["unavailable"] == 1
    assert att.stats.success is False
    # within the grace period the last good table is still used
    assert _attr(att.apply(node_snapshot()))[GPU[0]] == ("ml", "train", "trainer", None)
    clock.t += 10                            # one more interval: dropped
    assert att.refresh() is False
    assert att.stats.errors["unavailable"] == 2
    assert changes == [1, 2]
    snap = node_snapshot()
    assert att.apply(snap) is snap          # back to the sources' own attribution
    names = [r.getMessage() for r in events]
    assert names.count("pod_resources_failed") == 1        # logged once per outage
    assert names.count("pod_attribution_dropped") == 1
    failed = next(r for r in events if r.getMessage() == "pod_resources_failed")
    assert failed.error_type == "unavailable"
    getattr(kubelet, "dead", None) and kubelet.dead.close()


def test_socket_absent_is_a_clear_error_and_the_loop_survives(sockdir, events):
    path = os.path.join(sockdir, "absent", "kubelet.sock")
    att = DeviceAttributor(socket=path, timeout=1, interval=0.02)
    att.start()
    deadline = time.monotonic() + 3
    while att.stats.errors["socket_missing"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread = att._thread
    assert thread is not None and thread.is_alive()
    att.stop()
    assert att.stats.errors["socket_missing"] >= 3
    assert att.stats.errors["exception"] == 0
    failed = [r for r in events if r.getMessage() == "pod_resources_failed"]
    assert len(failed) == 1
    assert failed[0].error_type == "socket_missing"
    assert path in failed[0].detail and "no such file" in failed[0].detail
    assert "hostPath" in failed[0].hint
    snap = node_snapshot()
    assert att.apply(snap) is snap
    # the refresh statistics render as the usual self-metrics
    fams = {f.name: f for f in render_families([], [att.stats], RenderOptions())}
    errors = {tuple(sorted(s.labels.items())): s.value for s in fams["accel_exporter_collect_errors"].samples
              if s.name.endswith("_total")}
    assert errors[(("accel_source", "pod-resources"), ("error_type", "socket_missing"))] >= 3


def test_client_errors_are_typed(sockdir, monkeypatch):
    with pytest.raises(PodResourcesError) as err:
        PodResourcesClient(os.path.join(sockdir, "nope.sock")).list()
    assert err.value.kind == "socket_missing"
    plain = os.path.join(sockdir, "file")
    open(plain, "w").close()
    with pytest.raises(PodResourcesError) as err:
        PodResourcesClient(plain).list()
    assert err.value.kind == "socket_missing" and "not a Unix socket" in err.value.detail

    class FakeRpc(grpc.RpcError):
        def __init__(self, code, details):
            self._c, self._d = code, details

        def code(self):
            return self._c

        def details(self):
            return self._d

    kinds = {code: _error_from_rpc("/s", FakeRpc(code, "x")).kind for code in (
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL)}
    assert kinds == {grpc.StatusCode.DEADLINE_EXCEEDED: "timeout", grpc.StatusCode.UNAVAILABLE: "unavailable",
                     grpc.StatusCode.PERMISSION_DENIED: "permission",
                     grpc.StatusCode.UNIMPLEMENTED: "unimplemented", grpc.StatusCode.INTERNAL: "grpc"}
    sock = os.path.join(sockdir, "s.sock")
    import socket as _socket
    with _socket.socket(_socket.AF_UNIX) as s:
        s.bind(sock)
        with monkeypatch.context() as m:
            m.setattr(os, "access", lambda path, mode: False)  # a non-root user on the kubelet's socket
            with pytest.raises(PodResourcesError) as err:
                PodResourcesClient(sock).list()
    assert err.value.kind == "permission"
    connect = FakeRpc(grpc.StatusCode.UNAVAILABLE, "failed to connect: Permission denied")
    assert _error_from_rpc("/s", connect).kind == "permission"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can open any socket")
def test_permission_denied(kubelet):
    os.chmod(kubelet.path, 0)
    with pytest.raises(PodResourcesError) as err:
        PodResourcesClient(kubelet.path).list()
    assert err.value.kind == "permission"


def test_hami_annotation_fallback_without_socket(sockdir):
    pods = [
        PodInfo("uid-h1", "batch", "hami-job", ("worker", "logger"),
                {"hami.io/vgpu-devices-allocated": f"{GPU[3]},NVIDIA,10240,30:;;",
                 "hami.io/vgpu-devices-to-allocate": ";"}),
        PodInfo("uid-h2", "batch", "small", ("main",),
                {"hami.io/vgpu-devices-allocated": f"{GPU[3]},NVIDIA,2048,10:{GPU[4]},NVIDIA,2048,10:;"}),
        PodInfo("uid-n", "npu", "vnpu-job", ("main",),
                {"hami.io/Ascend910B-devices-allocated": "npu-0-serial-abc,Ascend910B,16384,25:;"}),
    ]
    listed = {"pods": pods}
    att = DeviceAttributor(socket=os.path.join(sockdir, "absent.sock"), interval=10,
                           list_pods=lambda: listed["pods"])
    assert att.refresh() is False          # PodResources failed, the pod list worked
    got = _attr(att.apply(node_snapshot()))
    assert got[GPU[3]] is None                                   # shared by two HAMi pods
    assert got[GPU[4]] == ("batch", "small", "main", "uid-h2")
    assert got["npu-0-serial-abc"] == ("npu", "vnpu-job", "main", "uid-n")
    assert got[GPU[0]] is None
    assert got[GPU[7]] is None                                   # pod "old/gone" not listed
    assert got["hami-vgpu-uid-h1-worker-0"] == ("batch", "hami-job", "worker", "uid-h1")
    assert got["hami-vgpu-uid-h2-main-0"] == ("batch", "small", "main", "uid-h2")   # name from UID
    assert got["hami-vgpu-uid-h3-main-0"] is None
    listed["pods"] = pods[1:]
    att.refresh()
    got = _attr(att.apply(node_snapshot()))
    assert got["hami-vgpu-uid-h1-worker-0"] is None
    assert att.stats.errors["socket_missing"] == 2 and att.stats.errors["pod_list"] == 0


def test_hami_allocation_annotation_parsing():
    assert hami_allocations({
        "hami.io/vgpu-devices-allocated": "GPU-a,NVIDIA,1000,30:GPU-b,NVIDIA,1000,30:;;GPU-c,NVIDIA,5,0:;",
        "4pd.io/vgpu-devices-allocated": "GPU-d,NVIDIA,1,0:;",
        "hami.io/vgpu-node": "node-a",
    }) == [(0, "GPU-a"), (0, "GPU-b"), (2, "GPU-c"), (0, "GPU-d")]


def test_device_id_keys():
    uuid = "GPU-8c1a7e0e-3b1f-4e0b-9c7e-0d3f4a5b6c7d"
    assert device_id_keys("nvidia.com/gpu", uuid + "::3") == [("id", uuid.lower())]
    assert device_id_keys("nvidia.com/gpu", uuid + "-4") == [("id", uuid.lower())]   # HAMi split replica
    assert ("index", "nvidia", 2) in device_id_keys("nvidia.com/gpu", "nvidia2")
    assert ("index", "nvidia", 2) in device_id_keys("nvidia.com/gpu", "nvidia2/vgpu5")
    assert ("mig", "nvidia", 0, 7) in device_id_keys("nvidia.com/gpu", "nvidia0/gi7/vgpu0")
    assert ("index", "huawei", 3) in device_id_keys("huawei.com/Ascend910", "Ascend910-3")
    assert ("vnpu", "huawei", "100") in device_id_keys("huawei.com/Ascend910-2c", "Ascend910-2c-100-3")
    assert ("index", "hygon", 5) in device_id_keys("hygon.com/dcunum", "dcu5")
    assert ("index", "intel", 1) in device_id_keys("gpu.intel.com/i915", "card1-0")
    assert ("index", "cambricon", 0) in device_id_keys("cambricon.com/mlu", "0")
    # lists: UUIDs only, no ordinals; unknown resources: exact IDs only
    assert device_id_keys("nvidia.com/gpu", f"{uuid},NVIDIA,1000,30") == [("id", uuid.lower())]
    assert device_id_keys("example.com/foo", "7") == [("id", "7")]
    assert device_id_keys("amd.com/gpu", "0000:C1:00.0") == [("id", "0000:c1:00.0")]
    assert device_id_keys("nvidia.com/gpu", "00000000:C1:00.0") == [("id", "00000000:c1:00.0"),
                                                                  ("id", "0000:c1:00.0")]


def test_refresh_never_raises_on_client_bugs(events):
    class Broken:
        def list(self):
            raise RuntimeError("boom")

    att = DeviceAttributor(Broken(), interval=1)
    assert att.refresh() is False
    assert att.stats.errors["exception"] == 1


def test_background_thread_refreshes(kubelet):
    att = DeviceAttributor(socket=kubelet.path, timeout=2, interval=0.02)
    seen = threading.Event()
    att.subscribe(seen.set)
    att.start()
    try:
        assert seen.wait(3)
        deadline = time.monotonic() + 3
        while kubelet.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert kubelet.calls >= 3
        assert _attr(att.apply(node_snapshot()))[GPU[0]] == ("ml", "train", "trainer", None)
    finally:
        att.stop()


def test_exporter_once_attributes_mock_devices_through_podresources(kubelet, capsys):
    """The wiring: `accelscope exporter --pod-resources-socket` labels the
    device the kubelet says a pod holds, and the series carries the pod."""
    from accelscope.cli import main
    from exporter.sources.mock import MockSource

    gpu0 = MockSource().collect().devices[0].hw_id
    kubelet.pods = [_pod("ml", "trainer-0", ("main", [_dev("nvidia.com/gpu", gpu0)]))]
    assert main(["exporter", "--source", "mock", "--once", "--pod-resources-socket", kubelet.path,
                 "--log-level", "error", "--node-name", "n1"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("hw_gpu_memory_limit_bytes{") and gpu0 in x)
    assert 'k8s_namespace_name="ml"' in line and 'k8s_pod_name="trainer-0"' in line
    assert 'k8s_container_name="main"' in line
