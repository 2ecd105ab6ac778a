"""HAMi node register annotations, handshake, node lock and device cordon.

Real values are quoted from ../shared/reference/hami-formats.md §2 (issue
numbers in comments); the rest are synthetic cases, one per grammar rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from scheduler_events.decoders.common import DecodeError
from scheduler_events.decoders.hami_node import (
    DeviceCordon,
    Handshake,
    MigProfile,
    NodeAnnotationKey,
    NodeDevice,
    NodeLock,
    NodeRegister,
    classify_node_annotation,
    decode_device_cordon,
    decode_handshake,
    decode_node_lock,
    decode_node_register,
)

MIB = 1024 * 1024
NVIDIA_KEY = "hami.io/node-nvidia-register"


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (NVIDIA_KEY, NodeAnnotationKey(NVIDIA_KEY, "register", "nvidia", "nvidia", "hami")),
        ("hami.io/node-dcu-register", NodeAnnotationKey("hami.io/node-dcu-register", "register", "hygon", "dcu", "hami")),
        ("hami.io/node-BI-V100-register", NodeAnnotationKey("hami.io/node-BI-V100-register", "register", "iluvatar", "BI-V100", "hami")),
        ("hami.io/node-MR-V50-register", NodeAnnotationKey("hami.io/node-MR-V50-register", "register", "iluvatar", "MR-V50", "hami")),
        ("hami.io/node-register-Ascend910B3", NodeAnnotationKey("hami.io/node-register-Ascend910B3", "register", "huawei", "Ascend910B3", "hami")),
        ("hami.io/node-register-Ascend310P", NodeAnnotationKey("hami.io/node-register-Ascend310P", "register", "huawei", "Ascend310P", "hami")),
        ("hami.io/node-register-xpu", NodeAnnotationKey("hami.io/node-register-xpu", "register", "kunlunxin", "xpu", "hami")),
        ("hami.io/node-va-register", NodeAnnotationKey("hami.io/node-va-register", "register", "vastai", "va", "hami")),
        ("hami.io/node-biren-register", NodeAnnotationKey("hami.io/node-biren-register", "register", "biren", "biren", "hami")),
        ("hami.io/node-amd-register", NodeAnnotationKey("hami.io/node-amd-register", "register", "amd", "amd", "hami")),
        ("hami.io/node-mlu-register", NodeAnnotationKey("hami.io/node-mlu-register", "register", "cambricon", "mlu", "hami")),
        ("metax-tech.com/node-gpu-devices", NodeAnnotationKey("metax-tech.com/node-gpu-devices", "register", "metax", "sgpu", "metax")),
        ("enflame.com/gcu-drs-capacity", NodeAnnotationKey("enflame.com/gcu-drs-capacity", "register", "enflame", "gcu", "enflame")),
        ("volcano.sh/node-vgpu-register", NodeAnnotationKey("volcano.sh/node-vgpu-register", "register", "nvidia", "vgpu", "volcano")),
        ("hami.io/node-foo-register", NodeAnnotationKey("hami.io/node-foo-register", "register", "unknown", "foo", "hami")),
        ("hami.io/node-handshake", NodeAnnotationKey("hami.io/node-handshake", "handshake", "nvidia", "nvidia")),
        ("hami.io/node-handshake-dcu", NodeAnnotationKey("hami.io/node-handshake-dcu", "handshake", "hygon", "dcu")),
        ("hami.io/node-handshake-Ascend910B3", NodeAnnotationKey("hami.io/node-handshake-Ascend910B3", "handshake", "huawei", "Ascend910B3")),
        ("hami.io/node-handshake-BI-V150", NodeAnnotationKey("hami.io/node-handshake-BI-V150", "handshake", "iluvatar", "BI-V150")),
        ("hami.io/node-handshake-xpu", NodeAnnotationKey("hami.io/node-handshake-xpu", "handshake", "kunlunxin", "xpu")),
        ("hami.io/mutex.lock", NodeAnnotationKey("hami.io/mutex.lock", "lock", "", None)),
        ("hami.io/device-cordon", NodeAnnotationKey("hami.io/device-cordon", "cordon", "", None)),
        ("hami.io/node-nvidia-score", None),
        ("kubernetes.io/hostname", None),
        (None, None),
    ],
)
def test_classify_node_annotation(key, expected):
    assert classify_node_annotation(key) == expected


# --------------------------------------------------------------------------- colon forms


def test_seven_field_form_issue_602():
    # HAMi v2.4, issue #602.
    value = "GPU-9a3603f4-f66e-d48b-11ea-13e327064cca,10,15360,100,NVIDIA-Tesla T4,0,true:"
    assert decode_node_register(value, NVIDIA_KEY) == NodeRegister(
        key=NVIDIA_KEY,
        vendor="nvidia",
        encoding="colon-7",
        devices=(
            NodeDevice(
                id="GPU-9a3603f4-f66e-d48b-11ea-13e327064cca",
                index=None,
                count=10,
                memory_bytes=15360 * MIB,
                core_units=100,
                cores=1.0,
                type="NVIDIA-Tesla T4",
                model="Tesla T4",
                numa=0,
                mode="hami-core",
                healthy=True,
            ),
        ),
    )


def test_nine_field_form_two_devices():
    # v2.5-v2.7 shape (hami-formats.md §2.3); the UUID is the one in the
    # website's hami_gpu_memory_limit_bytes example, 3.4359738368e+10 bytes.
    value = (
        "GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true,0,hami-core:"
        "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true,1,hami-core:"
    )
    reg = decode_node_register(value, NVIDIA_KEY)
    assert reg.encoding == "colon-9"
    assert reg.errors == ()
    assert [d.id for d in reg.devices] == [
        "GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec",
        "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448",
    ]
    assert [d.index for d in reg.devices] == [0, 1]
    assert reg.devices[0].memory_bytes == 34359738368
    assert reg.devices[1] == NodeDevice(
        id="GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448",
        index=1,
        count=10,
        memory_bytes=32768 * MIB,
        core_units=100,
        cores=1.0,
        type="NVIDIA-Tesla V100-PCIE-32GB",
        model="Tesla V100-PCIE-32GB",
        numa=0,
        mode="hami-core",
        healthy=True,
    )


def test_dcu_unit_test_value():
    # HAMi's own DCU unit test value (hami-formats.md §2.3).
    reg = decode_node_register("test-0,1,1024,100,DCU,0,true,0,test:", "hami.io/node-dcu-register")
    assert reg == NodeRegister(
        "hami.io/node-dcu-register",
        "hygon",
        "colon-9",
        (
            NodeDevice(
                id="test-0", index=0, count=1, memory_bytes=1024 * MIB, core_units=100, cores=1.0,
                type="DCU", model="DCU", numa=0, mode="test", healthy=True,
            ),
        ),
    )


def test_old_mlu_docs_example_unhealthy_zero_cores():
    # Old docs example (hami-formats.md §2.3): devcore 0, health false.
    value = "MLU-45013011-2257-0000-0000-000000000000,10,23308,0,MLU-MLU370-X4,0,false:"
    reg = decode_node_register(value, "hami.io/node-mlu-register")
    (dev,) = reg.devices
    assert (reg.vendor, reg.encoding, reg.errors) == ("cambricon", "colon-7", ())
    assert dev == NodeDevice(
        id="MLU-45013011-2257-0000-0000-000000000000", index=None, count=10, memory_bytes=23308 * MIB,
        core_units=0, cores=0.0, type="MLU-MLU370-X4", model="MLU370-X4", numa=0, mode="hami-core", healthy=False,
    )


def test_volcano_six_field_form():
    # volcano-vgpu-device-plugin: id,count,devmem,type,health,mode (no devcore/numa).
    value = "GPU-a1b2c3d4-0000-1111-2222-333344445555,10,32768,NVIDIA-Tesla V100-PCIE-32GB,true,hami-core:"
    reg = decode_node_register(value, "volcano.sh/node-vgpu-register")
    assert reg == NodeRegister(
        "volcano.sh/node-vgpu-register",
        "nvidia",
        "colon-6",
        (
            NodeDevice(
                id="GPU-a1b2c3d4-0000-1111-2222-333344445555", index=None, count=10, memory_bytes=32768 * MIB,
                core_units=None, cores=None, type="NVIDIA-Tesla V100-PCIE-32GB", model="Tesla V100-PCIE-32GB",
                numa=None, mode="hami-core", healthy=True,
            ),
        ),
    )


def test_colon_only_means_no_devices():
    assert decode_node_register(":", NVIDIA_KEY) == NodeRegister(NVIDIA_KEY, "nvidia", "", (), ())


def test_value_without_colon_is_rejected_like_hami():
    value = "GPU-x,10,15360,100,NVIDIA-Tesla T4,0,true"
    reg = decode_node_register(value, NVIDIA_KEY)
    assert reg.devices == ()
    assert reg.errors == (DecodeError("no_terminator", value),)


def test_missing_trailing_colon_is_tolerated_when_a_colon_exists():
    value = "GPU-a,10,100,100,NVIDIA-A,0,true:GPU-b,10,100,100,NVIDIA-A,0,true"
    assert [d.id for d in decode_node_register(value).devices] == ["GPU-a", "GPU-b"]


def test_wrong_field_count_skips_only_that_device():
    value = "GPU-a,10,100,100,NVIDIA-A,0,true:GPU-b,10,100,100,NVIDIA-A,0,true,0:"
    reg = decode_node_register(value, NVIDIA_KEY)
    assert [d.id for d in reg.devices] == ["GPU-a"]
    assert reg.errors == (DecodeError("field_count", "GPU-b,10,100,100,NVIDIA-A,0,true,0"),)


def test_bad_numbers_and_bool_keep_device_with_none():
    value = "GPU-a,ten,1.5,100,NVIDIA-A,x,maybe,0,hami-core:"
    reg = decode_node_register(value, NVIDIA_KEY)
    (dev,) = reg.devices
    assert (dev.count, dev.memory_bytes, dev.numa, dev.healthy) == (None, None, None, False)
    assert {e.code for e in reg.errors} == {"bad_int", "bad_bool"}
    assert DecodeError("bad_bool", "health=maybe") in reg.errors
    assert DecodeError("bad_int", "count=ten") in reg.errors


def test_go_bool_forms_and_mixed_generations():
    value = "GPU-a,10,100,100,NVIDIA-A,0,T:GPU-b,10,100,100,NVIDIA-A,1,0,1,mps:"
    reg = decode_node_register(value, NVIDIA_KEY)
    assert reg.encoding == "colon-mixed"
    assert [(d.healthy, d.mode, d.numa) for d in reg.devices] == [(True, "hami-core", 0), (False, "mps", 1)]


def test_devmem_is_int32_like_hami():
    reg = decode_node_register("GPU-a,10,4294967296,100,NVIDIA-A,0,true:")
    assert reg.devices[0].memory_bytes is None
    assert reg.errors == (DecodeError("bad_int", "devmem=4294967296"),)


def test_core_scaling_shows_above_one():
    reg = decode_node_register("GPU-a,10,100,200,NVIDIA-A,0,true:", NVIDIA_KEY)
    assert reg.devices[0].cores == 2.0


def test_empty_id_segment_is_skipped():
    reg = decode_node_register(",10,100,100,NVIDIA-A,0,true:")
    assert reg.devices == ()
    assert reg.errors[0].code == "bad_shape"


# --------------------------------------------------------------------------- JSON form


def test_json_form_issue_1173():
    # v2.8/2.9 log, issue #1173: index and numa omitted (0).
    value = (
        '[{"id":"GPU-4f026841-54b1-eb28-d2c2-2339b9682ec1","count":100,"devmem":32768,"devcore":100,'
        '"type":"NVIDIA-NVIDIA GeForce RTX 3070","mode":"hami-core","health":true}]'
    )
    assert decode_node_register(value, NVIDIA_KEY) == NodeRegister(
        NVIDIA_KEY,
        "nvidia",
        "json",
        (
            NodeDevice(
                id="GPU-4f026841-54b1-eb28-d2c2-2339b9682ec1", index=0, count=100, memory_bytes=32768 * MIB,
                core_units=100, cores=1.0, type="NVIDIA-NVIDIA GeForce RTX 3070", model="NVIDIA GeForce RTX 3070",
                numa=0, mode="hami-core", healthy=True,
            ),
        ),
    )


def test_json_form_h100_shape():
    value = (
        '[{"id":"GPU-e5f0c1aa-0000-4c3e-9d1f-000000000001","index":1,"count":10,"devmem":81559,"devcore":100,'
        '"type":"NVIDIA-NVIDIA H100 80GB HBM3","numa":1,"mode":"hami-core","health":true}]'
    )
    (dev,) = decode_node_register(value, NVIDIA_KEY).devices
    assert (dev.index, dev.numa, dev.memory_bytes, dev.model) == (1, 1, 81559 * MIB, "NVIDIA H100 80GB HBM3")


def test_json_missing_health_means_unhealthy():
    value = '[{"id":"GPU-a","count":10,"devmem":100,"devcore":100,"type":"NVIDIA-A","mode":"hami-core"}]'
    reg = decode_node_register(value, NVIDIA_KEY)
    assert reg.devices[0].healthy is False
    assert reg.errors == ()


def test_json_omitted_zero_fields():
    reg = decode_node_register('[{"id":"GPU-a"}]', NVIDIA_KEY)
    assert reg.devices[0] == NodeDevice(
        id="GPU-a", index=0, count=0, memory_bytes=0, core_units=0, cores=0.0, type=None, model=None,
        numa=0, mode=None, healthy=False,
    )


def test_json_keys_are_case_insensitive_like_go():
    reg = decode_node_register('[{"ID":"GPU-a","Health":true,"DevMem":1}]', NVIDIA_KEY)
    assert (reg.devices[0].id, reg.devices[0].healthy, reg.devices[0].memory_bytes) == ("GPU-a", True, MIB)


def test_json_mig_profiles():
    value = (
        '[{"id":"GPU-a","count":7,"devmem":81559,"devcore":100,"type":"NVIDIA-NVIDIA A100","mode":"mig",'
        '"migProfiles":[{"name":"1g.10gb","memoryMB":9856,"core":14,"sliceCount":1,"placements":[{"start":0,"size":1}]}],'
        '"health":true}]'
    )
    (dev,) = decode_node_register(value, NVIDIA_KEY).devices
    assert dev.mode == "mig"
    assert dev.mig_profiles == (MigProfile("1g.10gb", 9856 * MIB, 14, 1, ((0, 1),)),)


def test_json_ascend_custominfo_and_aicore_count():
    value = (
        '[{"id":"die-0","count":7,"devmem":65536,"devcore":20,"type":"Ascend910B3","health":true,'
        '"custominfo":{"NetworkID":"10.0.0.1"}}]'
    )
    reg = decode_node_register(value, "hami.io/node-register-Ascend910B3")
    (dev,) = reg.devices
    assert (reg.vendor, dev.core_units, dev.cores, dev.model) == ("huawei", 20, 1.0, "Ascend910B3")
    assert dev.custom_info == {"custominfo": {"NetworkID": "10.0.0.1"}}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("[{", "bad_json"),
        ('{"id":"GPU-a"}', "bad_shape"),  # an object, not an array, under a HAMi key
        ('["GPU-a"]', "bad_shape"),
        ('[{"count":1}]', "bad_shape"),  # no id
        ('[{"id":"GPU-a","count":"10"}]', "bad_int"),
        ('[{"id":"GPU-a","devmem":true}]', "bad_int"),
        ('[{"id":"GPU-a","health":"true"}]', "bad_bool"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_json_and_empty_errors(value, code):
    reg = decode_node_register(value, NVIDIA_KEY)
    assert code in {e.code for e in reg.errors}


def test_non_string_value():
    reg = decode_node_register(None, NVIDIA_KEY)
    assert reg.errors == (DecodeError("bad_type", "None"),)


def test_sniffed_without_key():
    reg = decode_node_register('[{"id":"GPU-a","health":true}]')
    assert (reg.key, reg.vendor, reg.encoding) == (None, "unknown", "json")


# --------------------------------------------------------------------------- Metax, Enflame


def test_metax_hami_test_value():
    # HAMi tests, pkg/device/metax (hami-formats.md §2.4).
    value = (
        '[{"uuid":"GPU-123","model":"sgpu","totalDevCount":16,"totalCompute":100,"bdf":"0000:44:00.0",'
        '"totalVRam":32768,"numa":1,"healthy":true,"qosPolicy":"fixed-share"}]'
    )
    for key in ("metax-tech.com/node-gpu-devices", None):
        reg = decode_node_register(value, key)
        assert reg == NodeRegister(
            key,
            "metax",
            "metax-json",
            (
                NodeDevice(
                    id="GPU-123", index=None, count=16, memory_bytes=32768 * MIB, core_units=100, cores=1.0,
                    type="sgpu", model="sgpu", numa=1, mode=None, healthy=True,
                    custom_info={"bdf": "0000:44:00.0", "qospolicy": "fixed-share"},
                ),
            ),
        )


def test_enflame_hami_test_value():
    # HAMi tests (hami-formats.md §2.4).
    value = '{"devices":[{"index":"0","minor":"0","capacity":6}],"profiles":{"1g.6gb":"0","3g.20gb":"1","6g.40gb":"2"}}'
    for key in ("enflame.com/gcu-drs-capacity", None):
        assert decode_node_register(value, key) == NodeRegister(
            key,
            "enflame",
            "enflame-json",
            (
                NodeDevice(
                    id="0", index=0, count=6, healthy=None,
                    custom_info={"minor": "0", "profiles": {"1g.6gb": "0", "3g.20gb": "1", "6g.40gb": "2"}},
                ),
            ),
        )


def test_enflame_bad_entries():
    reg = decode_node_register('{"devices":[{"index":"x"},{"index":1,"capacity":"y"}]}', "enflame.com/gcu-drs-capacity")
    assert [d.id for d in reg.devices] == ["1"]
    assert [e.code for e in reg.errors] == ["bad_int", "bad_int"]
    assert decode_node_register('{"nodevices":1}', "enflame.com/gcu-drs-capacity").errors[0].code == "bad_shape"


# --------------------------------------------------------------------------- handshake

UTC = timezone.utc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # NVIDIA device plugin <= v2.7, Go time.Now().String(), issue #602.
        (
            "Reported 2024-11-10 11:05:48.756620661 +0000 UTC m=+2976.676870749",
            Handshake("reported", datetime(2024, 11, 10, 11, 5, 48, 756620, tzinfo=UTC), "go-string", 2976.676870749),
        ),
        # Ascend device plugin (current), dotted local time.
        ("Reported_2026.07.24 08:39:37", Handshake("reported", datetime(2026, 7, 24, 8, 39, 37), "dotted")),
        # Old MLU docs example.
        ("Requesting_2024.01.10 04:06:57", Handshake("requesting", datetime(2024, 1, 10, 4, 6, 57), "dotted")),
        # HAMi scheduler, Go time.DateTime, issue #1173.
        ("Requesting_2025-07-12 01:12:20", Handshake("requesting", datetime(2025, 7, 12, 1, 12, 20), "datetime")),
        # HAMi scheduler <= v2.4.
        ("Deleted_2024-03-01 10:00:00", Handshake("deleted", datetime(2024, 3, 1, 10, 0, 0), "datetime")),
        # Go String() with a named non-UTC zone, no fraction, no monotonic part.
        (
            "Reported 2024-11-10 19:05:48 +0800 CST",
            Handshake("reported", datetime(2024, 11, 10, 19, 5, 48, tzinfo=timezone(timedelta(hours=8))), "go-string"),
        ),
        # Zone without abbreviation (Go prints the offset again) and a negative monotonic reading.
        (
            "Reported 2024-11-10 06:05:48.5 -0530 -0530 m=-1.25",
            Handshake(
                "reported",
                datetime(2024, 11, 10, 6, 5, 48, 500000, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
                "go-string",
                -1.25,
            ),
        ),
        ("Reported_2024-11-10T11:05:48Z", Handshake("reported", datetime(2024, 11, 10, 11, 5, 48, tzinfo=UTC), "rfc3339")),
    ],
)
def test_handshake_forms(value, expected):
    assert decode_handshake(value) == expected


def test_go_string_utc_equals_same_instant():
    hs = decode_handshake("Reported 2024-11-10 11:05:48.756620661 +0000 UTC m=+2976.676870749")
    assert hs.time.timestamp() == datetime(2024, 11, 10, 11, 5, 48, 756620, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Requesting", Handshake("requesting", errors=(DecodeError("bad_time", "Requesting"),))),
        ("Requesting_yesterday", Handshake("requesting", errors=(DecodeError("bad_time", "Requesting_yesterday"),))),
        ("Reported_2024-13-40 99:00:00", Handshake("reported", errors=(DecodeError("bad_time", "Reported_2024-13-40 99:00:00"),))),
        ("Ready_2024-01-01 00:00:00", Handshake(None, errors=(DecodeError("no_match", "Ready_2024-01-01 00:00:00"),))),
        ("", Handshake(None, errors=(DecodeError("empty", ""),))),
        (42, Handshake(None, errors=(DecodeError("bad_type", "42"),))),
    ],
)
def test_handshake_bad(value, expected):
    assert decode_handshake(value) == expected


# --------------------------------------------------------------------------- lock, cordon


def test_node_lock_issue_1422():
    assert decode_node_lock("2025-10-20T03:07:02Z,jingyu-test,gputest-6c77bb77f8-gvtzc") == NodeLock(
        True, datetime(2025, 10, 20, 3, 7, 2, tzinfo=UTC), "jingyu-test", "gputest-6c77bb77f8-gvtzc"
    )


def test_node_lock_forms():
    assert decode_node_lock("2025-10-20T03:07:02Z") == NodeLock(True, datetime(2025, 10, 20, 3, 7, 2, tzinfo=UTC))
    assert decode_node_lock("") == NodeLock(False)
    assert decode_node_lock(None) == NodeLock(False)
    bad = decode_node_lock("soon,ns")
    assert bad.held is True
    assert [e.code for e in bad.errors] == ["bad_time", "field_count"]


def test_device_cordon():
    assert decode_device_cordon("GPU-a, GPU-b,,") == DeviceCordon(("GPU-a", "GPU-b"))
    assert decode_device_cordon(None) == DeviceCordon()
    assert decode_device_cordon(3).errors[0].code == "bad_type"
