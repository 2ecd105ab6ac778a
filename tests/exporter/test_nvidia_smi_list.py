"""Tests for the ``nvidia-smi -L`` parser."""

from __future__ import annotations

import pytest

from exporter.parsers import nvidia_smi_list as nl

H100_MIG = "nvidia-smi-L_h100-mig_590.txt"
GPU_UUID = "GPU-00000000-0000-0000-0000-000000000000"


def test_h100_mig_list(vendor_smi):
    parsed = nl.parse((vendor_smi / H100_MIG).read_text())
    assert parsed.problems == []
    assert parsed.processes == []
    (dev,) = parsed.devices
    assert dev.hw_id == GPU_UUID
    assert (dev.vendor, dev.kind, dev.index, dev.name) == ("nvidia", "gpu", 0, "gpu0")
    assert dev.model == "NVIDIA H100 80GB HBM3"
    # -L carries identity only: no readings
    assert dev.memory_total_bytes is None and dev.power_watts is None and dev.utilization == {}
    assert [(s.hw_id, s.profile, s.slice_id, s.info["mig_device_index"]) for s in parsed.slices] == [
        ("MIG-00000000-0000-0000-0000-000000000000", "3g.40gb", "mig0", "0"),
        ("MIG-00000001-0000-0000-0000-000000000001", "2g.20gb", "mig1", "1"),
        ("MIG-00000002-0000-0000-0000-000000000002", "1g.10gb", "mig2", "2"),
        ("MIG-00000003-0000-0000-0000-000000000003", "1g.10gb", "mig3", "3"),
    ]
    for sl in parsed.slices:
        assert sl.parent_id == GPU_UUID
        assert (sl.slice_type, sl.vendor, sl.parent_index, sl.model) == ("mig", "nvidia", 0, "NVIDIA H100 80GB HBM3")
        assert sl.memory_limit_bytes is None and sl.utilization is None


def test_several_gpus_and_old_mig_uuid_format():
    text = (
        "GPU 0: Tesla T4 (UUID: GPU-aaa)\n"
        "GPU 1: A100-SXM4-40GB (UUID: GPU-bbb)\n"
        "  MIG 3g.20gb Device 0: (UUID: MIG-GPU-bbb/1/0)\n"
        "  MIG 1g.5gb  Device 1: (UUID: MIG-GPU-bbb/7/0)\n"
    )
    parsed = nl.parse(text)
    assert parsed.problems == []
    assert [(d.hw_id, d.index, d.name, d.model) for d in parsed.devices] == [
        ("GPU-aaa", 0, "gpu0", "Tesla T4"),
        ("GPU-bbb", 1, "gpu1", "A100-SXM4-40GB"),
    ]
    assert [(s.hw_id, s.slice_id, s.profile, s.parent_id, s.parent_index) for s in parsed.slices] == [
        ("MIG-GPU-bbb/1/0", "gi1/ci0", "3g.20gb", "GPU-bbb", 1),
        ("MIG-GPU-bbb/7/0", "gi7/ci0", "1g.5gb", "GPU-bbb", 1),
    ]


def test_missing_uuids_fall_back():
    parsed = nl.parse("GPU 2: Some GPU (UUID: N/A)\n  MIG 1g.5gb Device 4: (UUID: [N/A])\nGPU 3: Bare GPU\n")
    assert [d.hw_id for d in parsed.devices] == ["nvidia-gpu2", "nvidia-gpu3"]
    assert [(s.hw_id, s.parent_id) for s in parsed.slices] == [("nvidia-gpu2/mig4", "nvidia-gpu2")]
    assert parsed.problems == []


def test_orphan_mig_line_and_junk_are_problems():
    text = "  MIG 1g.5gb Device 0: (UUID: MIG-x)\nNo devices were found\n\nGPU 0: T4 (UUID: GPU-a)\n"
    parsed = nl.parse(text)
    assert [d.hw_id for d in parsed.devices] == ["GPU-a"]
    assert parsed.slices == []
    assert [p.kind for p in parsed.problems] == ["parse", "parse"]
    assert "line 1" in parsed.problems[0].detail and "line 2" in parsed.problems[1].detail


@pytest.mark.parametrize(
    "text", ["", "garbage\x00\x01", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."]
)
def test_garbage_never_raises(text):
    parsed = nl.parse(text)
    assert parsed.devices == [] and parsed.slices == []
    assert len(parsed.problems) == (1 if text else 0)
