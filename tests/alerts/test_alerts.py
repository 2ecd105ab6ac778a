"""Alert rules: generated files, promtool, amtool, and mixin-style lint.

The lint re-implements what mixtool / pint would check (see
``shared/reference/style-anchors.md`` §2.4) over the generated rule file:
CamelCase names, severities, a static summary and a templated description,
``runbook_url`` anchors that exist in ``docs/runbooks.md``, ``for`` on every
alert, metric names and label matchers that exist in the schema modules,
and a promtool test that fires and one that stays silent for every alert.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import generate as gen
from alerts import rules as R
from alerts.config import SEVERITIES, AlertConfig
from exporter import schema as exporter_schema
from scheduler_events import schema as collector_schema

ROOT = Path(__file__).resolve().parents[2]
RULE_FILE = ROOT / gen.RULE_FILE
TESTS_DIR = ROOT / "alerts" / "tests"
AM_CONFIG = ROOT / "alerts" / "alertmanager.example.yml"
CFG = AlertConfig()

#: series Prometheus itself makes for every target
TARGET_SERIES = {"up"}
#: labels Prometheus adds to every scraped series (target labels), plus the cluster label
TARGET_LABELS = {"job", "instance", CFG.cluster_label}
#: recording rules only the dashboards use
DASHBOARD_RECORDS = {f"{CFG.cluster_label}:accel_fragmented_gpus:sum"}


# ---------------------------------------------------------------- tools


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if path:
            return path
    pytest.fail(f"{' or '.join(names)} not found: install the Debian package "
                f"{'prometheus' if 'promtool' in names else 'prometheus-alertmanager'} (make test does it as root)")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, **kw)


# ---------------------------------------------------------------- data


def _rule_groups() -> list[dict]:
    return yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))["groups"]


def _alert_rules() -> list[dict]:
    return [r for g in _rule_groups() for r in g["rules"] if "alert" in r]


def _record_rules() -> list[dict]:
    return [r for g in _rule_groups() for r in g["rules"] if "record" in r]


def _test_files() -> list[Path]:
    files = sorted(TESTS_DIR.glob("*.yaml"))
    assert files, f"no promtool tests in {TESTS_DIR}"
    return files


def _schema_metrics() -> dict[str, tuple[str, ...]]:
    """Every series name the agents expose -> its labels (histograms expand)."""
    out: dict[str, tuple[str, ...]] = {}
    for spec in exporter_schema.ALL + collector_schema.ALL:
        out[spec.name] = spec.labels
        if spec.type == "histogram":
            out[spec.name + "_bucket"] = spec.labels + ("le",)
            out[spec.name + "_sum"] = spec.labels
            out[spec.name + "_count"] = spec.labels
    return out


# ---------------------------------------------------------------- PromQL parsing

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
             "bool", "inf", "nan", "atan2"}
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_SELECTOR_RE = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER_RE = re.compile(r"([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*\"(?:[^\"\\]|\\.)*\"")
_GROUPING_RE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT_RE = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")


def promql_selectors(expr: str) -> list[tuple[str, list[str]]]:
    """``[(metric name, [label names matched])]`` of every vector selector
    written with braces (the name may be empty for ``{__name__=...}``)."""
    return [(m.group(1) or "", [lm.group(1) for lm in _MATCHER_RE.finditer(m.group(2))])
            for m in _SELECTOR_RE.finditer(expr)]


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers that are not functions,
    aggregations, keywords, label names, durations or numbers."""
    text = _STRING_RE.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)           # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)          # range and subquery windows
    text = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", text)
    text = _GROUPING_RE.sub(" ", text)               # by (...), on (...), group_left (...)
    return {m.group(1) for m in _IDENT_RE.finditer(text) if m.group(1).lower() not in _KEYWORDS}


def test_promql_parser_finds_metrics_and_skips_the_rest():
    expr = ('max by (cluster, hw_id) (rate(foo_total{job=~"a|b", x="y"}[5m] offset 10m)) / on (cluster) '
            'group_left (z) bar:baz:sum > 1e9 and time() - up{job="q"} < 0.5')
    assert promql_metric_names(expr) == {"foo_total", "bar:baz:sum", "up"}
    assert promql_selectors(expr) == [("foo_total", ["job", "x"]), ("up", ["job"])]


# ---------------------------------------------------------------- generated files and tools


def test_generated_files_are_up_to_date():
    stale = [rel for rel, text in gen.generate().items()
             if not (ROOT / rel).exists() or (ROOT / rel).read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated files {stale}: run 'make generate' (or python -m alerts.generate)"


def test_promtool_check_rules():
    res = _run([_tool("promtool"), "check", "rules", str(RULE_FILE)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_check_rules_on_the_prometheusrule_groups(tmp_path):
    manifest = yaml.safe_load((ROOT / gen.PROMETHEUS_RULE).read_text(encoding="utf-8"))
    path = tmp_path / "from-manifest.yaml"
    path.write_text(yaml.safe_dump({"groups": manifest["spec"]["groups"]}), encoding="utf-8")
    res = _run([_tool("promtool"), "check", "rules", str(path)])
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_test_rules():
    res = _run([_tool("promtool"), "test", "rules", *[str(p) for p in _test_files()]])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "FAILED" not in res.stdout + res.stderr


def test_fast_variant_for_end_to_end_tests(tmp_path):
    cfg = AlertConfig.from_dict({"for_override": "10s", "group_interval": "1s"})
    text = gen.rule_file_text(cfg)
    path = tmp_path / "fast.yaml"
    path.write_text(text, encoding="utf-8")
    res = _run([_tool("promtool"), "check", "rules", str(path)])
    assert res.returncode == 0, res.stdout + res.stderr
    groups = yaml.safe_load(text)["groups"]
    assert all(g["interval"] == "1s" for g in groups)
    assert {r["for"] for g in groups for r in g["rules"] if "alert" in r} == {"10s"}


def test_amtool_check_config():
    res = _run([_tool("amtool"), "check-config", str(AM_CONFIG)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


@pytest.mark.parametrize("labels, receiver", [
    (["alertname=AccelFragmentationHigh", "severity=critical"], "accelscope-page"),
    (["alertname=AccelFragmentationHigh", "severity=warning"], "accelscope-ticket"),
    (["alertname=AccelSliceMemoryNearLimit", "severity=info"], "null"),
])
def test_alertmanager_routes_by_severity(labels, receiver):
    res = _run([_tool("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels])
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == receiver


def test_alertmanager_example_inhibits_warning_under_critical():
    am = yaml.safe_load(AM_CONFIG.read_text(encoding="utf-8"))
    assert any(r.get("source_matchers") == ['severity = "critical"'] and
               r.get("target_matchers") == ['severity = "warning"'] and "alertname" in r.get("equal", [])
               for r in am["inhibit_rules"])
    for rec in am["receivers"]:
        for hook in rec.get("webhook_configs", []):
            assert hook["url"].startswith("http://127.0.0.1:"), hook


# ---------------------------------------------------------------- lint: alerts


def test_alert_names_are_camelcase_with_the_shared_prefix():
    for r in _alert_rules():
        name = r["alert"]
        assert re.fullmatch(r"[A-Z][a-zA-Z0-9]*", name), name
        assert name.startswith("Accel"), name
        assert len(name) <= 40, name


def test_groups_are_small_and_named():
    for g in _rule_groups():
        assert len(g["name"]) <= 40
        assert len(g["rules"]) <= 20, g["name"]
    names = [g["name"] for g in _rule_groups()]
    assert len(names) == len(set(names))


def test_severity_label():
    for r in _alert_rules():
        assert r["labels"]["severity"] in SEVERITIES, r["alert"]


def test_summary_is_static_and_description_templated():
    summaries: dict[str, str] = {}
    for r in _alert_rules():
        ann = r["annotations"]
        summary, desc = ann["summary"], ann["description"]
        assert "{{" not in summary and "$labels" not in summary and "$value" not in summary, r["alert"]
        assert summary[0].isupper() and summary.endswith("."), summary
        assert summaries.setdefault(r["alert"], summary) == summary, f"{r['alert']}: one summary per alert"
        assert re.search(r"\{\{.*\}\}", desc), f"{r['alert']}: description must be templated"
        assert desc.endswith("."), desc


def test_for_on_every_alert():
    for r in _alert_rules():
        assert re.fullmatch(r"(?:[0-9]+(?:ms|[smhdwy]))+", str(r.get("for", ""))), r["alert"]
        assert R.duration_seconds(r["for"]) > 0, r["alert"]


def _github_anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_runbook_url_points_at_an_existing_anchor():
    doc = (ROOT / gen.RUNBOOKS).read_text(encoding="utf-8")
    anchors = _github_anchors(doc)
    for r in _alert_rules():
        url = r["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == CFG.runbook_url_base and base.endswith("docs/runbooks.md"), url
        assert anchor == r["alert"].lower(), url
        assert anchor in anchors, f"docs/runbooks.md has no section for {r['alert']}"


def test_runbook_sections_name_dashboards_and_commands():
    doc = (ROOT / gen.RUNBOOKS).read_text(encoding="utf-8")
    sections = re.split(r"^## ", doc, flags=re.M)[1:]
    by_name = {s.splitlines()[0].strip(): s for s in sections}
    for name in {r["alert"] for r in _alert_rules()}:
        text = by_name[name]
        for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
            assert part in text, f"{name}: {part}"
        diagnosis = text.split("**Diagnosis.**")[1].split("**Mitigation.**")[0]
        assert any(f"**{d}**" in diagnosis for d in gen.DASHBOARDS), f"{name}: no dashboard in its diagnosis"
        assert re.search(r"`accelscope (explain|fragmentation report|exporter|collector)", diagnosis), \
            f"{name}: no accelscope command in its diagnosis"


def test_required_alerts_exist():
    have = {(r["alert"], r["labels"]["severity"]) for r in _alert_rules()}
    names = {n for n, _ in have}
    assert {("AccelFragmentationHigh", "warning"), ("AccelFragmentationHigh", "critical")} <= have
    assert {"AccelStrandedCapacity", "AccelPodsBlockedByFragmentation", "AccelPodPendingTooLong",
            "AccelPlacementFailuresHigh", "AccelDeviceUnhealthy", "AccelXidErrors", "AccelSliceMemoryNearLimit",
            "AccelSliceAllocatedIdle", "AccelNodeNotRegistered", "AccelExporterDown",
            "AccelExporterSourceFailing", "AccelCollectorWatchStale"} <= names


# ---------------------------------------------------------------- lint: metrics


def test_every_metric_in_an_expression_exists():
    known = _schema_metrics()
    recorded = {r["record"] for r in _record_rules()}
    for r in _rule_groups():
        for rule in r["rules"]:
            what = rule.get("alert") or rule.get("record")
            for name in promql_metric_names(rule["expr"]):
                assert name in known or name in recorded or name in TARGET_SERIES, \
                    f"{what}: {name} is neither in the schema modules nor a recording rule"


def test_label_matchers_exist_on_their_metric():
    known = _schema_metrics()
    recorded = {r["record"] for r in _record_rules()}
    all_labels = {label for labels in known.values() for label in labels}
    for g in _rule_groups():
        for rule in g["rules"]:
            what = rule.get("alert") or rule.get("record")
            for name, labels in promql_selectors(rule["expr"]):
                if name in known:
                    allowed = set(known[name]) | TARGET_LABELS
                elif name in TARGET_SERIES:
                    allowed = TARGET_LABELS
                else:
                    assert name in recorded, f"{what}: unknown selector {name!r}"
                    allowed = all_labels | TARGET_LABELS
                bad = set(labels) - allowed
                assert not bad, f"{what}: {name} has no label(s) {sorted(bad)}"


def test_grouping_labels_exist():
    """A typo in ``by (...)`` would aggregate into an empty label silently."""
    known = _schema_metrics()
    all_labels = {label for labels in known.values() for label in labels} | TARGET_LABELS
    for g in _rule_groups():
        for rule in g["rules"]:
            for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", rule["expr"]):
                labels = {x.strip() for x in m.group(1).split(",") if x.strip()}
                bad = labels - all_labels
                assert not bad, f"{rule.get('alert') or rule.get('record')}: unknown label(s) {sorted(bad)}"


def test_description_labels_are_kept_by_the_expression():
    """Every ``$labels.x`` in a description must survive the expression's
    aggregations, else it renders empty."""
    for r in _alert_rules():
        expr = r["expr"]
        if re.search(r"\b(sum|max|min|avg|count)\s*(by|without|\()", expr):
            kept = set()
            for m in re.finditer(r"\bby\s*\(([^)]*)\)", expr):
                kept |= {x.strip() for x in m.group(1).split(",")}
        else:  # no aggregation: every label of the selected series is kept
            kept = set(TARGET_LABELS)
            for name in promql_metric_names(expr):
                kept |= set(_schema_metrics().get(name, ()))
        for m in re.finditer(r"\$labels\.(\w+)", r["annotations"]["description"]):
            assert m.group(1) in kept, f"{r['alert']}: description uses $labels.{m.group(1)}, dropped by the expr"


def test_recording_rule_names_follow_level_metric_operations():
    alerts_text = "\n".join(r["expr"] for r in _alert_rules())
    records_text = "\n".join(r["expr"] for r in _record_rules())
    for r in _record_rules():
        name = r["record"]
        assert re.fullmatch(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+", name), name
        assert name.split(":")[1].startswith("accel_"), name
        assert not name.split(":")[1].endswith("_total"), f"{name}: drop _total after rate()"
        used = re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", alerts_text + "\n" + records_text.replace(
            r["expr"], ""))
        assert used or name in DASHBOARD_RECORDS, f"{name} is used by no rule"


def test_exporter_and_collector_metrics_use_their_selectors():
    exporter_names = {s.name for s in exporter_schema.ALL}
    collector_names = {s.name for s in collector_schema.ALL}
    for g in _rule_groups():
        for rule in g["rules"]:
            for name, _ in promql_selectors(rule["expr"]):
                sel = rule["expr"]
                if name in exporter_names:
                    assert re.search(rf"{name}\{{{re.escape(CFG.exporter_selector)}", sel), (rule, name)
                if name in collector_names:
                    assert re.search(rf"{name}\{{{re.escape(CFG.collector_selector)}", sel), (rule, name)


# ---------------------------------------------------------------- lint: tests


def test_every_alert_has_a_firing_and_a_silent_promtool_test():
    fires: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for path in _test_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["rule_files"] == ["../generated/accelscope-rules.yaml"], path
        for test in doc["tests"]:
            for art in test.get("alert_rule_test", []):
                exp = art.get("exp_alerts") or []
                if not exp:
                    silent.add(art["alertname"])
                for a in exp:
                    fires.add((art["alertname"], a["exp_labels"]["severity"]))
    for r in _alert_rules():
        key = (r["alert"], r["labels"]["severity"])
        assert key in fires, f"no promtool test fires {key}"
        assert r["alert"] in silent, f"no promtool test where {r['alert']} stays silent"


# ---------------------------------------------------------------- the PrometheusRule manifest


def test_prometheusrule_manifest_matches_the_rule_file():
    manifest = yaml.safe_load((ROOT / gen.PROMETHEUS_RULE).read_text(encoding="utf-8"))
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["name"]
    assert manifest["spec"]["groups"] == _rule_groups()


# ---------------------------------------------------------------- config


def test_config_overrides_and_rejects_unknown_keys():
    cfg = AlertConfig.from_dict({"fragmentation_warning_ratio": 0.4, "exporter_selector": 'job="gpu"',
                                 "handshake_ignore_vendors": ["nvidia"]})
    alerts = {(a.name, a.severity): a for a in R.alerts(cfg)}
    assert "> 0.4" in alerts[("AccelFragmentationHigh", "warning")].expr
    assert 'up{job="gpu"}' in alerts[("AccelExporterDown", "warning")].expr
    assert 'hw_vendor!~"nvidia"' in alerts[("AccelNodeNotRegistered", "warning")].expr
    with pytest.raises(KeyError):
        AlertConfig.from_dict({"fragmentation_warnign_ratio": 0.4})
    with pytest.raises(ValueError):
        AlertConfig.from_dict({"pending_for": "15 minutes"})
    with pytest.raises(ValueError):
        AlertConfig.from_dict({"device_failed_severity": "page"})


def test_runbook_url_base_is_configurable():
    cfg = AlertConfig.from_dict({"runbook_url_base": "https://runbooks.example/accelscope.md"})
    groups = gen.rule_groups(cfg)
    urls = {r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r}
    assert all(u.startswith("https://runbooks.example/accelscope.md#accel") for u in urls)


def test_rules_import_metric_names_from_the_schema_modules():
    for rel in ("alerts/rules.py", "alerts/config.py", "alerts/generate.py"):
        source = (ROOT / rel).read_text(encoding="utf-8")
        for spec in exporter_schema.ALL + collector_schema.ALL:
            assert not re.search(rf"(?<![\w:]){re.escape(spec.name)}(?![\w])", source), \
                f"{spec.name} is retyped in {rel}: use the schema module's spec.name (or @X./@C. in prose)"


def test_runbook_prose_references_resolve():
    for rb in R.runbooks().values():
        for text in (rb.meaning, rb.impact, *rb.diagnosis, *rb.mitigation):
            assert "@X." not in text and "@C." not in text, text
