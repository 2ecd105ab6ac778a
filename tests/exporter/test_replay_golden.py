"""Golden files of the whole /metrics output for the replay source, on the
shipped demo capture and on a directory of real H100 captures; each also
passes `promtool check metrics`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from exporter.render import RenderOptions
from exporter.sources.replay import ReplaySource
from tests.helpers import FixedClock, promtool_check_metrics, scrape

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
DEMO = ROOT / "exporter" / "data" / "demo"
H100_MIG = ["nvidia-smi-L_h100-mig_590.txt", "nvidia-smi-query-compute-apps_h100-mig_590_load.csv"]


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ACCELSCOPE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; rerun with ACCELSCOPE_UPDATE_GOLDEN=1 and review"
    promtool_check_metrics(text)


def test_replay_demo_capture_golden():
    text = scrape([ReplaySource(DEMO, clock=FixedClock())], RenderOptions(node_name="node-a", per_process=True))
    errors = [line for line in text.splitlines() if line.startswith("accel_exporter_collect_errors_total{")]
    assert errors and all(line.endswith(" 0.0") for line in errors)  # the shipped capture parses cleanly
    _check("replay-demo.prom", text)


@pytest.mark.parametrize("files,golden", [
    (H100_MIG, "replay-h100-mig.prom"),
    (["nvidia-smi-query-gpu_h100_590_load.csv"], "replay-h100-query-gpu.prom"),
    (["nvidia-smi-q-x_rtx4070-laptop_575_consumer-na.xml"], "replay-rtx4070.prom"),
])
def test_replay_real_captures_golden(vendor_smi, tmp_path, files, golden):
    for f in files:
        shutil.copy(vendor_smi / f, tmp_path / f)
    text = scrape([ReplaySource(tmp_path, clock=FixedClock())], RenderOptions(node_name="node-a", per_process=True))
    _check(golden, text)
