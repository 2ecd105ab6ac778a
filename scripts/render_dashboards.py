#!/usr/bin/env python3
"""Render each generated dashboard to a PNG for reviewers, without Grafana.

For every ``dashboards/generated/<uid>.json`` this builds a plain HTML page
that lays the panels out at their ``gridPos`` on Grafana's 24-column grid
(row headers as bars; each panel with its title, type, unit(s), the columns
of a table, and its first query in small monospace text), then screenshots
the page with headless Chromium into ``docs/dashboards/<uid>.png``.  It
shows layout and wording, not data: nothing talks to Grafana or Prometheus.

Chromium comes from Debian's ``chromium`` package (``/usr/bin/chromium``, or
``$CHROMIUM``).  When it is missing and we run as root with ``apt-get``, the
script installs it; otherwise it exits with status 2 and says what to do.
On demand only (not part of ``make test``):

    .venv/bin/python scripts/render_dashboards.py [--out DIR] [--keep-html DIR] [UID ...]

Exit status: 0 when every PNG was written, 1 when a screenshot failed, 2 when
Chromium is not available.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "dashboards" / "generated"
OUT = ROOT / "docs" / "dashboards"

#: page geometry, in CSS pixels.  Grafana's grid: 24 columns, 30 px per
#: height unit with 8 px gutters.
PAGE_WIDTH = 1600
PADDING = 16
HEADER = 84
FOOTER = 28
UNIT = 30
GAP = 8
COLUMNS = 24
#: lines of the first query shown before it is cut with an ellipsis
QUERY_LINES = 4
#: lines of the panel description shown (where the panel has room)
DESCRIPTION_LINES = 6

#: panel type -> badge colour
TYPE_COLOURS = {
    "timeseries": "#3d71d9", "stat": "#1a7f37", "gauge": "#8250df", "bargauge": "#bf3989",
    "table": "#9a6700", "state-timeline": "#0e7490",
}


# ---------------------------------------------------------------- reading the JSON
def load_dashboards(uids: list[str] | None = None) -> list[dict]:
    """The generated dashboards in the documented order (``uids``: a subset)."""
    sys.path.insert(0, str(ROOT))
    from dashboards.common import TITLES  # noqa: PLC0415 (the order of the docs)

    paths = {p.stem: p for p in GENERATED.glob("*.json")}
    order = [u for u in TITLES if u in paths] + sorted(set(paths) - set(TITLES))
    if uids:
        unknown = [u for u in uids if u not in paths]
        if unknown:
            raise SystemExit(f"render_dashboards: no generated dashboard {', '.join(unknown)} "
                             f"(have {', '.join(order)})")
        order = [u for u in order if u in uids]
    return [json.loads(paths[u].read_text(encoding="utf-8")) for u in order]


def flat_panels(d: dict) -> list[dict]:
    """Every panel, rows included, in document order (collapsed rows' panels after their row)."""
    out = []
    for p in d["panels"]:
        out.append(p)
        out += p.get("panels", []) if p.get("type") == "row" else []
    return out


def _excluded(p: dict) -> set[str]:
    """Fields a table's organize transformation hides."""
    organize = next((t["options"] for t in p.get("transformations", []) if t["id"] == "organize"), {})
    return {k for k, v in organize.get("excludeByName", {}).items() if v}


def units(p: dict) -> list[str]:
    """The panel's unit, or for a table the units of its visible columns."""
    fc = p.get("fieldConfig", {})
    hidden = _excluded(p)
    found = [prop["value"] for o in fc.get("overrides", []) if o["matcher"]["options"] not in hidden
             for prop in o["properties"] if prop["id"] == "unit"]
    out = []
    for u in found or [fc.get("defaults", {}).get("unit", "")]:
        if u and u not in out:
            out.append(u)
    return out


def table_columns(p: dict) -> list[tuple[str, bool]]:
    """``(display name, has a data link)`` of a table's visible columns, in order."""
    names: dict[str, str] = {}
    linked: set[str] = set()
    for o in p.get("fieldConfig", {}).get("overrides", []):
        field_name = o["matcher"]["options"]
        for prop in o["properties"]:
            if prop["id"] == "displayName":
                names[field_name] = prop["value"]
            if prop["id"] == "links" and prop["value"]:
                linked.add(field_name)
    organize = next((t["options"] for t in p.get("transformations", []) if t["id"] == "organize"), {})
    index = organize.get("indexByName", {})
    excluded = _excluded(p)
    order = sorted(index, key=index.get) if index else list(names)
    return [(names.get(f, f), f in linked) for f in order if f not in excluded]


# ---------------------------------------------------------------- HTML
CSS = """
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f5; color: #24292f; width: %(width)dpx;
       font: 13px/1.3 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
header { height: %(header)dpx; padding: 12px %(pad)dpx 0; }
header h1 { margin: 0; font-size: 20px; }
header .meta { margin-top: 4px; color: #57606a; font-size: 12px; }
header .desc { margin-top: 3px; color: #57606a; font-size: 11.5px; white-space: nowrap; overflow: hidden;
               text-overflow: ellipsis; }
.grid { position: relative; margin: 0 %(pad)dpx; }
.row { position: absolute; display: flex; align-items: center; padding: 0 6px; font-weight: bold;
       font-size: 14px; border-bottom: 2px solid #8c959f; }
.panel { position: absolute; background: #fff; border: 1px solid #d0d7de; border-radius: 3px;
         padding: 6px 8px; overflow: hidden; display: flex; flex-direction: column; gap: 4px; }
.title { font-weight: bold; font-size: 13px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.badges { display: flex; flex-wrap: wrap; gap: 4px; font-size: 11px; }
.badge { padding: 0 5px; border-radius: 3px; color: #fff; }
.unit { padding: 0 5px; border-radius: 3px; background: #eaeef2; color: #24292f; }
.links { color: #0969da; }
.cols { font-size: 11px; color: #24292f; }
.cols span { display: inline-block; margin: 0 3px 2px 0; padding: 0 4px; border: 1px solid #d0d7de;
             border-radius: 2px; background: #f6f8fa; }
.cols span.link { color: #0969da; border-color: #54aeff; }
.q { font: 10px/1.25 "DejaVu Sans Mono", "Liberation Mono", monospace; color: #57606a; overflow: hidden;
     word-break: break-all; display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: %(qlines)d; }
.d { font-size: 11px; color: #57606a; overflow: hidden; display: -webkit-box; -webkit-box-orient: vertical;
     -webkit-line-clamp: %(dlines)d; }
footer { position: absolute; left: %(pad)dpx; font-size: 11px; color: #57606a; }
"""


def _px(units_: int) -> int:
    return units_ * (UNIT + GAP)


def page_height(d: dict) -> int:
    bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in flat_panels(d)), default=0)
    return HEADER + _px(bottom) + FOOTER


def _panel_html(p: dict, col_w: float) -> str:
    g = p["gridPos"]
    left, top = g["x"] * col_w, _px(g["y"])
    width, height = g["w"] * col_w - GAP, _px(g["h"]) - GAP
    box = f"left:{left:.1f}px;top:{top}px;width:{width:.1f}px;height:{height}px"
    title = html.escape(p.get("title", ""))
    if p.get("type") == "row":
        return f'<div class="row" style="{box}">▾ {title}</div>'
    kind = p.get("type", "?")
    badges = [f'<span class="badge" style="background:{TYPE_COLOURS.get(kind, "#57606a")}">{html.escape(kind)}'
              f"</span>"]
    badges += [f'<span class="unit">{html.escape(u)}</span>' for u in units(p)]
    if p.get("links"):
        badges.append(f'<span class="links">↗ {len(p["links"])} link(s)</span>')
    parts = [f'<div class="title">{title}</div>', f'<div class="badges">{"".join(badges)}</div>']
    if kind == "table":
        cols = "".join(f'<span class="link">{html.escape(n)} ↗</span>' if linked else
                       f"<span>{html.escape(n)}</span>" for n, linked in table_columns(p))
        parts.append(f'<div class="cols">{cols}</div>')
    targets = p.get("targets", [])
    if targets:
        more = f"  (+{len(targets) - 1} more)" if len(targets) > 1 else ""
        parts.append(f'<div class="q">{html.escape(targets[0].get("expr", ""))}{html.escape(more)}</div>')
    if p.get("description") and g["h"] >= 6:
        desc = " ".join(p["description"].split())
        parts.append(f'<div class="d">{html.escape(desc)}</div>')
    return f'<div class="panel" style="{box}">{"".join(parts)}</div>'


def build_html(d: dict) -> str:
    """A self-contained HTML page (no scripts, no network) laying out ``d``."""
    col_w = (PAGE_WIDTH - 2 * PADDING + GAP) / COLUMNS
    panels = flat_panels(d)
    body_h = _px(max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=0))
    variables = ", ".join(v["name"] for v in d.get("templating", {}).get("list", []))
    n_panels = sum(1 for p in panels if p.get("type") != "row")
    meta = (f'UID {d["uid"]} · {n_panels} panels · variables: {variables} · time: '
            f'{d.get("time", {}).get("from", "")} → {d.get("time", {}).get("to", "")}')
    css = CSS % {"width": PAGE_WIDTH, "header": HEADER, "pad": PADDING, "qlines": QUERY_LINES,
                 "dlines": DESCRIPTION_LINES}
    return "\n".join([
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(d['title'])}</title><style>{css}</style></head><body>",
        f"<header><h1>{html.escape(d['title'])}</h1><div class=\"meta\">{html.escape(meta)}</div>"
        f"<div class=\"desc\">{html.escape(d.get('description', ''))}</div></header>",
        f'<div class="grid" style="height:{body_h}px">',
        *(_panel_html(p, col_w) for p in panels),
        "</div>",
        f'<footer style="top:{HEADER + body_h + 6}px">Layout of dashboards/generated/{html.escape(d["uid"])}.json '
        "drawn by scripts/render_dashboards.py: panel positions, titles, types, units, table columns (↗ = data "
        "link), first query and description; no data, not a Grafana screenshot.</footer>",
        "</body></html>",
        "",
    ])


# ---------------------------------------------------------------- Chromium
class NoChromium(SystemExit):
    """Chromium is missing and cannot be installed: exit status 2."""

    def __init__(self, message: str):
        print(f"render_dashboards: {message}", file=sys.stderr)
        super().__init__(2)


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        found = env if Path(env).is_file() else shutil.which(env)
        if not found:
            raise NoChromium(f"CHROMIUM={env} is not an executable")
        return found
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = name if Path(name).exists() else shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium(install: bool = True) -> str:
    """The Chromium executable, installing Debian's package as root if needed;
    ``SystemExit(2)`` with a clear message when there is none."""
    exe = find_chromium()
    if exe:
        return exe
    hint = "install Debian's package 'chromium' (apt-get install -y chromium) or set CHROMIUM=/path/to/chromium"
    if not install:
        raise NoChromium(f"Chromium not found; {hint}")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise NoChromium(f"Chromium not found and cannot install it here (needs root and apt-get); {hint}")
    print("render_dashboards: installing Debian package chromium ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "fonts-dejavu-core"]):
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NoChromium(f"'{' '.join(cmd)}' failed ({exc}); {hint}") from None
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise NoChromium(f"'{' '.join(cmd)}' failed (exit {r.returncode}): {' | '.join(tail)}; {hint}")
    exe = find_chromium()
    if not exe:
        raise NoChromium(f"the chromium package installed but no executable was found; {hint}")
    return exe


#: fontconfig that draws text without anti-aliasing (fully hinted): crisp at
#: 1:1 and about a quarter of the PNG size of grey-smoothed text
CRISP_FONTS = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <match target="font">
    <edit name="antialias" mode="assign"><bool>false</bool></edit>
    <edit name="hinting" mode="assign"><bool>true</bool></edit>
    <edit name="hintstyle" mode="assign"><const>hintfull</const></edit>
  </match>
</fontconfig>
"""


def screenshot(chromium: str, html_path: Path, png: Path, height: int, tmp: Path, *, smooth: bool = False) -> None:
    """Screenshot ``html_path`` at ``PAGE_WIDTH`` x ``height`` into ``png``
    (``smooth``: anti-aliased text, larger files)."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp))
    env = dict(os.environ)
    if not smooth:
        fonts = tmp / "fonts.conf"
        fonts.write_text(CRISP_FONTS, encoding="utf-8")
        env["FONTCONFIG_FILE"] = str(fonts)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--hide-scrollbars", "--force-device-scale-factor=1", "--disable-lcd-text",
           f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={PAGE_WIDTH},{height}",
           html_path.as_uri()]
    if png.exists():
        png.unlink()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError("chromium did not finish in 120 s") from None
    if r.returncode != 0 or not png.exists() or png.stat().st_size == 0:
        tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-8:])
        raise RuntimeError(f"chromium exited {r.returncode} without a screenshot:\n{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Render the generated dashboards to PNGs with headless Chromium.")
    ap.add_argument("uids", nargs="*", help="dashboards to render (default: all)")
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default docs/dashboards)")
    ap.add_argument("--keep-html", type=Path, default=None, metavar="DIR", help="also write the HTML pages to DIR")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install chromium")
    ap.add_argument("--smooth", action="store_true",
                    help="anti-aliased text (prettier, about 3x larger files); default: crisp unsmoothed text")
    args = ap.parse_args(argv)

    boards = load_dashboards(args.uids)
    chromium = ensure_chromium(install=not args.no_install)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="render-dashboards-") as tmp_s:
        tmp = Path(tmp_s)
        for d in boards:
            page = build_html(d)
            html_path = tmp / f"{d['uid']}.html"
            html_path.write_text(page, encoding="utf-8")
            if args.keep_html:
                args.keep_html.mkdir(parents=True, exist_ok=True)
                (args.keep_html / html_path.name).write_text(page, encoding="utf-8")
            png = args.out / f"{d['uid']}.png"
            try:
                screenshot(chromium, html_path, png, page_height(d), tmp, smooth=args.smooth)
            except RuntimeError as exc:
                failed += 1
                print(f"render_dashboards: {d['uid']}: {exc}", file=sys.stderr)
                continue
            try:
                shown = png.relative_to(ROOT)
            except ValueError:
                shown = png
            print(f"wrote {shown} ({png.stat().st_size // 1024} KiB, {PAGE_WIDTH}x{page_height(d)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
