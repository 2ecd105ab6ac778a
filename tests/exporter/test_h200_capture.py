"""The driver-580 H200 capture we took ourselves (tests/fixtures/captures),
parsed with exact values in base units; these are the values NVML returned
at the same moment (docs/performance.md, real-GPU validation)."""

from pathlib import Path

from exporter.parsers.nvidia_smi_xml import parse

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "captures" / "nvidia-smi-q-x_h200_580_idle.xml"
MIB = 1024 * 1024


def test_h200_driver_580_capture():
    parsed = parse(CAPTURE.read_text())
    assert parsed.problems == []
    (d,) = parsed.devices
    assert d.hw_id == "GPU-00000000-0000-0000-0000-0000000000c8"
    assert (d.model, d.index, d.driver_version) == ("NVIDIA H200", 0, "580.159.04")
    assert d.firmware_version == "96.00.A5.00.1A"
    assert d.pci_bus_id == "0000:00:06.0"
    assert d.memory_total_bytes == 143771 * MIB == 150754820096  # NVML said 150754820096
    assert d.memory_used_bytes == 0
    assert d.power_watts == 78.04 and d.power_limit_watts == 700.0
    assert d.temperatures == {"gpu": 33.0, "memory": 35.0}
    assert d.utilization["general"] == 0.0
    assert d.memory_bandwidth_utilization == 0.0
    assert d.clocks_hz["graphics"] == 345e6 and d.clocks_hz["memory"] == 3201e6 and d.clocks_hz["video"] == 765e6
    assert d.fan_speed is None  # N/A on a passively cooled SXM board: absent, not 0
    assert d.state == "ok"
    assert parsed.slices == []
