"""The Helm chart (``helm/accelscope``), rendered and linted by the real Helm engine.

``helm-python-sdk`` bundles Helm v4's Go SDK as a library (no helm binary):
``helm_python.Chart.load(path).render(values, name=..., namespace=...)`` and
``helm_python.lint(path, values)``.  Every scenario is rendered: the defaults
and each ``helm/accelscope/ci/*.yaml``.  Each rendered manifest is validated
with ``kubernetes-validate`` in strict mode (unknown fields are errors)
against the Kubernetes 1.30 and 1.37 schemas; the Prometheus Operator's kinds
(ServiceMonitor, PodMonitor, PrometheusRule) have no schema there, so their
required fields are checked here.  Then the security properties are asserted
on the output (least privilege), the rendered rules and dashboards are
compared with the generated files, and the rendered command lines are parsed
by the agents' own argument parsers.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import helm_python  # helm-python-sdk, in the dev extras
import kubernetes_validate  # kubernetes-validate, in the dev extras
import kubernetes_validate.utils
import pytest
import yaml

from alerts import generate as alerts_gen
from alerts.config import AlertConfig
from dashboards import generate as dashboards_gen
from helm import generate as helm_gen

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "accelscope"
RELEASE = "accelscope"
NAMESPACE = "monitoring"
SCENARIOS: dict[str, Path | None] = {"defaults": None}
SCENARIOS.update({p.stem: p for p in sorted((CHART / "ci").glob("*.yaml"))})

CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
WANTED_K8S = ("1.30", "1.37")
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _k8s_versions() -> tuple[str, ...]:
    """1.30 and 1.37; if the installed kubernetes-validate stops short of 1.37, its newest."""
    from packaging.version import Version

    latest = kubernetes_validate.utils.latest_version()
    return tuple(v if Version(v) <= Version(latest) else latest for v in WANTED_K8S)


K8S_VERSIONS = _k8s_versions()


# ------------------------------------------------------------------ rendering
@functools.cache
def _chart() -> Any:
    return helm_python.Chart.load(str(CHART))


def scenario_values(name: str) -> dict:
    path = SCENARIOS[name]
    return {} if path is None else (yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


@functools.cache
def _defaults() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))


def effective(name: str) -> dict:
    """The values a scenario renders with (defaults overlaid with the scenario)."""
    return _merge(_defaults(), scenario_values(name))


def render_raw(values: dict, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    return _chart().render(values, name=release, namespace=namespace)


def parse(rendered: dict[str, str]) -> list[dict]:
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                docs.append(doc)
    return docs


@functools.cache
def _render_scenario(name: str) -> tuple[str, str]:
    out = render_raw(scenario_values(name))
    notes = next((v for k, v in out.items() if k.endswith("NOTES.txt")), "")
    return json.dumps(parse(out)), notes


def manifests(name: str) -> list[dict]:
    return json.loads(_render_scenario(name)[0])


def notes(name: str) -> str:
    return _render_scenario(name)[1]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, component: str | None = None) -> dict:
    found = [d for d in by_kind(docs, kind)
             if component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("DaemonSet", "Deployment", "StatefulSet", "Job", "CronJob", "Pod")]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def container(spec: dict, name: str) -> dict:
    return next(c for c in spec["containers"] if c["name"] == name)


def component_of(doc: dict) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


ALL = list(SCENARIOS)


def test_scenarios_exist():
    assert {"all-on-values", "kube-rbac-proxy-values", "tls-basic-auth-values", "history-pvc-values",
            "volcano-dra-values", "vendors-values", "runtimeclass-nvidia-values"} <= set(SCENARIOS)


# ------------------------------------------------------------------ lint, schema
@pytest.mark.parametrize("name", ALL)
def test_lint_reports_no_errors(name):
    report = helm_python.lint(str(CHART), scenario_values(name), namespace=NAMESPACE, strict=True,
                              kube_version="v1.30.0")
    errors = [m for m in report["messages"] if m["severity"] >= 3] + list(report.get("errors") or [])
    assert not errors, errors
    warnings = [m for m in report["messages"] if m["severity"] == 2]
    assert not warnings, warnings


def _walk_values(values: Any, schema: dict, path: str, missing: list[str]) -> None:
    if not isinstance(values, dict):
        return
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, val in values.items():
        if key in props:
            _walk_values(val, props[key], f"{path}.{key}", missing)
        elif isinstance(extra, dict):  # a map with typed values (nodeSelector, users...)
            _walk_values(val, extra, f"{path}.{key}", missing)
        elif schema.get("type") == "object" and "properties" not in schema and extra is None:
            continue  # a Kubernetes object passed through as is (affinity, strategy...)
        else:
            missing.append(f"{path}.{key}")


def test_schema_describes_every_value():
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    missing: list[str] = []
    _walk_values(_defaults(), schema, "", missing)
    for name in ALL:
        _walk_values(scenario_values(name), schema, f"[{name}]", missing)
    assert not missing, f"values without a schema entry: {missing}"
    # and every chart-owned schema property has a default (no stale schema entries); Kubernetes
    # types (resources, security contexts, probes) describe more fields than values.yaml sets
    stale: list[str] = []
    k8s_typed = {"resources", "podSecurityContext", "containerSecurityContext", "livenessProbe", "readinessProbe"}

    def walk_schema(s: dict, values: Any, path: str) -> None:
        for key, sub in s.get("properties", {}).items():
            if not isinstance(values, dict) or key not in values:
                stale.append(f"{path}.{key}")
            elif key not in k8s_typed:
                walk_schema(sub, values[key], f"{path}.{key}")

    walk_schema(schema, _defaults(), "")
    assert not stale, f"schema entries with no default in values.yaml: {stale}"


@pytest.mark.parametrize("bad", [
    {"exporter": {"typo": True}},
    {"collector": {"replicas": 0}},
    {"webConfig": {"basicAuth": {"users": {"prometheus": "a plain password"}}}},
    {"exporter": {"vendors": {"nvidia": {"hostPaths": [{"name": "x", "path": "relative/path"}]}}}},
    {"prometheus": {"monitor": {"kind": "Probe"}}},
    {"image": {"pullPolicy": "Sometimes"}},
])
def test_schema_is_enforced_at_render(bad):
    with pytest.raises(helm_python.HelmValuesError):
        render_raw(bad)


@pytest.mark.parametrize("bad, message", [
    ({"collector": {"leaderElection": {"enabled": False}}}, "leaderElection"),
    ({"webConfig": {"enabled": True}}, "webConfig.enabled needs"),
    ({"webConfig": {"enabled": True, "tls": {"enabled": True}}}, "existingSecret"),
    ({"webConfig": {"enabled": True, "basicAuth": {"enabled": True}}}, "at least one user"),
    ({"exporter": {"kubeRBACProxy": {"enabled": True}},
      "prometheus": {"monitor": {"enabled": True, "kind": "PodMonitor"}}},
     "PodMonitor cannot send"),
    ({"collector": {"history": {"persistence": {"enabled": True, "accessModes": ["ReadWriteOncePod"]}}}},
     "ReadWriteOncePod"),
])
def test_unsafe_combinations_fail_with_a_message(bad, message):
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render_raw(bad)


# ------------------------------------------------------------------ Kubernetes schemas
@functools.cache
def _schema_file(filename: str, version: str) -> Any:
    return _original_schema_contents(filename, version)


_original_schema_contents = kubernetes_validate.utils.schema_contents


@pytest.fixture(autouse=False)
def cached_schemas(monkeypatch):
    """kubernetes-validate re-reads its (large) JSON schemas on every call: cache them."""
    monkeypatch.setattr(kubernetes_validate.utils, "schema_contents", _schema_file)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ALL)
def test_manifests_validate_strictly(name, version, cached_schemas):
    checked = 0
    for doc in manifests(name):
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {version}: "
                        f"{'.'.join(map(str, exc.path))}: {exc.message}")
        checked += 1
    assert checked >= 8


def test_kubernetes_versions():
    assert K8S_VERSIONS[0] == "1.30"
    # the newest schemas kubernetes-validate ships; 1.37 when installed (kubernetes-validate >= 1.37)
    assert K8S_VERSIONS[1] in ("1.37", kubernetes_validate.utils.latest_version())


@pytest.mark.parametrize("name", ALL)
def test_metadata(name):
    docs = manifests(name)
    ns = effective(name)["namespaceOverride"] or NAMESPACE
    seen = set()
    label_value = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    for d in docs:
        meta = d["metadata"]
        key = (d["kind"], meta.get("namespace"), meta["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert len(meta["name"]) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"])
        for k, v in meta.get("labels", {}).items():
            assert isinstance(v, str) and len(v) <= 63 and label_value.match(v), (k, v)
        cluster_scoped = d["kind"] in ("ClusterRole", "ClusterRoleBinding")
        assert ("namespace" in meta) != cluster_scoped, d["kind"]
        if d["kind"] in ("DaemonSet", "Deployment", "Service", "ServiceAccount", "Secret", "PersistentVolumeClaim",
                         "PodDisruptionBudget", "NetworkPolicy"):
            assert meta["namespace"] == ns
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["app.kubernetes.io/part-of"] == "accelscope"


# ------------------------------------------------------------------ CRD kinds
def _check_endpoint(ep: dict, where: str) -> None:
    assert isinstance(ep.get("port"), str) and ep["port"], where
    assert ep.get("path", "/metrics") == "/metrics", where
    assert ep["scheme"] in ("http", "https"), where
    for key in ("interval", "scrapeTimeout"):
        if key in ep:
            assert re.fullmatch(r"(([0-9]+)(y|w|d|h|m|s|ms))+", ep[key]), where
    for key in ("relabelings", "metricRelabelings"):
        assert isinstance(ep.get(key, []), list)
    if "basicAuth" in ep:
        for part in ("username", "password"):
            ref = ep["basicAuth"][part]
            assert ref["name"] and ref["key"], where
    if "authorization" in ep:
        assert ep["authorization"]["credentials"]["name"], where
    if "bearerTokenFile" in ep:
        assert where.startswith("ServiceMonitor"), "bearerTokenFile is a ServiceMonitor field only"
    unknown = set(ep) - {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "tlsConfig",
                         "basicAuth", "authorization", "bearerTokenFile", "relabelings", "metricRelabelings"}
    assert not unknown, (where, unknown)


def check_monitor(doc: dict, docs: list[dict]) -> None:
    """The required fields of monitoring.coreos.com/v1 ServiceMonitor / PodMonitor, and that
    the selector and port name find a real Service or pod port."""
    kind = doc["kind"]
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    spec = doc["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selector, "an empty selector would select every Service/pod"
    assert spec["namespaceSelector"]["matchNames"]
    for key in ("sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit"):
        if key in spec:
            assert isinstance(spec[key], int) and spec[key] > 0
    assert spec.get("sampleLimit"), "scrape limits are on by default"
    endpoints = spec["endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"]
    assert endpoints
    for ep in endpoints:
        _check_endpoint(ep, f"{kind}/{doc['metadata']['name']}")
    unknown = set(spec) - {"jobLabel", "selector", "namespaceSelector", "endpoints", "podMetricsEndpoints",
                           "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit",
                           "labelValueLengthLimit"}
    assert not unknown, unknown
    # the selector finds the component's Service (or pods) and the port exists there
    if kind == "ServiceMonitor":
        targets = [s for s in by_kind(docs, "Service")
                   if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())]
        assert len(targets) == 1
        ports = {p["name"] for p in targets[0]["spec"]["ports"]}
        job = targets[0]["metadata"]["labels"][spec["jobLabel"]]
    else:
        targets = [w for w in workloads(docs)
                   if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())]
        assert len(targets) == 1
        ports = {p["name"] for c in pod_spec(targets[0])["containers"] for p in c.get("ports", [])}
        job = targets[0]["spec"]["template"]["metadata"]["labels"][spec["jobLabel"]]
    assert {ep["port"] for ep in endpoints} <= ports
    cfg = AlertConfig()
    selector_re = cfg.exporter_selector if component_of(doc) == "exporter" else cfg.collector_selector
    assert re.fullmatch(re.search(r'job=~"(.*)"', selector_re).group(1), job), job


def check_prometheus_rule(doc: dict) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    groups = doc["spec"]["groups"]
    assert groups and set(doc["spec"]) == {"groups"}
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names))
    for g in groups:
        assert g["name"] and g["rules"]
        for r in g["rules"]:
            assert isinstance(r["expr"], (str, int)) and str(r["expr"]).strip()
            assert ("alert" in r) != ("record" in r)
            if "alert" in r:
                assert r["labels"]["severity"] in ("critical", "warning", "info")
                assert r["annotations"]["summary"] and r["annotations"]["runbook_url"]
                assert re.fullmatch(r"(([0-9]+)(y|w|d|h|m|s|ms))+", r.get("for", "0s"))


@pytest.mark.parametrize("name", ALL)
def test_crd_kinds_have_their_required_fields(name):
    docs = manifests(name)
    values = effective(name)
    monitors = [d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    if values["prometheus"]["monitor"]["enabled"]:
        assert {d["kind"] for d in monitors} == {values["prometheus"]["monitor"]["kind"]}
        assert len(monitors) == sum(values[c]["enabled"] for c in ("exporter", "collector"))
    else:
        assert not monitors, "the ServiceMonitor is off by default (no CRDs needed)"
    for d in monitors:
        check_monitor(d, docs)
    rules = by_kind(docs, "PrometheusRule")
    assert len(rules) == (1 if values["prometheus"]["rule"]["enabled"] else 0)
    for d in rules:
        check_prometheus_rule(d)


def test_monitor_with_kube_rbac_proxy_sends_prometheus_token():
    docs = manifests("kube-rbac-proxy-values")
    for sm in by_kind(docs, "ServiceMonitor"):
        ep = sm["spec"]["endpoints"][0]
        assert ep["scheme"] == "https"
        assert ep["bearerTokenFile"] == f"{SA_TOKEN_DIR}/token"


# ------------------------------------------------------------------ generated content
def test_chart_copies_of_generated_files_are_up_to_date():
    stale = helm_gen.stale_files()
    assert not stale, f"stale chart copies {stale}: run 'make generate' (python -m helm.generate)"


def test_chart_rules_are_the_prometheus_rule_groups():
    generated = yaml.safe_load(alerts_gen.generate()[alerts_gen.PROMETHEUS_RULE])
    chart_file = yaml.safe_load((CHART / "files" / "rules" / "accelscope-rules.yaml").read_text(encoding="utf-8"))
    assert chart_file == {"groups": generated["spec"]["groups"]}


@pytest.mark.parametrize("name", [n for n in ALL if effective(n)["prometheus"]["rule"]["enabled"]])
def test_rendered_prometheus_rule_equals_generated(name):
    rule = one(manifests(name), "PrometheusRule")
    generated = yaml.safe_load(alerts_gen.generate()[alerts_gen.PROMETHEUS_RULE])
    committed = yaml.safe_load((ROOT / alerts_gen.PROMETHEUS_RULE).read_text(encoding="utf-8"))
    assert rule["spec"] == generated["spec"] == committed["spec"]
    assert rule["kind"] == generated["kind"] and rule["apiVersion"] == generated["apiVersion"]
    for k, v in effective(name)["prometheus"]["rule"]["additionalLabels"].items():
        assert rule["metadata"]["labels"][k] == v


@pytest.mark.parametrize("name", [n for n in ALL if effective(n)["dashboards"]["enabled"]])
def test_rendered_dashboards_equal_generated(name):
    values = effective(name)["dashboards"]
    cms = [d for d in by_kind(manifests(name), "ConfigMap")
           if d["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboards"]
    prefix = dashboards_gen.OUT_DIR + "/"
    generated = {rel[len(prefix):]: text for rel, text in dashboards_gen.generate().items()
                 if rel.startswith(prefix) and rel.endswith(".json")}
    rendered = {}
    for cm in cms:
        assert cm["metadata"]["labels"][values["label"]] == values["labelValue"] == "1"
        assert cm["metadata"]["annotations"][values["folderAnnotation"]] == values["folder"]
        assert cm["metadata"]["namespace"] == (values["namespace"] or NAMESPACE)
        assert len(cm["data"]) == 1
        rendered.update(cm["data"])
    assert rendered == generated
    for key, text in rendered.items():
        assert text == (ROOT / prefix / key).read_text(encoding="utf-8")
        assert len(text.encode()) < 1_000_000, "a ConfigMap holds at most 1 MiB"
        assert json.loads(text)["uid"] == key[:-len(".json")]


def test_dashboards_and_rules_are_off_by_default():
    docs = manifests("defaults")
    assert not by_kind(docs, "PrometheusRule")
    assert not by_kind(docs, "ConfigMap")


# ------------------------------------------------------------------ security
def _asks_privileged(values: dict) -> bool:
    return any(v["enabled"] and v["privileged"] for v in values["exporter"]["vendors"].values())


def _asks_root(values: dict) -> bool:
    e = values["exporter"]
    return (e["podResources"]["enabled"] and e["podResources"]["runAsRoot"]) or any(
        v["enabled"] and v["runAsRoot"] for v in e["vendors"].values())


def _effective_sc(pod: dict, ctr: dict, key: str) -> Any:
    sc = ctr.get("securityContext", {})
    return sc[key] if key in sc else pod.get("securityContext", {}).get(key)


@pytest.mark.parametrize("name", ALL)
def test_nothing_privileged_unless_asked(name):
    values = effective(name)
    for w in workloads(manifests(name)):
        spec = pod_spec(w)
        exporter = component_of(w) == "exporter"
        assert not spec.get("hostNetwork", False)
        assert not spec.get("hostIPC", False)
        assert spec.get("hostPID", False) == (exporter and values["exporter"]["hostPID"])
        for c in containers(spec):
            sc = c["securityContext"]
            asked = exporter and c["name"] == "exporter" and _asks_privileged(values)
            assert sc.get("privileged", False) == asked, (w["metadata"]["name"], c["name"])
            assert sc.get("allowPrivilegeEscalation") is asked
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert not sc["capabilities"].get("add")
            assert _effective_sc(spec, c, "seccompProfile") == {"type": "RuntimeDefault"}
            root_asked = exporter and c["name"] == "exporter" and _asks_root(values)
            if root_asked:
                assert _effective_sc(spec, c, "runAsUser") == 0
            else:
                assert _effective_sc(spec, c, "runAsNonRoot") is True, (w["metadata"]["name"], c["name"])
                assert _effective_sc(spec, c, "runAsUser") not in (None, 0)


def test_defaults_are_non_root_and_unprivileged():
    for w in workloads(manifests("defaults")):
        spec = pod_spec(w)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 65534
        for c in containers(spec):
            assert not c["securityContext"].get("privileged")
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("name", ALL)
def test_resources_requests_and_limits(name):
    for w in workloads(manifests(name)):
        for c in containers(pod_spec(w)):
            res = c["resources"]
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res[part]), (w["metadata"]["name"], c["name"], part)


@pytest.mark.parametrize("name", ALL)
def test_host_paths_are_read_only_and_exporter_only(name):
    values = effective(name)
    e = values["exporter"]
    allowed = set()
    if e["hami"]["enabled"]:
        allowed.add(e["hami"]["hostPath"])
    if e["podResources"]["enabled"]:
        allowed.add(e["podResources"]["hostPath"])
    for v in e["vendors"].values():
        if v["enabled"]:
            allowed |= {h["path"] for h in v["hostPaths"]}
    for w in workloads(manifests(name)):
        spec = pod_spec(w)
        host = {v["name"]: v["hostPath"]["path"] for v in spec.get("volumes", []) if "hostPath" in v}
        if component_of(w) != "exporter":
            assert not host, "only the exporter mounts host paths"
            continue
        assert set(host.values()) == allowed
        assert "/" not in host.values() and "/proc" not in host.values()
        mounted = set()
        for c in containers(spec):
            for m in c.get("volumeMounts", []):
                if m["name"] in host:
                    assert m.get("readOnly") is True, f"{m['name']} ({host[m['name']]}) must be read-only"
                    assert c["name"] == "exporter"
                    mounted.add(m["name"])
        assert mounted == set(host), "every host path is mounted"


@pytest.mark.parametrize("name", ALL)
def test_service_account_tokens_only_where_needed(name):
    values = effective(name)
    docs = manifests(name)
    for sa in by_kind(docs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    names = {sa["metadata"]["name"] for sa in by_kind(docs, "ServiceAccount")}
    assert len(names) == sum(values[c]["enabled"] for c in ("exporter", "collector")), "one per component"
    for w in workloads(docs):
        spec = pod_spec(w)
        assert spec["serviceAccountName"] in names
        comp = component_of(w)
        projected = {v["name"] for v in spec.get("volumes", [])
                     if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))}
        for c in containers(spec):
            has_projected = any(m["name"] in projected and m["mountPath"] == SA_TOKEN_DIR
                                for m in c.get("volumeMounts", []))
            token = spec["automountServiceAccountToken"] or has_projected
            if comp == "exporter" and c["name"] == "exporter":
                assert token is values["exporter"]["kubeAPI"]["enabled"], "exporter: token only for API attribution"
            elif c["name"] == "kube-rbac-proxy":
                assert token, "kube-rbac-proxy reviews tokens through the API"
            elif comp == "collector":
                assert token, "the collector watches the API"
        if comp == "exporter":
            assert spec["automountServiceAccountToken"] is values["exporter"]["kubeAPI"]["enabled"]


def _rules(docs: list[dict]) -> list[tuple[dict, dict]]:
    return [(d, r) for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]


@pytest.mark.parametrize("name", ALL)
def test_rbac_has_no_wildcards_and_least_verbs(name):
    docs = manifests(name)
    for role, rule in _rules(docs):
        for key in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
            assert not any("*" in x for x in rule.get(key, [])), (role["metadata"]["name"], rule)
        assert "nonResourceURLs" not in rule
        for res in rule["resources"]:
            assert res.split("/")[0] not in ("secrets", "configmaps", "serviceaccounts", "roles", "rolebindings",
                                             "clusterroles", "clusterrolebindings"), (role["metadata"]["name"], res)
        verbs = set(rule["verbs"])
        assert not verbs & {"escalate", "bind", "impersonate", "delete", "deletecollection"}
        if verbs - {"get", "list", "watch"}:
            # writes: only the collector's Lease, and kube-rbac-proxy's reviews
            if rule["resources"] == ["leases"]:
                assert role["kind"] == "Role" and verbs <= {"create", "get", "update"}
                assert "resourceNames" in rule or verbs == {"create"}
            else:
                assert verbs == {"create"} and rule["resources"] in (["tokenreviews"], ["subjectaccessreviews"])
    for b in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert all(s["kind"] == "ServiceAccount" for s in b["subjects"])
        assert b["roleRef"]["name"] in {r["metadata"]["name"] for r in by_kind(docs, b["roleRef"]["kind"])}


def _granted(docs: list[dict], kind: str, name_suffix: str) -> set[tuple[str, str]]:
    out = set()
    for d in by_kind(docs, kind):
        if d["metadata"]["name"].endswith(name_suffix):
            for r in d["rules"]:
                for g in r["apiGroups"]:
                    for res in r["resources"]:
                        out.add((g, res))
    return out


@pytest.mark.parametrize("name", ALL)
def test_collector_reads_exactly_what_its_toggles_say(name):
    values = effective(name)
    docs = manifests(name)
    col = values["collector"]
    expected = {("", "pods"), ("", "events"), ("events.k8s.io", "events"), ("", "nodes")}
    if col["volcano"]["enabled"]:
        expected.add(("scheduling.volcano.sh", "podgroups"))
    if col["dra"]["enabled"]:
        expected |= {("resource.k8s.io", "resourceclaims"), ("resource.k8s.io", "resourceslices")}
    cluster = _granted(docs, "ClusterRole", "-collector")
    namespaced = _granted(docs, "Role", "-collector-watch")
    assert cluster | namespaced == expected
    if col["watchNamespace"]:
        slices = {("resource.k8s.io", "resourceslices")} if col["dra"]["enabled"] else set()
        assert cluster == {("", "nodes")} | slices
        role = next(r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-collector-watch"))
        assert role["metadata"]["namespace"] == col["watchNamespace"]
    for role, rule in _rules(docs):
        if role["metadata"]["name"].endswith(("-collector", "-collector-watch")):
            assert rule["verbs"] == ["get", "list", "watch"]
    exporter_roles = [r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("-exporter")]
    if values["exporter"]["kubeAPI"]["enabled"]:
        assert [rule for r in exporter_roles for rule in r["rules"]] == [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    else:
        assert not exporter_roles, "no exporter RBAC without API attribution"


@pytest.mark.parametrize("name", ALL)
def test_leader_election(name):
    values = effective(name)
    docs = manifests(name)
    ns = values["namespaceOverride"] or NAMESPACE
    dep = one(docs, "Deployment", "collector")
    args = container(pod_spec(dep), "collector")["args"]
    assert dep["spec"]["replicas"] == values["collector"]["replicas"]
    leases = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    if not values["collector"]["leaderElection"]["enabled"]:
        assert not any(a.startswith("--leader-elect") for a in args) and not leases
        assert values["collector"]["replicas"] == 1
        return
    assert "--leader-elect" in args
    assert f"--leader-election-namespace={ns}" in args
    lease = next(a.split("=", 1)[1] for a in args if a.startswith("--leader-election-lease-name="))
    (role,) = leases
    assert role["metadata"]["namespace"] == ns
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease],
         "verbs": ["get", "update"]},
    ]
    binding = next(b for b in by_kind(docs, "RoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"])
    assert binding["subjects"][0]["name"] == pod_spec(dep)["serviceAccountName"]


def test_two_collector_replicas_by_default_with_a_disruption_budget():
    docs = manifests("defaults")
    assert one(docs, "Deployment", "collector")["spec"]["replicas"] == 2
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


# ------------------------------------------------------------------ history
@pytest.mark.parametrize("name", ALL)
def test_history_volume(name):
    values = effective(name)["collector"]
    docs = manifests(name)
    spec = pod_spec(one(docs, "Deployment", "collector"))
    args = container(spec, "collector")["args"]
    pvcs = by_kind(docs, "PersistentVolumeClaim")
    if not values["history"]["enabled"]:
        assert "--history=off" in args and not pvcs
        return
    assert "--history=/var/lib/accelscope/history.db" in args
    mount = next(m for m in container(spec, "collector")["volumeMounts"] if m["name"] == "history")
    assert mount["mountPath"] == "/var/lib/accelscope" and not mount.get("readOnly")
    vol = next(v for v in spec["volumes"] if v["name"] == "history")
    p = values["history"]["persistence"]
    if not p["enabled"]:
        assert "emptyDir" in vol and not pvcs
        return
    (pvc,) = pvcs
    assert vol["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == p["accessModes"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == p["size"]
    colocated = spec.get("affinity", {}).get("podAffinity")
    if "ReadWriteMany" in p["accessModes"]:
        assert not colocated
    else:  # one RWO volume: the replicas must share its node
        term = colocated["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert term["topologyKey"] == "kubernetes.io/hostname"


def test_history_existing_claim():
    docs = parse(render_raw({"collector": {"history": {"persistence": {"enabled": True, "existingClaim": "mine",
                                                                        "accessModes": ["ReadWriteMany"]}}}}))
    assert not by_kind(docs, "PersistentVolumeClaim")
    vol = next(v for v in pod_spec(one(docs, "Deployment"))["volumes"] if v["name"] == "history")
    assert vol["persistentVolumeClaim"]["claimName"] == "mine"


# ------------------------------------------------------------------ command lines, ports, probes
def _parser(add_arguments) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(p)
    return p


LEADER_FLAGS = ("--leader-elect", "--leader-election-namespace", "--leader-election-lease-name")
VENDOR_BACKENDS = ("amd", "ascend", "hygon", "kunlunxin", "cambricon", "iluvatar", "metax", "moorethreads")


def expected_sources(values: dict) -> list[str]:
    e = values["exporter"]
    out = list(e["sources"])
    if e["vendors"]["nvidia"]["enabled"]:
        out.append("nvml")
    if e["hami"]["enabled"]:
        out.append("hami-vgpu")
    out += [v for v in VENDOR_BACKENDS if e["vendors"][v]["enabled"]]
    return list(dict.fromkeys(out))


def test_vendor_toggles_name_the_exporter_backends():
    """One toggle per vendor backend of the exporter (exporter.main.VENDOR_SOURCES, once it has them)."""
    import exporter.main as exporter_main

    assert set(_defaults()["exporter"]["vendors"]) == {"nvidia", *VENDOR_BACKENDS}
    if hasattr(exporter_main, "VENDOR_SOURCES"):
        assert set(exporter_main.VENDOR_SOURCES) == set(VENDOR_BACKENDS)


@pytest.mark.parametrize("name", ALL)
def test_command_lines_parse_with_the_agents_parsers(name):
    from exporter.main import add_arguments as exporter_args
    from scheduler_events.main import add_arguments as collector_args

    for w in workloads(manifests(name)):
        comp = component_of(w)
        c = container(pod_spec(w), comp)
        assert c["command"] == ["accelscope"] and c["args"][0] == comp
        parser = _parser(exporter_args if comp == "exporter" else collector_args)
        known = {s for a in parser._actions for s in a.option_strings}  # noqa: SLF001
        args = [a for a in c["args"][1:]
                # the leader-election flags arrive with scheduler_events/leader.py; checked in test_leader_election
                if not (a.split("=", 1)[0] in LEADER_FLAGS and a.split("=", 1)[0] not in known)]
        try:
            ns = parser.parse_args(args)
        except (argparse.ArgumentError, SystemExit) as exc:
            pytest.fail(f"{comp}: {c['args']} rejected: {exc}")
        values = effective(name)[comp]
        host, port = ns.listen.rsplit(":", 1)
        if values["kubeRBACProxy"]["enabled"]:
            assert (host, int(port)) == ("127.0.0.1", values["kubeRBACProxy"]["upstreamPort"])
        else:
            assert (host, int(port)) == ("0.0.0.0", values["port"])
        if comp == "exporter":
            import exporter.main as exporter_main

            sources = expected_sources(effective(name))
            assert ns.source == ",".join(sources)
            known = set(exporter_main.SOURCES)
            if not hasattr(exporter_main, "VENDOR_SOURCES"):  # before the vendor backends landed
                known |= set(VENDOR_BACKENDS)
            assert set(sources) <= known
            assert ns.kube_api == ("on" if values["kubeAPI"]["enabled"] else "off")
            if values["hami"]["enabled"]:
                assert ns.hami_vgpu_dir == values["hami"]["hostPath"]
        otlp = values["otlp"]["endpoint"] or effective(name)["otlp"]["endpoint"]
        assert (ns.otlp_endpoint or "") == otlp


@pytest.mark.parametrize("name", ALL)
def test_ports_services_and_probes(name):
    values = effective(name)
    docs = manifests(name)
    for w in workloads(docs):
        comp = component_of(w)
        v = values[comp]
        spec = pod_spec(w)
        proxied = v["kubeRBACProxy"]["enabled"]
        serving = container(spec, "kube-rbac-proxy" if proxied else comp)
        assert serving["ports"] == [{"name": "metrics", "containerPort": v["port"], "protocol": "TCP"}]
        if proxied:
            assert "ports" not in container(spec, comp)
        svc = one(docs, "Service", comp)
        assert svc["spec"]["ports"] == [{"name": "metrics", "port": v["port"], "targetPort": v["port"],
                                         "protocol": "TCP"}]
        assert svc["spec"]["selector"] == w["spec"]["selector"]["matchLabels"]
        assert svc["metadata"]["labels"]["accelscope.io/job"] == w["spec"]["template"]["metadata"]["labels"][
            "accelscope.io/job"]
        web = values["webConfig"]
        tls = web["enabled"] and web["tls"]["enabled"] and not proxied
        mtls = tls and web["tls"]["clientAuthType"] == "RequireAndVerifyClientCert"
        c = container(spec, comp)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            p = c[probe]
            if mtls:  # the kubelet has no client certificate
                assert p["tcpSocket"] == {"port": v["port"]} and "httpGet" not in p
            else:
                assert p["httpGet"] == {"path": path, "port": v["port"],
                                        "scheme": "HTTPS" if (tls or proxied) else "HTTP"}
            assert p["periodSeconds"] >= 1 and p["timeoutSeconds"] >= 1


@pytest.mark.parametrize("name", ALL)
def test_job_names_match_the_rules(name):
    cfg = AlertConfig()
    docs = manifests(name)
    for svc in by_kind(docs, "Service"):
        comp = component_of(svc)
        sel = cfg.exporter_selector if comp == "exporter" else cfg.collector_selector
        assert re.fullmatch(re.search(r'job=~"(.*)"', sel).group(1), svc["metadata"]["labels"]["accelscope.io/job"])


@pytest.mark.parametrize("release, overrides, job", [
    ("accelscope", {}, "accelscope-exporter"),
    ("prod", {}, "prod-accelscope-exporter"),
    ("gpu-accelscope", {}, "gpu-accelscope-exporter"),
    ("x", {"fullnameOverride": "gpu-mon"}, "gpu-mon-accelscope-exporter"),
    ("x" * 53, {}, None),
])
def test_job_name_for_any_release_name(release, overrides, job):
    docs = parse(render_raw(overrides, release=release))
    svc = one(docs, "Service", "exporter")
    label = svc["metadata"]["labels"]["accelscope.io/job"]
    if job:
        assert label == job
    assert len(label) <= 63 and re.fullmatch(r"(.+-)?accelscope-exporter", label)


# ------------------------------------------------------------------ web config, proxy
@pytest.mark.parametrize("name", [n for n in ALL if effective(n)["webConfig"]["enabled"]])
def test_web_config_secret_is_accepted_by_accelscope(name):
    from accelscope.webconfig import WebConfig

    values = effective(name)
    docs = manifests(name)
    secret = one(docs, "Secret")
    text = secret["stringData"]["web-config.yml"]
    cfg = WebConfig.from_mapping(yaml.safe_load(text), source="web-config.yml")
    w = values["webConfig"]
    assert cfg.tls_enabled == w["tls"]["enabled"]
    assert dict(cfg.basic_auth_users) == (w["basicAuth"]["users"] if w["basicAuth"]["enabled"] else {})
    if w["tls"]["enabled"]:
        assert cfg.tls.min_version == w["tls"]["minVersion"]
        assert str(cfg.tls.cert_file) == "/etc/accelscope/tls/tls.crt"
    for w_ in workloads(docs):
        comp = component_of(w_)
        spec = pod_spec(w_)
        args = container(spec, comp)["args"]
        if values[comp]["kubeRBACProxy"]["enabled"]:
            assert not any(a.startswith("--web-config") for a in args), "the proxy does TLS and auth there"
            continue
        assert "--web-config=/etc/accelscope/web/web-config.yml" in args
        vols = {v["name"]: v for v in spec["volumes"]}
        assert vols["web-config"]["secret"]["secretName"] == secret["metadata"]["name"]
        if w["tls"]["enabled"]:
            assert vols["tls"]["secret"]["secretName"] == w["tls"]["existingSecret"]
        mounts = {m["name"]: m for m in container(spec, comp)["volumeMounts"]}
        assert mounts["web-config"]["readOnly"] and mounts["web-config"]["mountPath"] == "/etc/accelscope/web"


@pytest.mark.parametrize("name", [n for n in ALL if any(effective(n)[c]["kubeRBACProxy"]["enabled"]
                                                         for c in ("exporter", "collector"))])
def test_kube_rbac_proxy(name):
    values = effective(name)
    docs = manifests(name)
    proxied = [c for c in ("exporter", "collector") if values[c]["kubeRBACProxy"]["enabled"]]
    for comp in proxied:
        w = next(w for w in workloads(docs) if component_of(w) == comp)
        proxy = container(pod_spec(w), "kube-rbac-proxy")
        v = values[comp]
        assert f"--secure-listen-address=0.0.0.0:{v['port']}" in proxy["args"]
        assert f"--upstream=http://127.0.0.1:{v['kubeRBACProxy']['upstreamPort']}/" in proxy["args"]
        assert "--ignore-paths=/healthz,/readyz" in proxy["args"]
        cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith(f"{comp}-rbac-proxy"))
        attrs = yaml.safe_load(cm["data"]["config.yaml"])["authorization"]["resourceAttributes"]
        svc = one(docs, "Service", comp)
        assert attrs == {"namespace": NAMESPACE, "apiVersion": "v1", "resource": "services",
                         "subresource": svc["metadata"]["name"], "name": svc["metadata"]["name"]}
    reviews = next(r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("-kube-rbac-proxy"))
    assert {(r["apiGroups"][0], r["resources"][0]) for r in reviews["rules"]} == {
        ("authentication.k8s.io", "tokenreviews"), ("authorization.k8s.io", "subjectaccessreviews")}
    reader = next(r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("-metrics-reader"))
    assert reader["rules"][0]["verbs"] == ["get"]


# ------------------------------------------------------------------ exporter options
def test_per_vendor_device_access():
    values = effective("vendors-values")
    w = one(manifests("vendors-values"), "DaemonSet")
    spec = pod_spec(w)
    c = container(spec, "exporter")
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for vendor, v in values["exporter"]["vendors"].items():
        for hp in v["hostPaths"]:
            vol = f"{vendor}-{hp['name']}"
            assert vols[vol]["hostPath"]["path"] == hp["path"]
            assert mounts[vol]["readOnly"] is True and mounts[vol]["mountPath"] == hp.get("mountPath", hp["path"])
    assert f"--source={','.join(expected_sources(values))}" in c["args"]
    assert expected_sources(values) == ["nvml", "hami-vgpu", *VENDOR_BACKENDS]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["ASCEND_VISIBLE_DEVICES"] == "all"
    assert c["securityContext"]["privileged"] is True  # asked for by exporter.vendors.ascend.privileged
    assert spec["securityContext"]["runAsUser"] == 0 and spec["securityContext"]["runAsNonRoot"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "WARNING: the exporter runs privileged" in notes("vendors-values")


def test_vendor_toggles_off_mount_nothing():
    spec = pod_spec(one(parse(render_raw({"exporter": {"sources": ["mock"], "vendors": {"nvidia": {"enabled": False}},
                                                       "hami": {"enabled": False},
                                                       "podResources": {"enabled": False}}})), "DaemonSet"))
    assert not [v for v in spec["volumes"] if "hostPath" in v]
    assert not any(e["name"].startswith("NVIDIA_") for e in container(spec, "exporter")["env"])
    assert "--source=mock" in container(spec, "exporter")["args"]
    with pytest.raises(helm_python.HelmError, match="the exporter has no source"):
        render_raw({"exporter": {"vendors": {"nvidia": {"enabled": False}}, "hami": {"enabled": False}}})


def test_nvidia_runtime_class():
    spec = pod_spec(one(manifests("runtimeclass-nvidia-values"), "DaemonSet"))
    assert spec["runtimeClassName"] == "nvidia"
    env = {e["name"]: e.get("value") for e in container(spec, "exporter")["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    assert "--per-process" in container(spec, "exporter")["args"]
    assert spec["hostPID"] is True  # asked for, for per-process memory
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert "runtimeClassName" not in pod_spec(one(manifests("defaults"), "DaemonSet"))


def test_exporter_defaults():
    spec = pod_spec(one(manifests("defaults"), "DaemonSet"))
    c = container(spec, "exporter")
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/usr/local/vgpu/containers"]["readOnly"] is True
    assert mounts["/var/lib/kubelet/pod-resources"]["readOnly"] is True
    assert mounts["/tmp"]["name"] == "tmp"  # the only writable path (read-only root filesystem)
    assert spec["tolerations"] == [{"operator": "Exists", "effect": "NoSchedule"}]


def test_otlp_endpoint_values():
    docs = parse(render_raw({"otlp": {"endpoint": "http://otel:4318"},
                             "collector": {"otlp": {"endpoint": "https://traces:4318"}}}))
    ex = container(pod_spec(one(docs, "DaemonSet")), "exporter")["args"]
    col = container(pod_spec(one(docs, "Deployment")), "collector")["args"]
    assert "--otlp-endpoint=http://otel:4318" in ex and "--otlp-interval=30" in ex
    assert "--otlp-endpoint=https://traces:4318" in col
    assert not any(a.startswith("--otlp") for a in
                   container(pod_spec(one(manifests("defaults"), "DaemonSet")), "exporter")["args"])


def test_components_can_be_turned_off():
    docs = parse(render_raw({"collector": {"enabled": False}, "prometheus": {"monitor": {"enabled": True}}}))
    assert {component_of(d) for d in docs if "app.kubernetes.io/component" in d["metadata"].get("labels", {})} == {
        "exporter"}
    assert not [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    docs = parse(render_raw({"exporter": {"enabled": False}}))
    assert not by_kind(docs, "DaemonSet")


def test_network_policy():
    docs = manifests("all-on-values")
    pols = by_kind(docs, "NetworkPolicy")
    assert len(pols) == 2
    for p in pols:
        comp = component_of(p)
        assert p["spec"]["ingress"][0]["ports"] == [{"port": effective("all-on-values")[comp]["port"],
                                                     "protocol": "TCP"}]


# ------------------------------------------------------------------ NOTES
@pytest.mark.parametrize("name", ALL)
def test_notes_say_how_to_reach_the_endpoints(name):
    text = notes(name)
    values = effective(name)
    assert "accelscope explain" in text
    assert f"{values['exporter']['port']}" in text and f"{values['collector']['port']}" in text
    assert "{{" not in text and "<no value>" not in text


def test_web_config_from_an_existing_secret():
    docs = parse(render_raw({"webConfig": {"enabled": True, "existingSecret": "my-web-config",
                                           "existingSecretKey": "web.yml",
                                           "tls": {"enabled": True, "existingSecret": "my-tls"}}}))
    assert not by_kind(docs, "Secret"), "the chart writes no web config of its own"
    for w in workloads(docs):
        comp = component_of(w)
        spec = pod_spec(w)
        assert "--web-config=/etc/accelscope/web/web.yml" in container(spec, comp)["args"]
        vols = {v["name"]: v for v in spec["volumes"]}
        assert vols["web-config"]["secret"]["secretName"] == "my-web-config"
        assert vols["tls"]["secret"]["secretName"] == "my-tls"
        assert container(spec, comp)["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
