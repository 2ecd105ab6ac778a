"""The generated Grafana dashboards: up to date, conventions (UIDs, variables,
links, units, descriptions, panel types), every metric from the schema
modules, every query parsed by promtool, joins and trace links right.

A lint in the spirit of grafana's dashboard-linter and mixtool, written as
pytest tests because those Go tools are not available here.  The metric-name
extraction below is deliberately independent of ``dashboards.common``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from dashboards import common
from dashboards.generate import PANEL_QUERIES, expand_variables, generate, panel_queries
from exporter import schema as exporter_schema
from scheduler_events import schema as collector_schema
from scheduler_events.model import trace_id_for_uid

ROOT = Path(__file__).resolve().parent.parent.parent

EXPECTED_UIDS = {
    "accelscope-fleet",
    "accelscope-node-device",
    "accelscope-tenants",
    "accelscope-placements",
    "accelscope-fragmentation",
}
ALLOWED_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge", "state-timeline", "heatmap", "piechart",
                 "histogram", "text", "barchart"}
ANGULAR_TYPES = {"graph", "singlestat", "table-old", "grafana-piechart-panel", "natel-discrete-panel",
                 "grafana-worldmap-panel", "flant-statusmap-panel"}
ALLOWED_UNITS = {"bytes", "Bps", "percentunit", "s", "watt", "celsius", "hertz", "short", "ops"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
VARIABLE_LABELS = {"cluster": "cluster", "node": "k8s_node_name", "namespace": "k8s_namespace_name",
                   "vendor": "hw_vendor", "model": "hw_model"}

FILES = generate()
BOARDS = {Path(p).stem: json.loads(t) for p, t in FILES.items() if p.endswith(".json")}


def panels(d: dict) -> list[dict]:
    out = []
    for p in d["panels"]:
        if p["type"] == "row":
            out += p.get("panels", [])
        else:
            out.append(p)
    return out


ALL_PANELS = [(uid, p) for uid, d in BOARDS.items() for p in panels(d)]


def _ids(items):
    return [f"{uid}:{p['title']}" for uid, p in items]


# ---------------------------------------------------------------- metric names, independently
def _schema_names() -> dict[str, str]:
    names = {}
    for source, specs in (("exporter", exporter_schema.ALL), ("collector", collector_schema.ALL)):
        for s in specs:
            names[s.name] = source
            if s.type == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    names[s.name + suffix] = source
    return names


SCHEMA_NAMES = _schema_names()
FAMILY_NAMES = {s.name for s in exporter_schema.ALL + collector_schema.ALL}


def family(name: str) -> str:
    """The family a sample name belongs to (``x_bucket`` -> ``x`` for histograms)."""
    if name in FAMILY_NAMES:
        return name
    return re.sub(r"_(bucket|sum|count)$", "", name)
FUNCTIONS_AND_KEYWORDS = {
    # aggregation operators and keywords (functions are recognised by the '(' that follows them)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "inf", "nan",
}


def metrics_in(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (or a Grafana
    ``label_values(query, label)`` variable query)."""
    found = set()
    for m in re.finditer(r'__name__\s*=~\s*"([^"]+)"', expr):
        found.update(m.group(1).split("|"))
    m = re.fullmatch(r"label_values\((.*),\s*\w+\)", expr.strip(), re.S)
    if m:
        expr = m.group(1)
    text = re.sub(r'"[^"]*"', " ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    for tok in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\b(\s*\()?", text):
        name, call = tok.group(1), tok.group(2)
        if call or name in FUNCTIONS_AND_KEYWORDS:
            continue
        found.add(name)
    return found


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


# ---------------------------------------------------------------- generated files
def test_generated_files_are_up_to_date():
    stale = [rel for rel, text in FILES.items()
             if not (ROOT / rel).exists() or (ROOT / rel).read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated files {stale}: run 'python -m dashboards.generate' (make generate)"


def test_generation_is_deterministic_and_stable_json():
    again = generate()
    assert again == FILES
    for rel, text in FILES.items():
        assert text.endswith("\n")
        if rel.endswith(".json"):
            assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_no_stray_generated_dashboards():
    on_disk = {p.name for p in (ROOT / "dashboards" / "generated").glob("*.json")}
    assert on_disk == {f"{uid}.json" for uid in EXPECTED_UIDS}


# ---------------------------------------------------------------- dashboard conventions
def test_stable_unique_uids_and_titles():
    assert set(BOARDS) == EXPECTED_UIDS
    for name, d in BOARDS.items():
        assert d["uid"] == name
        assert d["title"] and d["description"]
        assert "accelscope" in d["tags"]
        assert d["schemaVersion"] >= 36
    assert len({d["title"] for d in BOARDS.values()}) == len(BOARDS)


@pytest.mark.parametrize("uid", sorted(EXPECTED_UIDS))
def test_datasource_and_template_variables(uid):
    variables = {v["name"]: v for v in BOARDS[uid]["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name, label in VARIABLE_LABELS.items():
        v = variables[name]
        assert v["type"] == "query"
        assert v["datasource"] == DATASOURCE
        assert re.search(rf",\s*{label}\)$", v["query"]), v["query"]
        assert v["includeAll"] and v["allValue"] == ".*"
        assert v["multi"] is (name != "cluster")
        assert metrics_in(v["query"]) <= set(SCHEMA_NAMES), v["query"]
    # chained variables see the cluster
    for name in ("node", "namespace", "vendor", "model"):
        assert 'cluster=~"$cluster"' in variables[name]["query"]


@pytest.mark.parametrize("uid", sorted(EXPECTED_UIDS))
def test_links_between_dashboards(uid):
    d = BOARDS[uid]
    tag_links = [li for li in d["links"] if li["type"] == "dashboards"]
    assert tag_links and all("accelscope" in li["tags"] and li["keepTime"] and li["includeVars"]
                             for li in tag_links)
    # panel links and data links point at dashboards that exist
    text = json.dumps(d)
    targets = set(re.findall(r"/d/([\w-]+)\?", text))
    assert targets, f"{uid} has no link to another dashboard from a panel"
    assert targets <= EXPECTED_UIDS
    assert targets - {uid}


def test_every_dashboard_is_reachable_from_the_others():
    reached = set()
    for uid, d in BOARDS.items():
        reached |= set(re.findall(r"/d/([\w-]+)\?", json.dumps(d))) - {uid}
    assert reached >= EXPECTED_UIDS - {"accelscope-fleet"}


@pytest.mark.parametrize("uid,panel", ALL_PANELS, ids=_ids(ALL_PANELS))
def test_panel_type_unit_description_datasource(uid, panel):
    assert panel["type"] in ALLOWED_TYPES and panel["type"] not in ANGULAR_TYPES
    assert panel["datasource"] == DATASOURCE
    assert panel["targets"], "a panel without queries"
    for t in panel["targets"]:
        assert t["datasource"] == DATASOURCE
        assert t["expr"].strip()
    unit = panel["fieldConfig"]["defaults"].get("unit")
    assert unit in ALLOWED_UNITS, f"unit {unit!r}"
    for o in panel["fieldConfig"].get("overrides", []):
        for prop in o["properties"]:
            if prop["id"] == "unit":
                assert prop["value"] in ALLOWED_UNITS
    desc = panel.get("description", "")
    assert len(desc) > 20
    for t in panel["targets"]:
        for name in metrics_in(t["expr"]):
            assert f"`{family(name)}`" in desc, f"description does not name {family(name)}"


@pytest.mark.parametrize("uid,panel", ALL_PANELS, ids=_ids(ALL_PANELS))
def test_panel_layout(uid, panel):
    g = panel["gridPos"]
    assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0


@pytest.mark.parametrize("uid", sorted(EXPECTED_UIDS))
def test_no_overlapping_panels_and_unique_ids(uid):
    cells = {}
    ids = set()
    for p in BOARDS[uid]["panels"]:
        assert p["id"] not in ids
        ids.add(p["id"])
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


# ---------------------------------------------------------------- queries
def test_panel_queries_cover_every_target():
    n = sum(len(p["targets"]) for _, p in ALL_PANELS)
    assert len(PANEL_QUERIES) == n == len(panel_queries())
    titles = {(uid, p["title"]) for uid, p in ALL_PANELS}
    assert all((uid, title) in titles for uid, title, _ in PANEL_QUERIES)


@pytest.mark.parametrize("uid,title,expr", PANEL_QUERIES)
def test_every_metric_exists_in_the_schemas(uid, title, expr):
    names = metrics_in(expr)
    assert names, f"no metric found in {expr}"
    unknown = names - set(SCHEMA_NAMES)
    assert not unknown, f"{title}: metrics not in exporter/schema.py or scheduler_events/schema.py: {unknown}"


@pytest.mark.parametrize("uid,title,expr", PANEL_QUERIES)
def test_query_is_balanced_and_uses_grafana_intervals(uid, title, expr):
    s = _strip_strings(expr)
    assert s.count('"') % 2 == 0
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    stack = []
    for ch in s:
        if ch in depth:
            stack.append(ch)
        elif ch in closing:
            assert stack and stack[-1] == closing[ch], f"unbalanced {ch} in {expr}"
            stack.pop()
    assert not stack, f"unclosed {stack} in {expr}"
    # ranges are Grafana's, except the configured idle window
    for rng in re.findall(r"\[([^\]]+)\]", s):
        assert rng in ("$__rate_interval", "$__range", common.CONFIG.idle_window), rng
    # 0-1 stays 0-1: no percent scaling
    assert not re.search(r"\*\s*100\b|\b100\s*\*", expr)


def test_rate_in_time_series_uses_rate_interval():
    for uid, p in ALL_PANELS:
        for t in p["targets"]:
            for fn, rng in re.findall(r"\b(rate|increase|irate)\([^\[]*\[([^\]]+)\]", t["expr"]):
                if p["type"] == "timeseries":
                    assert rng == "$__rate_interval", (p["title"], t["expr"])
                else:
                    assert rng in ("$__range", "$__rate_interval"), (p["title"], t["expr"])


def test_promtool_parses_every_query(tmp_path):
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: run 'make test' (it installs the Debian package 'prometheus')")
    rules = [{"record": f"dashboard:query_{i}:expr", "expr": expand_variables(expr)}
             for i, (_, _, expr) in enumerate(PANEL_QUERIES)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    r = subprocess.run([exe, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_expand_variables_leaves_no_grafana_variables():
    for _, _, expr in PANEL_QUERIES:
        plain = expand_variables(expr)
        leftovers = set(re.findall(r"\$\{?[A-Za-z_]\w*", plain))
        assert not leftovers, (leftovers, plain)
    assert expand_variables('x{n=~"$node"}[$__rate_interval]', rate_interval="2m",
                            values={"node": "a|b"}) == 'x{n=~"a|b"}[2m]'
    assert '"$1$2$3$4$5"' in expand_variables(common.with_trace_id("m"))


# ---------------------------------------------------------------- units follow the metrics
def _column_units(panel: dict) -> list[tuple[str, str]]:
    """``(expr, unit)`` of each query: the panel's unit, or for a table the
    unit of the query's value column."""
    default = panel["fieldConfig"]["defaults"]["unit"]
    if panel["type"] != "table":
        return [(t["expr"], default) for t in panel["targets"]]
    units = {}
    for o in panel["fieldConfig"]["overrides"]:
        for prop in o["properties"]:
            if prop["id"] == "unit":
                units[o["matcher"]["options"]] = prop["value"]
    out = []
    for t in panel["targets"]:
        name = "Value" if len(panel["targets"]) == 1 else f"Value #{t['refId']}"
        out.append((t["expr"], units.get(name, default)))
    return out


def _expected_unit(expr: str) -> str | None:
    names = metrics_in(expr)
    s = _strip_strings(expr)
    counts = re.search(r"\bcount\b", s)
    divides = " / " in s
    if "histogram_quantile" in s or (names and all(n.endswith(("_seconds_sum", "_seconds_count")) for n in names)
                                     and divides):
        return "s"
    if names and all(n.endswith("_bytes") for n in names) and not counts:
        return "percentunit" if divides else "bytes"
    if names and all(n.endswith("_ratio") for n in names) and not counts and not divides \
            and not re.search(r"\bsum\b", s):
        return "percentunit"
    if names and all(n.endswith("_watts") for n in names) and not divides:
        return "watt"
    if names and all(n.endswith("_celsius") for n in names) and not divides:
        return "celsius"
    if names and all(n.endswith("_hertz") for n in names) and not divides:
        return "hertz"
    if names and all(n.endswith("_seconds_total") for n in names) and "rate(" in s:
        return "percentunit"  # seconds per second
    if names and all(n.endswith("_gpus") for n in names) and divides:
        return "percentunit"
    return None


@pytest.mark.parametrize("uid,panel", ALL_PANELS, ids=_ids(ALL_PANELS))
def test_units_follow_the_metrics(uid, panel):
    if panel["type"] == "state-timeline":
        return
    for expr, unit in _column_units(panel):
        want = _expected_unit(expr)
        if want is not None:
            assert unit == want, f"{panel['title']}: {unit} for {expr}"
        if unit == "percentunit":
            fc = panel["fieldConfig"]["defaults"]
            assert fc.get("max", 1) in (None, 1) and fc.get("min", 0) in (None, 0)


# ---------------------------------------------------------------- semantics an SRE checks
def _exprs():
    return [(uid, p, t["expr"]) for uid, p in ALL_PANELS for t in p["targets"]]


def test_memory_utilization_is_capacity_never_bandwidth():
    bandwidth = exporter_schema.MEMORY_BANDWIDTH.name
    for uid, p, expr in _exprs():
        if bandwidth in metrics_in(expr):
            assert "bandwidth" in p["title"].lower(), p["title"]
    # memory as a fraction is capacity: the utilization ratio, or usage over limit
    fractions = [e for _, p, e in _exprs() if p["fieldConfig"]["defaults"]["unit"] == "percentunit"
                 and "memory" in p["title"].lower() and "bandwidth" not in p["title"].lower()]
    assert fractions
    for e in fractions:
        assert bandwidth not in metrics_in(e)


def test_slices_are_never_added_to_devices():
    device_families = {s.name for s in exporter_schema.DEVICE_FAMILIES if s is not exporter_schema.DEVICE_INFO}
    slice_families = {s.name for s in exporter_schema.SLICE_FAMILIES}
    for uid, p, expr in _exprs():
        names = metrics_in(expr)
        assert not (names & device_families and names & slice_families), (p["title"], expr)


def test_allocation_and_usage_join_on_hw_id():
    exporter_names = {s.name for s in exporter_schema.ALL}
    collector_devices = {s.name for s in collector_schema.ALLOCATION_FAMILIES}
    joined = 0
    for uid, p, expr in _exprs():
        names = metrics_in(expr)
        if names & exporter_names and names & collector_devices:
            joined += 1
            assert re.search(r"\bon \([^)]*\bhw_id\b[^)]*\) group_left\b", expr), (p["title"], expr)
    assert joined >= 3  # fleet, node table, node time series


def test_info_families_are_joined_with_group_left():
    infos = {exporter_schema.DEVICE_INFO.name, exporter_schema.SLICE_INFO.name}
    for uid, p, expr in _exprs():
        names = metrics_in(expr)
        if names & infos and names - infos:
            assert re.search(r"\bon \(cluster, hw_id\) group_left \([\w, ]+\)", expr), (p["title"], expr)


def test_required_panels_exist():
    titles = {uid: {p["title"] for p in panels(d)} for uid, d in BOARDS.items()}
    assert {"Devices by vendor, model and health", "Device memory: size, registered, allocated, used",
            "Top tenants", "Pending accelerator pods"} <= titles["accelscope-fleet"]
    assert {"Devices", "Compute utilization", "Memory used / size (capacity)", "Power draw", "Temperature",
            "Device errors", "Slices per device"} <= titles["accelscope-node-device"]
    assert {"Slices per pod", "Over limit", "Near limit", "Allocated but idle"} <= titles["accelscope-tenants"]
    assert {"Placement outcomes", "Node rejections by reason code", "Phase latency p90 by phase",
            "Pending accelerator pods", "Decisions in the selected range"} <= titles["accelscope-placements"]
    assert {"Cluster fragmentation rate", "Per-node fragmentation", "Stranded GPUs by reason",
            "Largest placeable shapes", "Pods blocked by fragmentation"} <= titles["accelscope-fragmentation"]


def test_phase_latency_uses_histogram_quantile_with_exemplars():
    d = BOARDS["accelscope-placements"]
    targets = [t for p in panels(d) for t in p["targets"]]
    q = [t for t in targets if "histogram_quantile" in t["expr"]]
    assert q and all("_bucket{" in t["expr"] and "le" in t["expr"] for t in q)
    assert any(t["exemplar"] for t in q)


# ---------------------------------------------------------------- trace links
def _links(panel: dict) -> list[dict]:
    out = list(panel.get("links", []))
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in o["properties"]:
            if prop["id"] == "links":
                out += prop["value"]
    return out


@pytest.mark.parametrize("uid", ["accelscope-node-device", "accelscope-tenants"])
def test_pod_rows_link_to_their_trace(uid):
    trace_panels = [p for p in panels(BOARDS[uid])
                    if any("${__data.fields.trace_id}" in li["url"] for li in _links(p))]
    assert trace_panels
    for p in trace_panels:
        for t in p["targets"]:
            assert 'label_replace(' in t["expr"] and '"trace_id", "$1$2$3$4$5", "k8s_pod_uid"' in t["expr"]
        shown = [o["matcher"]["options"] for o in p["fieldConfig"]["overrides"]]
        assert "trace_id" in shown


def test_pending_pods_table_is_one_row_per_pod_linking_its_trace():
    (p,) = [p for p in panels(BOARDS["accelscope-placements"]) if p["title"] == "Pending accelerator pods"]
    pod_info = collector_schema.PENDING_POD.name
    assert pod_info in metrics_in(p["targets"][0]["expr"])
    for t in p["targets"]:
        # the collector exports trace_id: used as is, never derived again
        assert "label_replace" not in t["expr"]
        by_labels = re.search(rf"by \(([^)]*)\) \({pod_info}\{{", t["expr"]).group(1).split(", ")
        assert {"k8s_pod_name", "trace_id", "k8s_namespace_name", "reason"} <= set(by_labels)
        assert "k8s_pod_uid" not in by_labels
    names = {o["matcher"]["options"]: o for o in p["fieldConfig"]["overrides"]}
    trace_links = [li for prop in names["trace_id"]["properties"] if prop["id"] == "links" for li in prop["value"]]
    assert [li["url"] for li in trace_links] == [
        common.CONFIG.trace_url_template.replace("{trace_id}", "${__data.fields.trace_id}")]
    organize = [t for t in p["transformations"] if t["id"] == "organize"][0]["options"]
    order = sorted(organize["indexByName"], key=organize["indexByName"].get)
    shown = [n for n in order if not organize["excludeByName"].get(n)]
    assert shown[:3] == ["k8s_namespace_name", "k8s_pod_name", "reason"] and shown[-1] == "trace_id"
    assert organize["excludeByName"]["Value #A"]  # the constant 1 of the info series


def test_table_last_must_name_labels():
    with pytest.raises(ValueError):
        common.table("t", "a table", [common.Q("x", title="X")], labels=["a"], last=["b"])


def test_trace_id_regex_matches_the_collector_derivation():
    m = re.search(r'"k8s_pod_uid", "([^"]+)"\)', common.with_trace_id("m"))
    regex = m.group(1)
    for _ in range(20):
        uid = str(uuid.uuid4())
        got = re.fullmatch(regex, uid)  # Prometheus anchors label_replace regexes
        assert got is not None
        assert "".join(got.groups()) == trace_id_for_uid(uid)
    assert re.fullmatch(regex, "") is None and re.fullmatch(regex, "not-a-uid") is None


def test_trace_url_template_is_configurable():
    cfg = common.Config(trace_url_template="https://jaeger.example.com/trace/{trace_id}",
                        trace_search_url_template="", trace_namespace_search_url_template="")
    from dashboards import tenants
    d = common.to_dict(tenants.build(cfg))
    urls = [li["url"] for p in panels(d) for li in _links(p)]
    assert "https://jaeger.example.com/trace/${__data.fields.trace_id}" in urls
    assert not any("explore" in u for u in urls)


def test_default_trace_url_opens_tempo_with_the_trace_id():
    url = common.CONFIG.trace_url_template.replace("{trace_id}", "0123abcd")
    assert url.startswith("/explore?")
    from urllib.parse import parse_qs, urlsplit
    panes = json.loads(parse_qs(urlsplit(url).query)["panes"][0])
    (pane,) = panes.values()
    assert pane["datasource"] == "${traces}"
    assert pane["queries"][0]["query"] == "0123abcd"


# ---------------------------------------------------------------- docs
def test_docs_list_every_dashboard_panel_and_metric():
    doc = FILES["docs/dashboards.md"]
    assert (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8") == doc
    for uid, d in BOARDS.items():
        assert f"## {d['title']}" in doc and f"`{uid}`" in doc
        for p in panels(d):
            assert p["title"].replace("|", "\\|") in doc
            for t in p["targets"]:
                for name in metrics_in(t["expr"]):
                    assert f"`{family(name)}`" in doc


# ---------------------------------------------------------------- the facade
def test_sel_rejects_labels_the_family_does_not_have():
    with pytest.raises(ValueError):
        common.sel(collector_schema.PENDING, hw_id=common.eq("x"))
    with pytest.raises(ValueError):
        common.sel(exporter_schema.GPU_MEMORY_USAGE, suffix="_bucket")
    s = common.sel(collector_schema.PENDING, filters=("node", "namespace"))
    assert "k8s_node_name" not in s and 'k8s_namespace_name=~"$namespace"' in s


def test_metric_refs_refuses_unknown_names():
    with pytest.raises(ValueError):
        common.metric_refs("sum(DCGM_FI_DEV_FB_USED)")
    assert common.metric_refs('sum by (le) (rate(accel_placement_phase_duration_seconds_bucket{a="b"}[5m]))') \
        == ["accel_placement_phase_duration_seconds_bucket"]


def test_only_common_imports_grafanalib():
    for path in (ROOT / "dashboards").glob("*.py"):
        if path.name != "common.py":
            assert "grafanalib" not in path.read_text(encoding="utf-8"), path.name


# ---------------------------------------------------------------- query semantics, on promtool's engine
def _query(uid: str, title: str, index: int = 0) -> str:
    exprs = [e for u, t, e in PANEL_QUERIES if u == uid and t == title]
    return expand_variables(exprs[index])


_EXPORTER = ('job="exporter", instance="n1:9417", k8s_node_name="n1", hw_vendor="nvidia", hw_model="H100", '
             'accel_kind="gpu"')
_COLLECTOR = 'job="collector", instance="c:9418", k8s_node_name="n1", hw_vendor="nvidia", hw_model="H100"'
_POD_UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
_SLICE = (f'{_EXPORTER}, hw_id="vgpu-1", hw_name="gpu1/vgpu0", hw_parent="GPU-b", accel_index="1", '
          f'accel_slice_type="hami_vgpu", accel_slice_id="x/c/0", k8s_namespace_name="ml", k8s_pod_name="p2", '
          f'k8s_container_name="c", k8s_pod_uid="{_POD_UID}"')
_PENDING_PODS = [
    ("ml", "p3", "11111111-2222-4333-8444-555555555555", "CardInsufficientMemory"),
    ("ml", "p4", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "insufficient_resource"),
    ("batch", "b1", "01234567-89ab-4cde-8f01-23456789abcd", "none"),
]


def _pending_pod_labels(ns: str, pod: str, uid: str, reason: str) -> str:
    return (f'{{k8s_namespace_name="{ns}", k8s_pod_name="{pod}", reason="{reason}", scheduler="hami", '
            f'trace_id="{trace_id_for_uid(uid)}"}}')


_INPUT = [
    # two whole devices: GPU-a given to ml/p1, GPU-b shared through one HAMi vGPU slice
    (f'hw_gpu_memory_usage_bytes{{{_EXPORTER}, hw_id="GPU-a", hw_name="gpu0", accel_index="0", '
     f'k8s_namespace_name="ml", k8s_pod_name="p1"}}', "10e9"),
    (f'hw_gpu_memory_limit_bytes{{{_EXPORTER}, hw_id="GPU-a", hw_name="gpu0", accel_index="0", '
     f'k8s_namespace_name="ml", k8s_pod_name="p1"}}', "80e9"),
    (f'hw_gpu_memory_usage_bytes{{{_EXPORTER}, hw_id="GPU-b", hw_name="gpu1", accel_index="1"}}', "30e9"),
    (f'hw_gpu_memory_limit_bytes{{{_EXPORTER}, hw_id="GPU-b", hw_name="gpu1", accel_index="1"}}', "80e9"),
    (f'accel_device_memory_allocated_bytes{{{_COLLECTOR}, hw_id="GPU-a", accel_index="0"}}', "40e9"),
    (f'accel_device_memory_allocated_bytes{{{_COLLECTOR}, hw_id="GPU-b", accel_index="1"}}', "20e9"),
    (f'accel_device_memory_registered_bytes{{{_COLLECTOR}, hw_id="GPU-a", accel_index="0"}}', "80e9"),
    (f'accel_device_memory_registered_bytes{{{_COLLECTOR}, hw_id="GPU-b", accel_index="1"}}', "80e9"),
    (f'hw_status{{{_EXPORTER}, hw_id="GPU-a", hw_name="gpu0", accel_index="0", hw_type="gpu", hw_state="ok"}}', "0"),
    (f'hw_status{{{_EXPORTER}, hw_id="GPU-a", hw_name="gpu0", accel_index="0", hw_type="gpu", '
     f'hw_state="degraded"}}', "0"),
    (f'hw_status{{{_EXPORTER}, hw_id="GPU-a", hw_name="gpu0", accel_index="0", hw_type="gpu", '
     f'hw_state="predicted_failure"}}', "0"),
    (f'hw_status{{{_EXPORTER}, hw_id="GPU-a", hw_name="gpu0", accel_index="0", hw_type="gpu", '
     f'hw_state="failed"}}', "1"),
    (f'accel_slice_memory_usage_bytes{{{_SLICE}}}', "9e9"),
    (f'accel_slice_memory_limit_bytes{{{_SLICE}}}', "8e9"),
    ('accel_slice_info{job="exporter", instance="n1:9417", hw_id="vgpu-1", hw_name="gpu1/vgpu0", hw_parent="GPU-b", '
     'hw_vendor="nvidia", hw_model="H100", accel_kind="gpu", accel_index="1", accel_slice_type="hami_vgpu", '
     'accel_slice_id="x/c/0", k8s_node_name="n1", accel_slice_profile="8g"}', "1"),
    ('accel_pending_pods{job="collector", scheduler="hami", k8s_namespace_name="ml", reason="CardInsufficientMemory"}',
     "2"),
    ('accel_pending_pods{job="collector", scheduler="hami", k8s_namespace_name="ml", reason="insufficient_resource"}',
     "1"),
    ('accel_pending_oldest_seconds{job="collector", scheduler="hami", k8s_namespace_name="ml"}', "700"),
    # one series per pending pod; "batch" has no oldest-age series (yet)
    *[(f'accel_pending_pod_info{{job="collector", scheduler="hami", k8s_namespace_name="{ns}", '
       f'k8s_pod_name="{pod}", k8s_pod_uid="{uid}", reason="{reason}", trace_id="{trace_id_for_uid(uid)}"}}', "1")
      for ns, pod, uid, reason in _PENDING_PODS],
]


def _expr_test(expr: str, samples: list[tuple[str, float]]) -> dict:
    return {"expr": expr, "eval_time": "1m",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in samples]}


def test_query_semantics_with_promtool(tmp_path):
    """Joins, ratios, the health code and the trace id on known input."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: run 'make test' (it installs the Debian package 'prometheus')")
    fleet, node, tenants_, placements = ("accelscope-fleet", "accelscope-node-device", "accelscope-tenants",
                                          "accelscope-placements")
    slice_labels = ('{k8s_node_name="n1", hw_parent="GPU-b", hw_id="vgpu-1", hw_name="gpu1/vgpu0", '
                    'accel_slice_type="hami_vgpu", k8s_namespace_name="ml", k8s_pod_name="p2", '
                    f'k8s_container_name="c", k8s_pod_uid="{_POD_UID}", accel_slice_profile="8g", '
                    f'trace_id="{trace_id_for_uid(_POD_UID)}"}}')
    tests = [
        # allocated minus used per device, floored at 0: 40-10 on GPU-a, 20-30 -> 0 on GPU-b
        _expr_test(_query(fleet, "Allocated but unused device memory"), [('{hw_model="H100"}', 30e9)]),
        # capacity: (10+30) / (80+80)
        _expr_test(_query(fleet, "Device memory in use"), [("{}", 0.25)]),
        _expr_test(_query(fleet, "Device memory allocated"), [("{}", 60e9 / 160e9)]),
        # used / allocated per device, joined on hw_id
        _expr_test(_query(node, "Memory used / allocated per device"),
                   [('{hw_id="GPU-a", k8s_node_name="n1", hw_name="gpu0"}', 0.25),
                    ('{hw_id="GPU-b", k8s_node_name="n1", hw_name="gpu1"}', 1.5)]),
        # health code: failed = 3
        _expr_test(_query(node, "Device health"), [('{k8s_node_name="n1", hw_name="gpu0"}', 3)]),
        _expr_test(_query(fleet, "Unhealthy devices"), [("{}", 1)]),
        _expr_test(_query(fleet, "Devices"), [("{}", 1)]),
        # a slice over its own limit (9 of 8 GB), never compared with its device
        _expr_test(_query(tenants_, "Over limit"), [("{}", 1)]),
        _expr_test(_query(tenants_, "Near limit"), [("{}", 0)]),
        _expr_test(_query(tenants_, "Slices per pod", 2), [(slice_labels, 9 / 8)]),
        # one pending row per pod, with its trace id as exported (no job/instance/UID)...
        _expr_test(_query(placements, "Pending accelerator pods", 0),
                   [(_pending_pod_labels(*p), 1) for p in _PENDING_PODS]),
        # ... carrying its namespace's oldest age where the collector has one
        _expr_test(_query(placements, "Pending accelerator pods", 1),
                   [(_pending_pod_labels(*p), 700) for p in _PENDING_PODS if p[0] == "ml"]),
    ]
    (tmp_path / "empty.yml").write_text("groups: []\n", encoding="utf-8")
    spec = {"rule_files": ["empty.yml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m",
                       "input_series": [{"series": s, "values": f"{v}x5"} for s, v in _INPUT],
                       "promql_expr_test": tests}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec, width=10_000), encoding="utf-8")
    r = subprocess.run([exe, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
