"""HAMi pod allocation annotations: container-device lists, bind phase, times.

Real values are quoted from ../shared/reference/hami-formats.md §3 (issue
numbers in comments); the rest are synthetic cases, one per grammar rule.
"""

from __future__ import annotations

import pytest

from scheduler_events.decoders.common import DecodeError
from scheduler_events.decoders.hami_pod import (
    AllocatedDevice,
    AllocationKey,
    BindPhase,
    ContainerDeviceList,
    HamiPodAnnotations,
    UnixSeconds,
    VendorAllocation,
    classify_allocation_key,
    decode_bind_phase,
    decode_container_devices,
    decode_pod_annotations,
    decode_unix_seconds,
)

MIB = 1024 * 1024
ALLOCATED = "hami.io/vgpu-devices-allocated"
TO_ALLOCATE = "hami.io/vgpu-devices-to-allocate"


def nv(uuid: str, mib: int, cores: int) -> AllocatedDevice:
    return AllocatedDevice(uuid, "NVIDIA", mib * MIB, cores, cores / 100)


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (ALLOCATED, AllocationKey(ALLOCATED, "allocated", "nvidia", "vgpu")),
        (TO_ALLOCATE, AllocationKey(TO_ALLOCATE, "to-allocate", "nvidia", "vgpu")),
        ("hami.io/dcu-devices-allocated", AllocationKey("hami.io/dcu-devices-allocated", "allocated", "hygon", "dcu")),
        ("hami.io/cambricon-mlu-devices-to-allocate", AllocationKey("hami.io/cambricon-mlu-devices-to-allocate", "to-allocate", "cambricon", "cambricon-mlu")),
        ("hami.io/mthreads-vgpu-devices-allocated", AllocationKey("hami.io/mthreads-vgpu-devices-allocated", "allocated", "mthreads", "mthreads-vgpu")),
        ("hami.io/metax-gpu-devices-allocated", AllocationKey("hami.io/metax-gpu-devices-allocated", "allocated", "metax", "metax-gpu")),
        ("hami.io/metax-sgpu-devices-to-allocate", AllocationKey("hami.io/metax-sgpu-devices-to-allocate", "to-allocate", "metax", "metax-sgpu")),
        ("hami.io/Ascend910B3-devices-allocated", AllocationKey("hami.io/Ascend910B3-devices-allocated", "allocated", "huawei", "Ascend910B3")),
        ("hami.io/BI-V100-devices-to-allocate", AllocationKey("hami.io/BI-V100-devices-to-allocate", "to-allocate", "iluvatar", "BI-V100")),
        ("hami.io/xpu-devices-allocated", AllocationKey("hami.io/xpu-devices-allocated", "allocated", "kunlunxin", "xpu")),
        ("hami.io/kunlun-allocated", AllocationKey("hami.io/kunlun-allocated", "allocated", "kunlunxin", "kunlun")),
        ("hami.io/enflame-gcu-devices-allocated", AllocationKey("hami.io/enflame-gcu-devices-allocated", "allocated", "enflame", "enflame-gcu")),
        ("hami.io/enflame-vgpu-devices-allocated", AllocationKey("hami.io/enflame-vgpu-devices-allocated", "allocated", "enflame", "enflame-vgpu")),
        ("hami.io/amd-devices-to-allocate", AllocationKey("hami.io/amd-devices-to-allocate", "to-allocate", "amd", "amd")),
        ("hami.io/aws-neuron-devices-allocated", AllocationKey("hami.io/aws-neuron-devices-allocated", "allocated", "aws", "aws-neuron")),
        ("hami.io/Vastai-devices-to-allocate", AllocationKey("hami.io/Vastai-devices-to-allocate", "to-allocate", "vastai", "Vastai")),
        ("hami.io/Biren-devices-allocated", AllocationKey("hami.io/Biren-devices-allocated", "allocated", "biren", "Biren")),
        ("hami.io/newchip-devices-allocated", AllocationKey("hami.io/newchip-devices-allocated", "allocated", "unknown", "newchip")),
        ("volcano.sh/devices-to-allocate", AllocationKey("volcano.sh/devices-to-allocate", "to-allocate", "nvidia", "vgpu", "volcano")),
        ("volcano.sh/vgpu-ids-new", AllocationKey("volcano.sh/vgpu-ids-new", "allocated", "nvidia", "vgpu", "volcano")),
        ("hami.io/vgpu-mig-allocations", None),
        ("hami.io/vgpu-node", None),
        (7, None),
    ],
)
def test_classify_allocation_key(key, expected):
    assert classify_allocation_key(key) == expected


# --------------------------------------------------------------------------- device lists


def test_issue_1417_single_container():
    # Issue #1417 (v2.6).
    value = "GPU-c15bf6bc-3faf-3140-4788-0e1dcb7af8c2,NVIDIA,5000,0:;"
    assert decode_container_devices(value) == ContainerDeviceList(
        ((nv("GPU-c15bf6bc-3faf-3140-4788-0e1dcb7af8c2", 5000, 0),),)
    )


def test_issue_991_both_empty_encodings():
    # Issue #991: container 1 empty as ";", containers 2-4 empty as ",,0,0:;".
    value = "GPU-0aa6b97c-d386-26ba-a94a-b9d27c2e3a71,NVIDIA,1000,0:;;,,0,0:;,,0,0:;,,0,0:;"
    assert decode_container_devices(value) == ContainerDeviceList(
        ((nv("GPU-0aa6b97c-d386-26ba-a94a-b9d27c2e3a71", 1000, 0),), (), (), (), ())
    )


def test_issue_1932_leading_empty_entry():
    # Issue #1932: container 0 has no GPU; this broke HAMi-WebUI 1.2.0.
    value = ";GPU-9b9030a3-d81f-7d9f-5d2b-fd98cdc57b2d,NVIDIA,6144,30:;"
    result = decode_container_devices(value)
    assert result == ContainerDeviceList(((), (nv("GPU-9b9030a3-d81f-7d9f-5d2b-fd98cdc57b2d", 6144, 30),)))
    assert result.containers[1][0].core_ratio == 0.3
    assert result.device_count == 1


@pytest.mark.parametrize(
    ("value", "containers"),
    [
        ("", 0),
        (None, 0),
        (";", 1),  # a fully consumed to-allocate (issue #1417)
        (";;;", 3),  # issue #987
        (",,0,0:;", 1),
    ],
)
def test_separator_only_values(value, containers):
    result = decode_container_devices(value)
    assert result.errors == ()
    assert len(result.containers) == containers
    assert result.is_empty


def test_several_devices_and_containers():
    value = "GPU-a,NVIDIA,3000,25:GPU-b,NVIDIA,3000,25:;GPU-c,NVIDIA,100,0:;"
    assert decode_container_devices(value).containers == (
        (nv("GPU-a", 3000, 25), nv("GPU-b", 3000, 25)),
        (nv("GPU-c", 100, 0),),
    )


def test_no_trailing_separators_is_one_container():
    assert decode_container_devices("GPU-a,NVIDIA,1,2").containers == ((nv("GPU-a", 1, 2),),)


def test_extra_fields_are_ignored_like_hami():
    assert decode_container_devices("GPU-a,NVIDIA,1,2,extra:;").containers == ((nv("GPU-a", 1, 2),),)


def test_mig_template_slot_suffix():
    (dev,) = decode_container_devices("GPU-a[3-1],NVIDIA,9856,0:;").containers[0]
    assert (dev.uuid, dev.mig_template, dev.mig_slot) == ("GPU-a", 3, 1)


def test_other_vendor_type_and_core_scale():
    value = "die-0,Ascend910B3,16384,5:;"
    (dev,) = decode_container_devices(value, core_scales={"die-0": 20}).containers[0]
    assert dev == AllocatedDevice("die-0", "Ascend910B3", 16384 * MIB, 5, 0.25)
    (dev,) = decode_container_devices(value).containers[0]
    assert dev.core_ratio == 0.05


def test_short_device_is_skipped_and_counted():
    result = decode_container_devices("GPU-a,NVIDIA,1:GPU-b,NVIDIA,1,0:;")
    assert result.containers == ((nv("GPU-b", 1, 0),),)
    assert result.errors == (DecodeError("field_count", "GPU-a,NVIDIA,1"),)


def test_bad_numbers_keep_device():
    result = decode_container_devices("GPU-a,NVIDIA,lots,3000000000:;")
    assert result.containers == ((AllocatedDevice("GPU-a", "NVIDIA", None, None, None),),)
    assert result.errors == (DecodeError("bad_int", "memory=lots"), DecodeError("bad_int", "cores=3000000000"))


def test_stray_text_without_comma():
    result = decode_container_devices("garbage:;")
    assert result.containers == ((),)
    assert result.errors == (DecodeError("field_count", "garbage"),)


def test_nonzero_empty_device_is_flagged():
    result = decode_container_devices(",,5,0:;")
    assert result.containers == ((),)
    assert result.errors == (DecodeError("bad_shape", ",,5,0"),)


def test_non_string():
    assert decode_container_devices(b"x").errors[0].code == "bad_type"


# --------------------------------------------------------------------------- bind phase, seconds


@pytest.mark.parametrize("phase", ["allocating", "success", "failed"])
def test_bind_phases(phase):
    assert decode_bind_phase(phase) == BindPhase(phase)


def test_bind_phase_bad():
    assert decode_bind_phase("done") == BindPhase(None, (DecodeError("unknown_value", "done"),))
    assert decode_bind_phase("") == BindPhase(None, (DecodeError("empty", ""),))
    assert decode_bind_phase(None) == BindPhase(None)
    assert decode_bind_phase(1).errors[0].code == "bad_type"


def test_unix_seconds():
    assert decode_unix_seconds("1760929506") == UnixSeconds(1760929506)  # issue #1417
    assert decode_unix_seconds(None) == UnixSeconds(None)
    assert decode_unix_seconds("1760929506.5") == UnixSeconds(None, (DecodeError("bad_int", "1760929506.5"),))
    assert decode_unix_seconds("-1").errors[0].code == "bad_int"
    assert decode_unix_seconds(" ").errors[0].code == "empty"


# --------------------------------------------------------------------------- whole pod


def test_issue_1417_annotations():
    # Issue #1417 (v2.6), every HAMi annotation of one placed pod.
    annotations = {
        "hami.io/bind-phase": "success",
        "hami.io/bind-time": "1760929506",
        "hami.io/vgpu-devices-allocated": "GPU-c15bf6bc-3faf-3140-4788-0e1dcb7af8c2,NVIDIA,5000,0:;",
        "hami.io/vgpu-devices-to-allocate": ";",
        "hami.io/vgpu-node": "voice-node003-77-alma88",
        "hami.io/vgpu-time": "1760929506",
        "kubectl.kubernetes.io/restartedAt": "2025-10-20T03:00:00Z",
    }
    result = decode_pod_annotations(annotations)
    assert result == HamiPodAnnotations(
        allocations=(
            VendorAllocation(
                AllocationKey(ALLOCATED, "allocated", "nvidia", "vgpu"),
                ContainerDeviceList(((nv("GPU-c15bf6bc-3faf-3140-4788-0e1dcb7af8c2", 5000, 0),),)),
            ),
            VendorAllocation(
                AllocationKey(TO_ALLOCATE, "to-allocate", "nvidia", "vgpu"),
                ContainerDeviceList(((),)),
            ),
        ),
        node="voice-node003-77-alma88",
        filter_time_s=1760929506,
        bind_time_s=1760929506,
        bind_phase="success",
    )
    assert [a.key.kind for a in result.allocated()] == ["allocated"]
    assert result.to_allocate()[0].devices.is_empty


def test_issue_1932_pending_allocate():
    annotations = {
        ALLOCATED: ";GPU-9b9030a3-d81f-7d9f-5d2b-fd98cdc57b2d,NVIDIA,6144,30:;",
        TO_ALLOCATE: ";;;",
        "hami.io/bind-phase": "allocating",
    }
    result = decode_pod_annotations(annotations)
    assert result.bind_phase == "allocating"
    assert result.allocated()[0].devices.containers == ((), (nv("GPU-9b9030a3-d81f-7d9f-5d2b-fd98cdc57b2d", 6144, 30),))
    assert len(result.to_allocate()[0].devices.containers) == 3


def test_volcano_and_other_vendor_keys():
    annotations = {
        "volcano.sh/vgpu-ids-new": "GPU-a,NVIDIA,1024,50:;",
        "volcano.sh/vgpu-node": "n1",
        "volcano.sh/vgpu-time": "100",
        "volcano.sh/bind-time": "101",
        "volcano.sh/bind-phase": "failed",
        "hami.io/dcu-devices-allocated": "DCU-1,DCU,2048,100:;",
    }
    result = decode_pod_annotations(annotations)
    assert (result.node, result.filter_time_s, result.bind_time_s, result.bind_phase) == ("n1", 100, 101, "failed")
    assert [(a.key.vendor, a.key.writer) for a in result.allocations] == [("hygon", "hami"), ("nvidia", "volcano")]


def test_pod_annotation_errors_are_collected():
    result = decode_pod_annotations({ALLOCATED: "GPU-a,NVIDIA:;", "hami.io/bind-phase": "nope", "hami.io/vgpu-time": "x"})
    assert sorted(e.code for e in result.errors) == ["bad_int", "field_count", "unknown_value"]
    assert decode_pod_annotations(["not", "a", "dict"]).errors[0].code == "bad_type"
    assert decode_pod_annotations(None) == HamiPodAnnotations()
    assert decode_pod_annotations({"hami.io/vgpu-node": ""}).errors[0].code == "empty"
