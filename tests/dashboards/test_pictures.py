"""The reviewers' pictures of the dashboards (``docs/dashboards/<uid>.png``).

Rendering needs headless Chromium and is done on demand by
``scripts/render_dashboards.py``, never here; these tests only check the
committed pictures are linked, exist and stay small, and that the HTML page
the script screenshots shows every panel where the grid puts it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dashboards.generate import generate
from scripts import render_dashboards as R

ROOT = Path(__file__).resolve().parent.parent.parent
FILES = generate()
BOARDS = {Path(p).stem: json.loads(t) for p, t in FILES.items() if p.endswith(".json")}
MAX_BYTES = 300 * 1024


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_docs_link_a_small_png_per_dashboard(uid):
    doc = FILES["docs/dashboards.md"]
    assert f"](dashboards/{uid}.png)" in doc
    png = ROOT / "docs" / "dashboards" / f"{uid}.png"
    assert png.exists(), f"{png.name} missing: run '.venv/bin/python scripts/render_dashboards.py'"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) < MAX_BYTES, f"{png.name} is {len(data)} bytes"


def test_no_picture_without_a_dashboard():
    on_disk = {p.stem for p in (ROOT / "docs" / "dashboards").glob("*.png")}
    assert on_disk <= set(BOARDS)


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_html_lays_out_every_panel_on_the_grid(uid):
    d = BOARDS[uid]
    page = R.build_html(d)
    assert not re.search(r"<script|<link|<img|src=|href=|@import|url\(", page)  # self-contained, no JS
    col_w = (R.PAGE_WIDTH - 2 * R.PADDING + R.GAP) / R.COLUMNS
    boxes = re.findall(r'<div class="(panel|row)" style="left:([\d.]+)px;top:(\d+)px;width:([\d.]+)px', page)
    panels = R.flat_panels(d)
    assert len(boxes) == len(panels)
    for p, (_, left, top, width) in zip(panels, boxes):
        g = p["gridPos"]
        assert float(left) == pytest.approx(g["x"] * col_w, abs=0.1)
        assert int(top) == g["y"] * (R.UNIT + R.GAP)
        assert float(width) + R.GAP <= R.PAGE_WIDTH - 2 * R.PADDING + R.GAP
        assert R.html.escape(p["title"]) in page
    assert R.page_height(d) > R.HEADER + R.FOOTER


def test_pending_table_shows_its_columns_in_order_with_the_trace_link():
    (p,) = [p for p in R.flat_panels(BOARDS["accelscope-placements"]) if p["title"] == "Pending accelerator pods"]
    cols = R.table_columns(p)
    assert [n for n, _ in cols] == ["Namespace", "Pod", "Reason", "Oldest in namespace", "Scheduler", "Trace ID"]
    assert dict(cols)["Trace ID"] is True
    assert R.units(p) == ["s"]  # the hidden constant column does not count
