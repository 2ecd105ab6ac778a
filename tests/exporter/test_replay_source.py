"""Tests for the replay source (format detection, merging, re-reading)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from exporter.model import MIB, Snapshot
from exporter.sources import replay
from exporter.sources.replay import ReplaySource, detect_format

A100_XML = "nvidia-smi-q-x_a100-sxm4-40gb_mig_510.xml"
RTX_XML = "nvidia-smi-q-x_rtx4070-laptop_575_consumer-na.xml"
H100_CSV = "nvidia-smi-query-gpu_h100_590_load.csv"
L40S_CSV = "nvidia-smi-query-gpu_l40s_595_load.csv"
H100_TEXT = "nvidia-smi-q_h100_590_load.txt"
H100_LIST = "nvidia-smi-L_h100-mig_590.txt"
H100_APPS = "nvidia-smi-query-compute-apps_h100-mig_590_load.csv"

H100_UUID = "GPU-00000000-0000-0000-0000-000000000000"
A100_UUID = "GPU-00000000-1111-2222-3333-444444444444"
RTX_UUID = "GPU-00000000-aaaa-bbbb-cccc-000000004070"


def _copy(vendor_smi: Path, dest: Path, names_to: dict[str, str]) -> None:
    """Copy captures under neutral names (detection must not use the name)."""
    for src, dst in names_to.items():
        shutil.copyfile(vendor_smi / src, dest / dst)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (A100_XML, "nvidia-smi-xml"),
        (RTX_XML, "nvidia-smi-xml"),
        (H100_CSV, "nvidia-smi-query-gpu"),
        (L40S_CSV, "nvidia-smi-query-gpu"),
        (H100_TEXT, "nvidia-smi-text"),
        (H100_LIST, "nvidia-smi-list"),
        (H100_APPS, "nvidia-smi-compute-apps"),
        ("mx-smi-dmon_csv_mxc500_2gpu_testfixture.csv", "mx-smi-dmon"),
        ("mx-smi_metax-n260_2gpu_2.2.8.txt", "mx-smi"),
        ("amd-smi-metric-json_radeon-rdna3-32gb_gpu0.json", "amd-smi-metric-json"),
        ("npu-smi-info_910-8npu_24.1.0.txt", "npu-smi-info"),
        ("npu-smi-info_ascend910-a3_25.5.1_dual-die_procs.txt", "npu-smi-info"),
        ("hy-smi_8dcu_manual-perf_loaded.txt", "hy-smi"),
        ("xpu-smi_kunlunxin-p800_8xpu_5.0.21.txt", "xpu-smi"),
        ("cnmon_mlu370-x8_2card_5.10.22_mode-full.txt", "cnmon"),
        ("cnmon_mlu370-x4_4.20.11_legacy-vmemory-format.txt", "cnmon"),
        ("ixsmi_bi-v150_16gpu_4.1.0.txt", "ixsmi"),
        ("SOURCES.md", None),
    ],
)
def test_detect_format_by_content(vendor_smi, name, expected):
    assert detect_format((vendor_smi / name).read_text()) == expected


def test_detect_format_junk():
    assert detect_format("") is None
    assert detect_format("\x00\x01\x02<nvidia_smi_log>") is None
    assert detect_format("hello, world\n1, 2\n") is None


def test_directory_merge(vendor_smi, tmp_path):
    _copy(
        vendor_smi,
        tmp_path,
        {
            A100_XML: "a",
            RTX_XML: "b",
            H100_CSV: "c",
            H100_TEXT: "d",
            H100_LIST: "e",
            H100_APPS: "f",
        },
    )
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01\x02 not a capture \xff\xfe")
    (tmp_path / ".hidden").write_text("GPU 9: Hidden (UUID: GPU-hidden)\n")
    (tmp_path / "subdir").mkdir()
    (tmp_path / "subdir" / "x").write_text("GPU 8: Nested (UUID: GPU-nested)\n")

    snap = ReplaySource(tmp_path, clock=lambda: 1234.5).collect()
    assert isinstance(snap, Snapshot)
    assert (snap.source, snap.timestamp) == ("replay", 1234.5)
    assert [(p.kind, p.detail.split(":")[0]) for p in snap.problems] == [("unknown_format", "junk.bin")]

    by_id = {d.hw_id: d for d in snap.devices}
    assert sorted(by_id) == sorted([H100_UUID, A100_UUID, RTX_UUID])

    h100 = by_id[H100_UUID]
    # CSV is the richest H100 record: it wins per field, -q text fills nothing new here
    assert h100.model == "NVIDIA H100 80GB HBM3"
    assert h100.compute_capability == "9.0"  # only the CSV has it
    assert h100.power_watts == 625.68  # CSV instant draw
    assert h100.temperatures == {"gpu": 59.0, "memory": 54.0}
    assert h100.memory_total_bytes == 81559 * MIB
    assert h100.pci_bus_id == "0000:00:09.0"
    assert (h100.index, h100.name) == (0, "gpu0")

    a100 = by_id[A100_UUID]
    assert a100.memory_total_bytes == 40960 * MIB and a100.power_watts == 66.92
    rtx = by_id[RTX_UUID]
    assert rtx.power_watts == 11.26 and rtx.serial is None

    # 2 A100 MIG slices (XML) + 4 H100 MIG slices (-L)
    assert sorted((s.parent_id, s.slice_id, s.profile) for s in snap.slices) == sorted(
        [
            (A100_UUID, "gi1/ci0", None),
            (A100_UUID, "gi2/ci0", None),
            (H100_UUID, "mig0", "3g.40gb"),
            (H100_UUID, "mig1", "2g.20gb"),
            (H100_UUID, "mig2", "1g.10gb"),
            (H100_UUID, "mig3", "1g.10gb"),
        ]
    )

    # 2 RTX (XML) + 3 (-q text) + 3 (compute-apps): different pids, nothing lost
    assert sorted((p.pid, p.parent_id, p.memory_bytes) for p in snap.processes) == sorted(
        [
            (1802, RTX_UUID, 1448 * MIB),
            (1890, RTX_UUID, 23 * MIB),
            (11327, H100_UUID, 2566 * MIB),
            (11328, H100_UUID, 1542 * MIB),
            (11345, H100_UUID, 15690 * MIB),
            (21180, H100_UUID, 2296 * MIB),
            (21181, H100_UUID, 1272 * MIB),
            (21198, H100_UUID, 7484 * MIB),
        ]
    )


XML_MIG = """<?xml version="1.0" ?>
<nvidia_smi_log><driver_version>550.54</driver_version>
<gpu id="00000000:C1:00.0"><product_name>NVIDIA A100-SXM4-40GB</product_name>
<uuid>GPU-m</uuid><pci><pci_bus_id>00000000:C1:00.0</pci_bus_id></pci>
<fb_memory_usage><total>40960 MiB</total><used>100 MiB</used></fb_memory_usage>
<mig_devices>
<mig_device><index>0</index><gpu_instance_id>1</gpu_instance_id><compute_instance_id>0</compute_instance_id>
<fb_memory_usage><total>19968 MiB</total><used>19 MiB</used></fb_memory_usage></mig_device>
<mig_device><index>1</index><gpu_instance_id>2</gpu_instance_id><compute_instance_id>0</compute_instance_id>
<fb_memory_usage><total>19968 MiB</total><used>25 MiB</used></fb_memory_usage></mig_device>
</mig_devices>
<processes><process_info><gpu_instance_id>2</gpu_instance_id><compute_instance_id>0</compute_instance_id>
<pid>77</pid><process_name>train</process_name><used_memory>6 MiB</used_memory></process_info></processes>
</gpu></nvidia_smi_log>
"""

LIST_MIG = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-m)
  MIG 3g.20gb     Device  0: (UUID: MIG-zero)
  MIG 3g.20gb     Device  1: (UUID: MIG-one)
"""

CSV_NO_UUID = "pci.bus_id, compute_cap, power.draw [W]\n00000000:C1:00.0, 8.0, 90.00 W\n"
APPS_ON_GPU = "gpu_uuid, pid, process_name, used_gpu_memory [MiB]\nGPU-m, 77, train, 6 MiB\nGPU-m, 78, eval, 1 MiB\n"


def test_mig_slices_merge_across_xml_and_list(tmp_path):
    (tmp_path / "1").write_text(XML_MIG)
    (tmp_path / "2").write_text(LIST_MIG)
    (tmp_path / "3").write_text(CSV_NO_UUID)
    (tmp_path / "4").write_text(APPS_ON_GPU)
    snap = ReplaySource(tmp_path).collect()
    assert snap.problems == []
    (dev,) = snap.devices  # the CSV record (no UUID) matched by PCI bus id
    assert dev.hw_id == "GPU-m"
    assert dev.compute_capability == "8.0" and dev.power_watts == 90.0
    assert dev.memory_total_bytes == 40960 * MIB and dev.driver_version == "550.54"
    rows = [
        (s.hw_id, s.slice_id, s.profile, s.memory_used_bytes, s.memory_limit_bytes, s.parent_id) for s in snap.slices
    ]
    assert rows == [
        ("MIG-zero", "gi1/ci0", "3g.20gb", 19 * MIB, 19968 * MIB, "GPU-m"),
        ("MIG-one", "gi2/ci0", "3g.20gb", 25 * MIB, 19968 * MIB, "GPU-m"),
    ]
    # pid 77 from the XML points at its slice (now named by its MIG uuid); the
    # compute-apps row for the same pid names only the parent GPU: one process
    assert sorted((p.pid, p.parent_id, p.memory_bytes, p.name) for p in snap.processes) == [
        (77, "MIG-one", 6 * MIB, "train"),
        (78, "GPU-m", MIB, "eval"),
    ]


def test_duplicate_process_records_are_deduplicated(tmp_path):
    (tmp_path / "a").write_text(APPS_ON_GPU)
    (tmp_path / "b").write_text(APPS_ON_GPU)
    snap = ReplaySource(tmp_path).collect()
    assert sorted(p.pid for p in snap.processes) == [77, 78]


def test_whole_fixture_directory_never_raises(vendor_smi):
    snap = ReplaySource(vendor_smi).collect()
    nvidia = {d.hw_id for d in snap.devices if d.vendor == "nvidia"}
    # H100 and L40S captures share the masked all-zero UUID but not their bus or model: two devices,
    # the second named by its PCI bus id
    assert nvidia == {H100_UUID, A100_UUID, RTX_UUID, "nvidia-0000:01:00.0"}
    assert {d.model for d in snap.devices} >= {"NVIDIA H100 80GB HBM3", "NVIDIA L40S"}
    # every vendor's capture is recognised; devices of different vendors never merge (same bus ids).
    # The two hy-smi captures come from different hosts and print no bus id or UUID: their fallback
    # ids (hygon-dcu0..3) coincide, so they are kept apart (the later file's get "#<file order>") and
    # each clash is counted as ambiguous_id (replay one host per directory).
    by_vendor = {}
    for d in snap.devices:
        by_vendor[d.vendor] = by_vendor.get(d.vendor, 0) + 1
    assert by_vendor == {"nvidia": 4, "amd": 1, "huawei": 13, "hygon": 12, "kunlunxin": 8, "cambricon": 4,
                         "iluvatar": 17, "metax": 4}
    kinds = sorted(p.kind for p in snap.problems)
    # the cut-off ixsmi process table, and the four clashing hygon ids (SOURCES.md is documentation: not read)
    assert kinds == ["ambiguous_id"] * 4 + ["truncated"]


def test_single_file_and_rereads_changes(vendor_smi, tmp_path):
    target = tmp_path / "capture"
    shutil.copyfile(vendor_smi / H100_CSV, target)
    source = ReplaySource(str(target))
    source.start()
    first = source.collect()
    assert [d.model for d in first.devices] == ["NVIDIA H100 80GB HBM3"]
    again = source.collect()
    assert again.devices == first.devices
    again.devices[0].temperatures["gpu"] = -1.0  # a consumer mutating a snapshot ...
    assert source.collect().devices[0].temperatures["gpu"] == 59.0  # ... does not touch the cache

    shutil.copyfile(vendor_smi / L40S_CSV, target)
    changed = source.collect()
    assert [d.model for d in changed.devices] == ["NVIDIA L40S"]
    source.close()


def test_missing_path_is_io_problem(tmp_path):
    snap = ReplaySource(tmp_path / "nope").collect()
    assert snap.devices == []
    assert [p.kind for p in snap.problems] == ["io"]


def test_unreadable_file_is_io_problem(tmp_path):
    target = tmp_path / "secret"
    target.write_text(LIST_MIG)
    target.chmod(0)
    try:
        if os.access(target, os.R_OK):
            pytest.skip("running with privileges that ignore file modes")
        snap = ReplaySource(tmp_path).collect()
        assert [p.kind for p in snap.problems] == ["io"]
    finally:
        target.chmod(0o600)


def test_read_error_is_io_problem_and_other_files_survive(tmp_path, monkeypatch):
    (tmp_path / "bad").write_text(LIST_MIG)
    (tmp_path / "good").write_text(APPS_ON_GPU)
    real_open = Path.open

    def fake_open(self, *args, **kwargs):
        if self.name == "bad":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", fake_open)
    snap = ReplaySource(tmp_path).collect()
    assert [(p.kind, p.detail) for p in snap.problems] == [("io", "bad: Permission denied")]
    assert sorted(p.pid for p in snap.processes) == [77, 78]


def test_too_large_file_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(replay, "MAX_FILE_BYTES", 16)
    (tmp_path / "big").write_text(LIST_MIG)
    snap = ReplaySource(tmp_path).collect()
    assert snap.devices == []
    assert [p.kind for p in snap.problems] == ["too_large"]


def test_parser_problems_carry_the_file_name(tmp_path):
    (tmp_path / "cut.xml").write_text(XML_MIG[:200])
    (tmp_path / "list").write_text(LIST_MIG + "something odd\n")
    snap = ReplaySource(tmp_path).collect()
    assert sorted((p.kind, p.detail.split(":")[0]) for p in snap.problems) == [
        ("parse", "list"),
        ("truncated", "cut.xml"),
    ]
    assert [d.hw_id for d in snap.devices] == ["GPU-m"]


def test_conflicting_models_are_merged_with_a_problem(tmp_path):
    (tmp_path / "a").write_text("GPU 0: Model A (UUID: GPU-same)\n")
    (tmp_path / "b").write_text("GPU 0: Model B (UUID: GPU-same)\n")
    snap = ReplaySource(tmp_path).collect()
    assert len(snap.devices) == 1
    assert [p.kind for p in snap.problems] == ["conflict"]
