"""Generate the dashboards' JSON and ``docs/dashboards.md``.

``generate()`` returns ``{repo-relative path: text}`` (pure; ``make
generate`` writes it, the tests compare it with the committed files).
``panel_queries()`` / ``PANEL_QUERIES`` list every panel query as
``(dashboard uid, panel title, expr)`` and :func:`expand_variables` turns an
expression into plain PromQL (dashboard variables set to "All", Grafana's
interval variables to fixed durations) for promtool or the Prometheus HTTP
API.

Run ``python -m dashboards.generate`` to write the files.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import ModuleType

from accelscope.generated import write_files

from . import common, fleet, fragmentation, node_device, placements, tenants
from .common import CONFIG, Config

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = "dashboards/generated"
DOC = "docs/dashboards.md"
#: where ``scripts/render_dashboards.py`` writes one PNG per dashboard
PICTURES = "docs/dashboards"

#: the dashboard modules, in the order they are documented
MODULES: list[ModuleType] = [fleet, node_device, tenants, placements, fragmentation]


def dashboards(config: Config = CONFIG) -> dict[str, dict]:
    """``{uid: Grafana JSON as dicts}`` of every dashboard."""
    out = {}
    for mod in MODULES:
        d = common.to_dict(mod.build(config))
        out[d["uid"]] = d
    return out


def _panels(d: dict) -> list[dict]:
    out = []
    for p in d["panels"]:
        if p.get("type") == "row":
            out += p.get("panels", [])
        else:
            out.append(p)
    return out


def panel_queries(config: Config = CONFIG) -> list[tuple[str, str, str]]:
    """``(dashboard uid, panel title, expr)`` of every query of every panel."""
    out = []
    for uid, d in dashboards(config).items():
        for p in _panels(d):
            for t in p.get("targets", []):
                out.append((uid, p["title"], t["expr"]))
    return out


PANEL_QUERIES: list[tuple[str, str, str]] = panel_queries()

#: Grafana's built-in interval variables
_BUILTINS = ("__rate_interval", "__interval", "__range")


def expand_variables(expr: str, *, rate_interval: str = "1m", interval: str = "1m", range_: str = "1h",
                     values: dict[str, str] | None = None) -> str:
    """Plain PromQL from a panel expression: ``$__rate_interval``,
    ``$__interval`` and ``$__range`` become the given durations, dashboard
    variables become ``values[name]`` (default ``.*``, Grafana's "All").
    Capture references such as ``$1`` in ``label_replace`` are kept."""
    vals = {"__rate_interval": rate_interval, "__interval": interval, "__range": range_}
    for name in common.VARIABLES:
        vals[name] = (values or {}).get(name, ".*")

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return vals.get(name, m.group(0))

    return re.sub(r"\$\{(\w+)\}|\$([A-Za-z_]\w*)", sub, expr)


# ---------------------------------------------------------------- documentation
DOC_INTRO = """\
# Dashboards

Generated from `dashboards/*.py` by `make generate` (`python -m dashboards.generate`); do not edit by
hand. The JSON files are in `dashboards/generated/`, one per dashboard, named after its UID.

**Import.** Grafana ≥ 10: *Dashboards → New → Import* and upload a file, or provision the folder
(`providers: [{name: accelscope, type: file, options: {path: /var/lib/grafana/dashboards/accelscope}}]`).
Every panel reads the Prometheus data source picked in the `datasource` variable; no Angular panel
types are used (time series, stat, gauge, bar gauge, table, state timeline).

**Variables.** `datasource` (Prometheus); `cluster` (the optional `cluster` external label, single
value, *All* matches series without it); `node` (`k8s_node_name`), `namespace` (`k8s_namespace_name`),
`vendor` (`hw_vendor`), `model` (`hw_model`), multi-value; `traces` (a Tempo data source, for trace
links). A variable filters a panel only where the metric has the label: placement metrics have no
node, device families no namespace filter except on tenant panels.

**Links.** Each dashboard links to the others (tag `accelscope`, keeping time range and variables);
node columns open the node dashboard, namespace columns the tenants dashboard.

**Trace links.** The collector's trace of a placement has the pod UID's 32 hex digits as its trace id
(`scheduler_events.model.trace_id_for_uid`). Pod rows derive it in PromQL:
`label_replace(..., "trace_id", "$1$2$3$4$5", "k8s_pod_uid", "<uuid regex>")`, so the *Trace ID* column
holds it and links to `Config.trace_url_template` with `${__data.fields.trace_id}`. The default opens
Grafana Explore on the `traces` Tempo data source; for a Jaeger UI generate with e.g.
`Config(trace_url_template="https://jaeger.example.com/trace/{trace_id}")`. The UID is on exporter
series only with `--pod-uid-label` (or when it is the only identity known); the *Pod* column also
searches the trace by namespace and pod name (TraceQL on the root span's `k8s.*` attributes). A trace
is written when the placement runs, fails or is deleted, so a pending pod has none yet. The pending-pods
table of *Placement decisions* reads `accel_pending_pod_info`, one series per pending pod on which the
collector already puts `trace_id`: its *Trace ID* column uses that label as is (no `label_replace`), and
the link opens the trace once the pod has run, failed or been deleted.

**Exemplars.** The phase-latency panels request exemplars; each carries the placement's `trace_id`. To
make them clickable, set the Prometheus data source's exemplar link:
`exemplarTraceIdDestinations: [{name: trace_id, datasourceUid: <tempo uid>}]`.

**Units.** Bytes in `bytes`, 0–1 ratios in `percentunit` (never ×100), durations in `s`, power in `watt`,
temperature in `celsius`, clocks in `hertz`, rates in `ops`/`Bps`, counts in `short`. Memory
utilization is capacity (`hw_gpu_memory_usage_bytes / hw_gpu_memory_limit_bytes`), never bandwidth;
slices (`accel_slice_*`) are never added to devices (`hw_*`).

**Pictures.** `docs/dashboards/<uid>.png` shows each dashboard's layout for reviewers: every panel at its
grid position with its title, type, unit(s), table columns (↗ = data link), first query and description;
no data, not a Grafana screenshot. They are not rebuilt by `make generate` or checked by `make test`;
after changing a dashboard run `.venv/bin/python scripts/render_dashboards.py` (headless Chromium from
Debian's `chromium` package, installed when missing and running as root).
"""


def _panel_unit(p: dict) -> str:
    if p["type"] != "table":
        return f"`{p['fieldConfig']['defaults']['unit']}`"
    hidden = {name for t in p.get("transformations", []) if t["id"] == "organize"
              for name, on in t["options"].get("excludeByName", {}).items() if on}
    units = []
    for o in p["fieldConfig"]["overrides"]:
        if o["matcher"]["options"] in hidden:
            continue
        for prop in o["properties"]:
            if prop["id"] == "unit" and f"`{prop['value']}`" not in units:
                units.append(f"`{prop['value']}`")
    return ", ".join(units) or f"`{p['fieldConfig']['defaults']['unit']}`"


def render_docs(boards: dict[str, dict]) -> str:
    out = [DOC_INTRO]
    for uid, d in boards.items():
        out += [f"## {d['title']}", "", f"UID `{uid}` — `dashboards/generated/{uid}.json`. {d['description']}", "",
                f"Layout picture: [`{PICTURES}/{uid}.png`](dashboards/{uid}.png)", ""]
        out += ["| Panel | Type | Unit | Metrics |", "|---|---|---|---|"]
        section = ""
        for p in d["panels"]:
            if p["type"] == "row":
                section = p["title"]
                continue
            metrics = []
            for t in p["targets"]:
                for n in common.metric_refs(t["expr"]):
                    spec, source = common.KNOWN_METRICS[n]
                    item = f"`{spec.name}` ({source})"
                    if item not in metrics:
                        metrics.append(item)
            title = p["title"].replace("|", "\\|")
            out.append(f"| {section} › {title} | {p['type']} | {_panel_unit(p)} | {', '.join(metrics)} |")
        out.append("")
    return "\n".join(out)


def generate(config: Config = CONFIG) -> dict[str, str]:
    """Every generated file: ``{path relative to the repository: text}``."""
    boards = dashboards(config)
    files = {f"{OUT_DIR}/{uid}.json": json.dumps(d, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
             for uid, d in boards.items()}
    files[DOC] = render_docs(boards)
    return files


def main() -> int:
    write_files(generate(), "dashboards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
