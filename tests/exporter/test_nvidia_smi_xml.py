"""Tests for the ``nvidia-smi -q -x`` parser and the shared NVIDIA value helpers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from exporter.model import MIB
from exporter.parsers import nvidia_smi_xml as nx

A100 = "nvidia-smi-q-x_a100-sxm4-40gb_mig_510.xml"
RTX = "nvidia-smi-q-x_rtx4070-laptop_575_consumer-na.xml"


def _parse(vendor_smi, name):
    return nx.parse((vendor_smi / name).read_text())


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "raw",
    [
        "N/A",
        "[N/A]",
        "n/a",
        "[Not Supported]",
        "Not Supported",
        "Requested functionality has been deprecated",
        "[Requested functionality has been deprecated]",
        "Unknown Error",
        "[Insufficient Permissions]",
        "",
        "   \n\t ",
        None,
    ],
)
def test_clean_absent_forms(raw):
    assert nx.clean(raw) is None
    assert nx.to_base(raw, "bytes") is None


def test_clean_collapses_padding_and_newlines():
    assert nx.clean("Not Active\n            ") == "Not Active"
    assert nx.clean("  NVIDIA  H100 ") == "NVIDIA H100"


@pytest.mark.parametrize(
    ("raw", "kind", "unit", "expected"),
    [
        ("81559 MiB", "bytes", None, 81559 * MIB),
        ("81559", "bytes", "MiB", 81559 * MIB),
        ("1980 MHz", "hz", None, 1980e6),
        ("11 %", "ratio", None, 0.11),
        ("100.00%", "ratio", None, 1.0),
        ("631.95 W", "watts", None, 631.95),
        ("-12 C", "celsius", None, -12.0),
        ("59", "celsius", None, 59.0),
        ("91403239 us", "seconds", None, 91.403239),
        ("204642816", "seconds", "us", 204.642816),
        ("123456 mJ", "joules", None, 123.456),
        ("7", "count", None, 7.0),
    ],
)
def test_to_base_units(raw, kind, unit, expected):
    assert nx.to_base(raw, kind, unit) == expected


@pytest.mark.parametrize(("raw", "kind"), [("abc MiB", "bytes"), ("10 W", "bytes"), ("10", "bytes"), ("0x1F", "count")])
def test_to_base_rejects(raw, kind):
    with pytest.raises(ValueError):
        nx.to_base(raw, kind)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00000000:C1:00.0", "0000:c1:00.0"),
        ("00000000:00:09.0", "0000:00:09.0"),
        ("0000:C1:00.0", "0000:c1:00.0"),
        ("C1:00.0", "0000:c1:00.0"),
        ("00010000:01:00.1", "00010000:01:00.1"),
        ("N/A", None),
    ],
)
def test_normalise_pci_bus_id(raw, expected):
    assert nx.normalise_pci_bus_id(raw) == expected


def test_normalise_pci_bus_id_rejects_garbage():
    with pytest.raises(ValueError):
        nx.normalise_pci_bus_id("not-a-bus")


def test_device_hw_id_fallbacks():
    assert nx.device_hw_id("GPU-1", "123", "0000:01:00.0", 0) == "GPU-1"
    assert nx.device_hw_id(None, "123", "0000:01:00.0", 0) == "123"
    assert nx.device_hw_id(None, None, "0000:01:00.0", 0) == "nvidia-0000:01:00.0"
    assert nx.device_hw_id(None, None, None, 3) == "nvidia-gpu3"


# ---------------------------------------------------------------- A100 MIG capture


def test_a100_mig_device(vendor_smi):
    parsed = _parse(vendor_smi, A100)
    assert parsed.problems == []
    assert len(parsed.devices) == 1
    dev = parsed.devices[0]
    uuid = "GPU-00000000-1111-2222-3333-444444444444"
    assert dev.hw_id == uuid
    assert (dev.vendor, dev.kind, dev.model) == ("nvidia", "gpu", "NVIDIA A100-SXM4-40GB")
    assert (dev.index, dev.name, dev.display_name) == (0, "gpu0", "gpu0")
    assert dev.serial == "0000000000001"
    assert dev.driver_version == "510.47.03"
    assert dev.firmware_version == "92.00.45.00.03"
    assert dev.pci_bus_id == "0000:00:04.0"
    assert dev.compute_capability is None and dev.numa_node is None
    assert dev.state == "ok"
    assert dev.memory_total_bytes == 40960 * MIB
    assert dev.memory_used_bytes == 38 * MIB
    # MIG enabled: utilization is N/A -> absent, never 0
    assert dev.utilization == {}
    assert dev.memory_bandwidth_utilization is None
    assert dev.power_watts == 66.92
    assert dev.power_limit_watts == 400.0
    assert dev.energy_joules is None
    assert dev.temperatures == {"gpu": 36.0, "memory": 44.0}
    assert dev.temperature_limits == {"high.degraded": 89.0, "high.critical": 92.0}
    assert dev.clocks_hz == {"graphics": 1410e6, "sm": 1410e6, "memory": 1215e6, "video": 1275e6}
    # only boolean throttle reasons in this capture: no fake counters
    assert dev.throttle_seconds == {}
    # volatile ECC is N/A under MIG (aggregate is not used)
    assert dev.errors == {}
    assert dev.fan_speed is None


def test_a100_mig_slices(vendor_smi):
    parsed = _parse(vendor_smi, A100)
    uuid = "GPU-00000000-1111-2222-3333-444444444444"
    assert [s.slice_id for s in parsed.slices] == ["gi1/ci0", "gi2/ci0"]
    for n, sl in enumerate(parsed.slices):
        assert sl.hw_id == f"{uuid}/gi{n + 1}/ci0"
        assert sl.parent_id == uuid
        assert (sl.slice_type, sl.vendor, sl.kind, sl.parent_index) == ("mig", "nvidia", "gpu", 0)
        assert sl.model == "NVIDIA A100-SXM4-40GB"
        assert sl.memory_used_bytes == 19 * MIB
        assert sl.memory_limit_bytes == 19968 * MIB
        assert sl.utilization is None
        assert sl.profile is None  # not in -q -x; the -L capture supplies it
        assert sl.info == {"mig_device_index": str(n)}
    assert parsed.processes == []


def test_a100_odd_whitespace_value(vendor_smi):
    text = (vendor_smi / A100).read_text()
    root = ET.fromstring(text)
    raw = root.findtext("gpu/clocks_throttle_reasons/clocks_throttle_reason_applications_clocks_setting")
    assert raw is not None and raw.startswith("Not Active\n")
    assert nx.clean(raw) == "Not Active"


# ---------------------------------------------------------------- RTX 4070 consumer capture


def test_rtx4070_consumer(vendor_smi):
    parsed = _parse(vendor_smi, RTX)
    assert parsed.problems == []
    assert parsed.slices == []  # <mig_devices>None</mig_devices>
    (dev,) = parsed.devices
    uuid = "GPU-00000000-aaaa-bbbb-cccc-000000004070"
    assert dev.hw_id == uuid
    assert dev.model == "NVIDIA GeForce RTX 4070 Laptop GPU"
    assert dev.serial is None  # <serial>N/A</serial>
    assert dev.driver_version == "575.51.02"
    assert dev.firmware_version == "95.06.32.00.49"
    assert dev.pci_bus_id == "0000:01:00.0"
    assert dev.memory_total_bytes == 8188 * MIB
    assert dev.memory_used_bytes == 2026 * MIB
    assert dev.utilization == {"general": 0.30, "encoder": 0.0, "decoder": 0.0}
    assert dev.memory_bandwidth_utilization == 0.30
    # gpu_power_readings: instant wins over average; current limit is the enforced one
    assert dev.power_watts == 11.26
    assert dev.power_limit_watts == 95.0
    # memory_temp N/A -> absent; tlimit thresholds are relative (and negative) -> absent
    assert dev.temperatures == {"gpu": 41.0}
    assert dev.temperature_limits == {}
    assert dev.clocks_hz == {"graphics": 675e6, "sm": 675e6, "memory": 810e6, "video": 765e6}
    assert dev.throttle_seconds == {
        "power": 91.403239,
        "sync_boost": 0.0,
        "thermal": 91.403239,
        "hw_thermal": 0.0,
        "hw_power_brake": 0.0,
    }
    assert dev.errors == {}  # all N/A on a consumer card
    assert dev.fan_speed is None
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (1802, uuid, 1448 * MIB, "/run/current-system/sw/bin/Hyprland"),
        (1890, uuid, 23 * MIB, "Xwayland"),
    ]


# ---------------------------------------------------------------- synthetic edge cases


def _log(gpu_body: str, extra: str = "") -> str:
    return (
        "<?xml version='1.0' ?><nvidia_smi_log><driver_version>470.1</driver_version>"
        f"{extra}<gpu id='00000000:C1:00.0'>{gpu_body}</gpu></nvidia_smi_log>"
    )


def test_missing_elements_give_none():
    parsed = nx.parse(_log("<uuid>GPU-x</uuid>"))
    assert parsed.problems == []
    (dev,) = parsed.devices
    assert dev.hw_id == "GPU-x"
    assert dev.model == ""
    assert dev.pci_bus_id == "0000:c1:00.0"  # from the gpu id attribute
    assert dev.memory_total_bytes is None and dev.memory_used_bytes is None
    assert dev.power_watts is None and dev.power_limit_watts is None
    assert dev.utilization == {} and dev.temperatures == {} and dev.clocks_hz == {} and dev.errors == {}


def test_identity_fallbacks():
    parsed = nx.parse(_log("<uuid>N/A</uuid><serial>1324</serial>"))
    assert parsed.devices[0].hw_id == "1324"
    body = "<uuid>N/A</uuid><serial>[N/A]</serial><pci><pci_bus_id>00000000:C1:00.0</pci_bus_id></pci>"
    parsed = nx.parse(_log(body))
    assert parsed.devices[0].hw_id == "nvidia-0000:c1:00.0"


def test_unparsable_value_is_none_plus_problem():
    body = "<uuid>GPU-x</uuid><fb_memory_usage><total>lots MiB</total><used>1 MiB</used></fb_memory_usage>"
    parsed = nx.parse(_log(body))
    dev = parsed.devices[0]
    assert dev.memory_total_bytes is None
    assert dev.memory_used_bytes == MIB
    assert [p.kind for p in parsed.problems] == ["parse"]
    assert "fb_memory_usage/total" in parsed.problems[0].detail


def test_old_power_layout_and_fallbacks():
    body = (
        "<uuid>GPU-x</uuid><power_readings><power_draw>N/A</power_draw><average_power_draw>50.5 W</average_power_draw>"
        "<enforced_power_limit>[Not Supported]</enforced_power_limit><current_power_limit>70.00 W</current_power_limit>"
        "</power_readings><temperature><gpu_temp_slow_threshold>-1 C</gpu_temp_slow_threshold>"
        "<gpu_temp_max_threshold>N/A</gpu_temp_max_threshold></temperature><fan_speed>45 %</fan_speed>"
        "<gpu_recovery_action>Reset</gpu_recovery_action>"
    )
    dev = nx.parse(_log(body)).devices[0]
    assert dev.power_watts == 50.5
    assert dev.power_limit_watts == 70.0
    assert dev.temperature_limits == {}
    assert dev.fan_speed == 0.45
    assert dev.state == "degraded"


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ("<gpu_recovery_action>None</gpu_recovery_action>", "ok"),
        ("<gpu_recovery_action>Drain and Reset</gpu_recovery_action>", "degraded"),
        ("<remapped_rows><remapped_row_pending>No</remapped_row_pending>"
         "<remapped_row_failure>Yes</remapped_row_failure></remapped_rows>", "predicted_failure"),
        ("<remapped_rows>N/A</remapped_rows><retired_pages><pending_retirement>Yes</pending_retirement>"
         "</retired_pages>", "predicted_failure"),
        ("<retired_pages><pending_blacklist>N/A</pending_blacklist></retired_pages>", "ok"),
    ],
)
def test_state_from_health_flags(body, state):
    assert nx.parse(_log("<uuid>GPU-x</uuid>" + body)).devices[0].state == state


def test_ecc_layouts():
    new = (
        "<uuid>GPU-x</uuid><ecc_errors><volatile><sram_correctable>3</sram_correctable>"
        "<sram_uncorrectable_parity>1</sram_uncorrectable_parity>"
        "<sram_uncorrectable_secded>2</sram_uncorrectable_secded>"
        "<dram_correctable>5</dram_correctable><dram_uncorrectable>N/A</dram_uncorrectable></volatile>"
        "<aggregate><dram_correctable>99</dram_correctable></aggregate></ecc_errors>"
    )
    assert nx.parse(_log(new)).devices[0].errors == {
        ("corrected", "sram"): 3,
        ("uncorrected", "sram"): 3,
        ("corrected", "dram"): 5,
    }
    old = (
        "<uuid>GPU-x</uuid><ecc_errors><volatile><single_bit><device_memory>4</device_memory>"
        "<register_file>1</register_file><l1_cache>1</l1_cache><l2_cache>N/A</l2_cache><total>6</total></single_bit>"
        "<double_bit><device_memory>N/A</device_memory><total>2</total></double_bit></volatile></ecc_errors>"
    )
    assert nx.parse(_log(old)).devices[0].errors == {
        ("corrected", "dram"): 4,
        ("corrected", "sram"): 2,
        ("uncorrected", "total"): 2,
    }


def test_mig_process_points_at_slice_and_mig_uuid_used():
    body = (
        "<uuid>GPU-p</uuid><mig_devices><mig_device><index>0</index><gpu_instance_id>3</gpu_instance_id>"
        "<compute_instance_id>0</compute_instance_id><uuid>MIG-abc</uuid></mig_device>"
        "<mig_device><index>1</index><gpu_instance_id>N/A</gpu_instance_id></mig_device></mig_devices>"
        "<processes><process_info><gpu_instance_id>3</gpu_instance_id><compute_instance_id>0</compute_instance_id>"
        "<pid>42</pid><process_name>train</process_name><used_memory>10 MiB</used_memory></process_info>"
        "<process_info><gpu_instance_id>N/A</gpu_instance_id><compute_instance_id>N/A</compute_instance_id>"
        "<pid>43</pid><used_memory>N/A</used_memory></process_info>"
        "<process_info><pid>N/A</pid></process_info></processes>"
    )
    parsed = nx.parse(_log(body))
    assert [(s.hw_id, s.slice_id) for s in parsed.slices] == [("MIG-abc", "gi3/ci0")]
    assert [(p.pid, p.parent_id, p.memory_bytes, p.name) for p in parsed.processes] == [
        (42, "MIG-abc", 10 * MIB, "train"),
        (43, "GPU-p", None, None),
    ]
    assert [p.kind for p in parsed.problems] == ["parse", "parse"]  # slice without GI, process without pid


def test_several_gpus_indexed_in_order():
    text = (
        "<nvidia_smi_log><gpu id='00000000:01:00.0'><uuid>GPU-a</uuid></gpu>"
        "<gpu id='00000000:02:00.0'><uuid>GPU-b</uuid></gpu></nvidia_smi_log>"
    )
    assert [(d.hw_id, d.index, d.name) for d in nx.parse(text).devices] == [("GPU-a", 0, "gpu0"), ("GPU-b", 1, "gpu1")]


@pytest.mark.parametrize("cut", [300, 2000, 9000, -30])
def test_truncated_xml_is_a_problem(vendor_smi, cut):
    text = (vendor_smi / A100).read_text()[:cut]
    parsed = nx.parse(text)
    assert parsed.devices == []
    assert [p.kind for p in parsed.problems] == ["truncated"]


@pytest.mark.parametrize(
    "text", ["garbage", "", "<a><b></a>", "\x00\x01binary", "<?xml version='1.0' encoding='utf-8'?><x/>"]
)
def test_garbage_is_a_problem(text):
    parsed = nx.parse(text)
    assert parsed.devices == []
    assert len(parsed.problems) == 1
    assert parsed.problems[0].kind in ("parse", "unknown_format")


def test_wrong_root_is_unknown_format():
    assert [p.kind for p in nx.parse("<nvidia_smi_logx/>").problems] == ["unknown_format"]


def test_oversized_input_is_rejected():
    text = "<nvidia_smi_log>" + " " * nx.MAX_INPUT_CHARS + "</nvidia_smi_log>"
    assert [p.kind for p in nx.parse(text).problems] == ["too_large"]
