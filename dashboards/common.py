"""Our small dashboard vocabulary, with grafanalib behind it.

The dashboard modules (``fleet``, ``node_device``, ``tenants``, ``placements``,
``fragmentation``) describe panels with the plain types of this module
(:class:`Q`, :class:`Panel`, :class:`Row`, :class:`Link`) and the helpers
(:func:`sel`, :func:`timeseries`, :func:`stat`, :func:`table`...).  Only
:func:`dashboard` and :func:`to_dict` touch grafanalib, so the library could
be swapped (grafana-foundation-sdk, or plain dicts) by rewriting those two.

What every dashboard gets from here:

* a stable UID (``accelscope-<name>``) and the tag ``accelscope``;
* a ``datasource`` variable (type prometheus) used by every panel and query,
  a ``traces`` variable (type tempo) for trace links, and the query variables
  ``cluster`` (optional external label; single value, All = any),
  ``node`` (``k8s_node_name``), ``namespace`` (``k8s_namespace_name``),
  ``vendor`` (``hw_vendor``) and ``model`` (``hw_model``), multi-value;
* a link row to the other accelscope dashboards, carrying time and variables;
* panels of non-Angular types only, each with a unit and a description that
  ends with the metrics it reads (derived from its queries, so it cannot go
  stale).

Metric names come from ``exporter.schema`` and ``scheduler_events.schema``
(``spec.name``); :func:`sel` refuses a matcher on a label the spec does not
have, and :func:`metric_refs` refuses a name neither schema declares.

**Trace links.**  The collector's trace id of a placement is the pod UID's 32
hex digits (``scheduler_events.model.trace_id_for_uid``).  Pod rows derive it
*in PromQL* with :func:`with_trace_id` (``label_replace`` of ``k8s_pod_uid``
into a ``trace_id`` label), and the ``Trace ID`` column links to
``Config.trace_url_template`` with ``{trace_id}`` replaced by Grafana's
``${__data.fields.trace_id}``.  The default opens Grafana Explore on the
Tempo data source picked in the ``traces`` variable; a Jaeger UI works with
e.g. ``https://jaeger.example.com/trace/{trace_id}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from accelscope.schema import HISTOGRAM, MetricSpec
from exporter import schema as exporter_schema
from scheduler_events import schema as collector_schema

# ---------------------------------------------------------------- identity
TAG = "accelscope"
UID_PREFIX = "accelscope-"

FLEET_UID = "accelscope-fleet"
NODE_DEVICE_UID = "accelscope-node-device"
TENANTS_UID = "accelscope-tenants"
PLACEMENTS_UID = "accelscope-placements"
FRAGMENTATION_UID = "accelscope-fragmentation"

#: uid -> title, in the order the dashboards are listed
TITLES = {
    FLEET_UID: "Accelerators / Fleet overview",
    NODE_DEVICE_UID: "Accelerators / Node and device",
    TENANTS_UID: "Accelerators / Tenants",
    PLACEMENTS_UID: "Accelerators / Placement decisions",
    FRAGMENTATION_UID: "Accelerators / Fragmentation",
}

#: the Grafana schema version we write (panels are in the current format)
SCHEMA_VERSION = 39
PLUGIN_VERSION = "10.4.0"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# ---------------------------------------------------------------- units
BYTES = "bytes"
BYTES_PER_SECOND = "Bps"
RATIO = "percentunit"  # 0-1 values only
SECONDS = "s"
WATTS = "watt"
CELSIUS = "celsius"
HERTZ = "hertz"
COUNT = "short"
PER_SECOND = "ops"
#: every unit a panel or column may use
UNITS = frozenset({BYTES, BYTES_PER_SECOND, RATIO, SECONDS, WATTS, CELSIUS, HERTZ, COUNT, PER_SECOND})

#: panel types we emit; none of them needs Angular
PANEL_TYPES = frozenset({"timeseries", "stat", "gauge", "table", "bargauge", "state-timeline"})


# ---------------------------------------------------------------- configuration
def _tempo_explore_url() -> str:
    pane = {"trace": {"datasource": "${traces}",
                      "queries": [{"refId": "A", "datasource": {"type": "tempo", "uid": "${traces}"},
                                   "queryType": "traceql", "query": "{trace_id}"}],
                      "range": {"from": "${__from}", "to": "${__to}"}}}
    return "/explore?schemaVersion=1&panes=" + _url_json(pane)


def _tempo_search_url() -> str:
    traceql = ('{ name = "placement" && span.k8s.namespace.name = "{namespace}"'
               ' && span.k8s.pod.name = "{pod}" }')
    pane = {"trace": {"datasource": "${traces}",
                      "queries": [{"refId": "A", "datasource": {"type": "tempo", "uid": "${traces}"},
                                   "queryType": "traceql", "query": traceql}],
                      "range": {"from": "${__from}", "to": "${__to}"}}}
    return "/explore?schemaVersion=1&panes=" + _url_json(pane)


def _tempo_namespace_search_url() -> str:
    traceql = '{ name = "placement" && span.k8s.namespace.name = "{namespace}" }'
    pane = {"trace": {"datasource": "${traces}",
                      "queries": [{"refId": "A", "datasource": {"type": "tempo", "uid": "${traces}"},
                                   "queryType": "traceql", "query": traceql}],
                      "range": {"from": "${__from}", "to": "${__to}"}}}
    return "/explore?schemaVersion=1&panes=" + _url_json(pane)


def _url_json(obj: Any) -> str:
    """Compact JSON for a URL query value: ``&``, spaces, quotes and ``=`` are
    percent-encoded; ``${...}`` and ``{placeholders}`` stay for interpolation."""
    return quote(json.dumps(obj, separators=(",", ":"), sort_keys=True), safe="${}:,[]_.-")


@dataclass(frozen=True)
class Config:
    """Knobs of the generated dashboards.

    ``trace_url_template``: data-link URL of a trace; ``{trace_id}`` becomes
    ``${__data.fields.trace_id}`` (the pod UID's 32 hex digits).
    ``trace_search_url_template``: URL searching a pod's placement trace by
    ``{namespace}`` and ``{pod}`` (for rows without a pod UID); empty = no link.
    ``trace_namespace_search_url_template``: URL listing the placement traces
    of a ``{namespace}`` (rows that are not one pod); empty = no link.
    ``near_limit``: a slice whose memory use reaches this fraction of its
    limit is "near limit".  ``idle_window`` / ``idle_utilization`` /
    ``idle_kernel_age_s``: a slice given to a pod is "allocated but idle" when
    its compute use stayed under ``idle_utilization`` for ``idle_window``, or
    it launched no kernel for ``idle_kernel_age_s``.
    ``fragmentation_warning`` / ``fragmentation_critical``: colour steps of
    the fragmentation rate.
    """

    trace_url_template: str = field(default_factory=_tempo_explore_url)
    trace_search_url_template: str = field(default_factory=_tempo_search_url)
    trace_namespace_search_url_template: str = field(default_factory=_tempo_namespace_search_url)
    near_limit: float = 0.9
    idle_window: str = "1h"
    idle_utilization: float = 0.01
    idle_kernel_age_s: int = 3600
    fragmentation_warning: float = 0.3
    fragmentation_critical: float = 0.5


CONFIG = Config()

# ---------------------------------------------------------------- variables
#: dashboard variable -> label it filters
VARIABLES = {
    "cluster": "cluster",
    "node": exporter_schema.NODE,
    "namespace": exporter_schema.NAMESPACE,
    "vendor": exporter_schema.HW_VENDOR,
    "model": exporter_schema.HW_MODEL,
}
#: the filters :func:`sel` applies by default (namespace is opt-in: devices
#: and the scheduler's views are not a tenant's)
DEFAULT_FILTERS = ("node", "vendor", "model")


def _names_matcher(*specs: MetricSpec) -> str:
    return '__name__=~"' + "|".join(s.name for s in specs) + '"'


def variable_queries() -> list[tuple[str, str]]:
    """``(variable, label_values query)`` of every query variable."""
    E, C = exporter_schema, collector_schema
    devices = _names_matcher(E.STATUS, C.DEVICE_MEMORY_REGISTERED)
    tenants = _names_matcher(E.STATUS, E.SLICE_MEMORY_LIMIT, C.PENDING)
    anything = _names_matcher(E.STATUS, C.SYNCED)
    return [
        ("cluster", f"label_values({{{anything}}}, cluster)"),
        ("node", f'label_values({{{devices}, cluster=~"$cluster"}}, {VARIABLES["node"]})'),
        ("namespace", f'label_values({{{tenants}, cluster=~"$cluster"}}, {VARIABLES["namespace"]})'),
        ("vendor", f'label_values({{{devices}, cluster=~"$cluster"}}, {VARIABLES["vendor"]})'),
        ("model", f'label_values({{{devices}, cluster=~"$cluster", hw_vendor=~"$vendor"}}, '
                  f'{VARIABLES["model"]})'),
    ]


# ---------------------------------------------------------------- schema lookups
def _known() -> dict[str, tuple[MetricSpec, str]]:
    out: dict[str, tuple[MetricSpec, str]] = {}
    for source, specs in (("exporter", exporter_schema.ALL), ("collector", collector_schema.ALL)):
        for s in specs:
            out[s.name] = (s, source)
            if s.type == HISTOGRAM:
                for suffix in ("_bucket", "_sum", "_count"):
                    out[s.name + suffix] = (s, source)
    return out


KNOWN_METRICS = _known()

_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                 "topk", "quantile", "limitk", "limit_ratio"}
_KEYWORDS = _AGGREGATIONS | {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                             "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"}


def metric_refs(expr: str) -> list[str]:
    """Metric names an expression (PromQL or ``label_values(...)``) reads, in
    order of first use.  Raises ``ValueError`` for a name no schema declares."""
    names: list[str] = []
    for m in re.finditer(r'__name__\s*=~?\s*"([^"]*)"', expr):
        names += m.group(1).split("|")
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)               # string literals
    s = re.sub(r"\{[^{}]*\}", "", s)                            # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)                            # ranges
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", "", s)                     # Grafana variables
    for m in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", s):
        tok = m.group(1)
        if tok in _KEYWORDS or tok == "label_values":
            continue
        names.append(tok)
    # label_values(query, label): the label is not a metric
    lv = re.match(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*$", expr, re.S)
    if lv and names and names[-1] == lv.group(2):
        names.pop()
    out: list[str] = []
    for n in names:
        if n not in KNOWN_METRICS:
            raise ValueError(f"unknown metric {n!r} in {expr!r}")
        if n not in out:
            out.append(n)
    return out


# ---------------------------------------------------------------- PromQL helpers
def sel(spec: MetricSpec, *, filters: Sequence[str] = DEFAULT_FILTERS, suffix: str = "", **matchers: str) -> str:
    """``name{cluster=~"$cluster", <variable filters>, <matchers>}``.

    ``suffix``: ``_bucket``, ``_sum`` or ``_count`` of a histogram family.

    ``filters``: dashboard variables to apply (from :data:`VARIABLES`); each
    is applied only when the family has its label.  ``matchers``: label ->
    matcher text (``'="general"'``, ``'!=""'``); the label must be one of
    the family's.
    """
    parts = ['cluster=~"$cluster"']
    for var in filters:
        label = VARIABLES[var]
        if label in spec.labels:
            parts.append(f'{label}=~"${var}"')
    for label, m in matchers.items():
        if label not in spec.labels:
            raise ValueError(f"{spec.name} has no label {label!r}")
        if not re.match(r'^(=|!=|=~|!~)".*"$', m):
            raise ValueError(f"bad matcher {m!r} for {label}")
        parts.append(f"{label}{m}")
    if suffix and (spec.type != HISTOGRAM or suffix not in ("_bucket", "_sum", "_count")):
        raise ValueError(f"{spec.name}: bad suffix {suffix!r}")
    return f"{spec.name}{suffix}{{{', '.join(parts)}}}"


def eq(value: str) -> str:
    """Matcher text ``="value"`` for :func:`sel`."""
    return f'="{value}"'


def ne(value: str) -> str:
    """Matcher text ``!="value"`` for :func:`sel`."""
    return f'!="{value}"'


def rx(value: str) -> str:
    """Matcher text ``=~"value"`` for :func:`sel`."""
    return f'=~"{value}"'


def by(op: str, labels: Iterable[str], expr: str) -> str:
    """``op by (labels) (expr)``."""
    return f"{op} by ({', '.join(labels)}) ({expr})"


#: pod UID (Kubernetes: a lower-case UUID) -> its 32 hex digits
UID_REGEX = "([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})"


def with_trace_id(expr: str, uid_label: str = exporter_schema.POD_UID) -> str:
    """Add a ``trace_id`` label: the pod UID without dashes, the collector's
    placement trace id.  Series without a UID keep no ``trace_id``."""
    return f'label_replace({expr}, "trace_id", "$1$2$3$4$5", "{uid_label}", "{UID_REGEX}")'


def health_code(labels: Sequence[str], *, filters: Sequence[str] = DEFAULT_FILTERS) -> str:
    """One number per device from ``hw_status``: 0 ok, 1 degraded,
    2 predicted_failure, 3 failed (see :data:`HEALTH_MAPPING`)."""
    S = exporter_schema.STATUS

    def state(st: str) -> str:
        return by("max", labels, sel(S, filters=filters, hw_state=f'="{st}"'))

    return f"{state('degraded')} + 2 * {state('predicted_failure')} + 3 * {state('failed')}"


# ---------------------------------------------------------------- value mappings, thresholds
def value_mapping(entries: Sequence[tuple[int, str, str]]) -> dict:
    """A Grafana value mapping from ``(value, text, colour)`` triples."""
    return {"type": "value",
            "options": {str(v): {"text": text, "color": color, "index": i}
                        for i, (v, text, color) in enumerate(entries)}}


HEALTH_MAPPING = value_mapping([(0, "ok", "green"), (1, "degraded", "orange"),
                                (2, "predicted failure", "yellow"), (3, "failed", "red")])
HEALTHY_MAPPING = value_mapping([(0, "unhealthy", "red"), (1, "healthy", "green")])


def steps(*pairs: tuple[float | None, str]) -> list[dict]:
    """Threshold steps from ``(value, colour)``; the first value is ``None``."""
    return [{"color": c, "value": v} for v, c in pairs]


GREEN = steps((None, "green"))


# ---------------------------------------------------------------- panel description types
@dataclass(frozen=True)
class Link:
    """A link (panel link or data link).  ``url`` may use Grafana variables
    and, in data links, ``${__data.fields.<label>}``."""

    title: str
    url: str
    new_tab: bool = False


@dataclass(frozen=True)
class Q:
    """One query.  For tables, ``title`` and ``unit`` describe its value
    column; ``thresholds``/``mappings``/``cell`` style it."""

    expr: str
    legend: str = ""
    title: str = ""
    unit: str | None = None
    exemplar: bool = False
    thresholds: tuple = ()
    mappings: tuple = ()
    cell: str | None = None
    decimals: int | None = None
    min: float | None = None
    max: float | None = None


@dataclass
class Panel:
    """A panel, independent of the dashboard library."""

    kind: str
    title: str
    description: str
    unit: str
    queries: list[Q]
    w: int = 12
    h: int = 8
    min: float | None = None
    max: float | None = None
    thresholds: list[dict] = field(default_factory=lambda: list(GREEN))
    mappings: list[dict] = field(default_factory=list)
    stack: bool = False
    legend_calcs: tuple[str, ...] = ()
    links: list[Link] = field(default_factory=list)
    # tables
    labels: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    last: list[str] = field(default_factory=list)
    label_links: dict[str, list[Link]] = field(default_factory=dict)
    sort_by: str | None = None
    # stat / gauge / bargauge
    instant: bool = False
    color_mode: str = "value"
    decimals: int | None = None
    fill: int = 10


@dataclass
class Row:
    title: str
    panels: list[Panel]


def _check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} is not one of {sorted(UNITS)}")
    return unit


def timeseries(title: str, description: str, unit: str, queries: Sequence[Q], *, w: int = 12, h: int = 8,
               stack: bool = False, min: float | None = None, max: float | None = None,
               legend_calcs: tuple[str, ...] = ("mean", "max", "lastNotNull"),
               thresholds: list[dict] | None = None, links: Sequence[Link] = ()) -> Panel:
    if unit == RATIO and min is None:
        min = 0
    return Panel("timeseries", title, description, _check_unit(unit), list(queries), w=w, h=h, stack=stack,
                 min=min, max=max, legend_calcs=legend_calcs, thresholds=thresholds or list(GREEN),
                 links=list(links))


def stat(title: str, description: str, unit: str, query: Q | str, *, w: int = 4, h: int = 4,
         thresholds: list[dict] | None = None, mappings: Sequence[dict] = (), links: Sequence[Link] = (),
         decimals: int | None = None, color_mode: str = "value") -> Panel:
    q = query if isinstance(query, Q) else Q(query)
    return Panel("stat", title, description, _check_unit(unit), [q], w=w, h=h, instant=True,
                 thresholds=thresholds or list(GREEN), mappings=list(mappings), links=list(links),
                 decimals=decimals, color_mode=color_mode)


def gauge(title: str, description: str, unit: str, query: Q | str, *, w: int = 4, h: int = 4,
          min: float = 0, max: float | None = None, thresholds: list[dict] | None = None,
          links: Sequence[Link] = ()) -> Panel:
    q = query if isinstance(query, Q) else Q(query)
    if unit == RATIO and max is None:
        max = 1
    return Panel("gauge", title, description, _check_unit(unit), [q], w=w, h=h, instant=True, min=min, max=max,
                 thresholds=thresholds or list(GREEN), links=list(links))


def bargauge(title: str, description: str, unit: str, queries: Sequence[Q], *, w: int = 12, h: int = 8,
             min: float | None = 0, max: float | None = None, thresholds: list[dict] | None = None,
             links: Sequence[Link] = ()) -> Panel:
    if unit == RATIO and max is None:
        max = 1
    return Panel("bargauge", title, description, _check_unit(unit), list(queries), w=w, h=h, instant=True,
                 min=min, max=max, thresholds=thresholds or list(GREEN), links=list(links))


def table(title: str, description: str, columns: Sequence[Q], *, labels: Sequence[str], w: int = 24,
          h: int = 8, unit: str = COUNT, hidden: Sequence[str] = (),
          label_links: dict[str, list[Link]] | None = None, sort_by: str | None = None,
          links: Sequence[Link] = (), last: Sequence[str] = ()) -> Panel:
    """An instant table: one row per label combination, one column per query
    (merged on the labels).  Every query should aggregate ``by`` exactly
    ``labels`` (plus ``hidden``) so the rows line up.  Label columns come
    first, in order, then the value columns, then the labels named in
    ``last`` (e.g. ``trace_id``).  ``hidden`` may also name a value column
    (``Value #A``) that only carries the rows."""
    for c in columns:
        if not c.title:
            raise ValueError(f"table {title!r}: every column needs a title")
        _check_unit(c.unit or unit)
    if not set(last) <= set(labels):
        raise ValueError(f"table {title!r}: last={list(last)} must name labels of {list(labels)}")
    return Panel("table", title, description, _check_unit(unit), list(columns), w=w, h=h, instant=True,
                 labels=list(labels), hidden=list(hidden), label_links=dict(label_links or {}),
                 sort_by=sort_by, links=list(links), last=list(last))


def state_timeline(title: str, description: str, query: Q, *, mappings: Sequence[dict], w: int = 24,
                   h: int = 8) -> Panel:
    return Panel("state-timeline", title, description, COUNT, [query], w=w, h=h, mappings=list(mappings))


# ---------------------------------------------------------------- links
def dashboard_url(uid: str, *params: str, keep_vars: bool = True) -> str:
    """URL of another accelscope dashboard, keeping the time range (and the
    variables) and adding ``params`` (``var-node=...``)."""
    q = ["${__url_time_range}"]
    if keep_vars:
        q.append("${datasource:queryparam}")
        q.append("${cluster:queryparam}")
    q += params
    return f"/d/{uid}?" + "&".join(q)


def dashboard_link(uid: str, title: str | None = None) -> Link:
    return Link(title or f"Open {TITLES[uid].split(' / ')[-1]}", dashboard_url(uid))


def trace_links(config: Config) -> list[Link]:
    """Data links of a ``trace_id`` column."""
    return [Link("Open the placement trace",
                 config.trace_url_template.replace("{trace_id}", "${__data.fields.trace_id}"), new_tab=True)]


def pod_trace_search_links(config: Config) -> list[Link]:
    """Data links of a pod column: search the pod's placement trace by name."""
    if not config.trace_search_url_template:
        return []
    url = (config.trace_search_url_template
           .replace("{namespace}", "${__data.fields.k8s_namespace_name}")
           .replace("{pod}", "${__data.fields.k8s_pod_name}"))
    return [Link("Search the placement trace of this pod", url, new_tab=True)]


def namespace_trace_search_links(config: Config) -> list[Link]:
    """Data links of a namespace column: the namespace's placement traces."""
    if not config.trace_namespace_search_url_template:
        return []
    url = config.trace_namespace_search_url_template.replace("{namespace}", "${__data.fields.k8s_namespace_name}")
    return [Link("Placement traces of this namespace", url, new_tab=True)]


def node_links() -> list[Link]:
    return [Link("Open this node", dashboard_url(NODE_DEVICE_UID, "var-node=${__data.fields.k8s_node_name}"))]


def namespace_links() -> list[Link]:
    return [Link("Open this namespace's slices",
                 dashboard_url(TENANTS_UID, "var-namespace=${__data.fields.k8s_namespace_name}"))]


#: column titles of labels in tables
LABEL_TITLES = {
    "cluster": "Cluster", "k8s_node_name": "Node", "k8s_namespace_name": "Namespace", "k8s_pod_name": "Pod",
    "k8s_container_name": "Container", "k8s_pod_uid": "Pod UID", "hw_id": "Device ID", "hw_name": "Device",
    "hw_parent": "Parent device", "hw_vendor": "Vendor", "hw_model": "Model", "hw_state": "Health",
    "accel_index": "Index", "accel_slice_type": "Slice type", "accel_slice_profile": "Profile",
    "hw_driver_version": "Driver", "scheduler": "Scheduler", "reason": "Reason", "reason_source": "Reported by",
    "outcome": "Outcome", "phase": "Phase", "result": "Result", "shape": "Shape", "trace_id": "Trace ID",
    "error_type": "Error type", "accel_error_source": "Error source", "accel_xid_code": "XID code",
    "state": "Handshake state", "hw_serial_number": "Serial", "hw_firmware_version": "Firmware",
    "accel_pci_bus_id": "PCI bus id", "accel_numa_node": "NUMA node", "accel_compute_capability": "Compute capability",
}


# ---------------------------------------------------------------- description
def describe(panel: Panel) -> str:
    """The panel's description followed by the metrics its queries read."""
    names: list[str] = []
    for q in panel.queries:
        for n in metric_refs(q.expr):
            spec, source = KNOWN_METRICS[n]
            label = f"`{spec.name}` ({source})"
            if label not in names:
                names.append(label)
    return f"{panel.description.strip()}\n\nMetrics: {', '.join(names)}."


# ================================================================ grafanalib below this line
import attr  # noqa: E402
from grafanalib import core as G  # noqa: E402
from grafanalib._gen import DashboardEncoder  # noqa: E402


@attr.s
class _Target(G.Target):
    """A Prometheus query in the current Grafana query model."""

    exemplar = attr.ib(default=False)
    table = attr.ib(default=False)

    def to_json_data(self) -> dict:
        return {
            "datasource": self.datasource,
            "editorMode": "code",
            "expr": self.expr,
            "exemplar": self.exemplar,
            "format": "table" if self.table else "time_series",
            "instant": self.instant,
            "range": not self.instant,
            "legendFormat": self.legendFormat,
            "refId": self.refId,
            "hide": False,
        }


@attr.s
class _ModernPanel(G.Panel):
    """A panel whose type-specific JSON is given whole (bar gauge and gauge:
    grafanalib 0.7 writes their Grafana 6 ``fieldOptions`` form)."""

    panelType = attr.ib(default="")
    body = attr.ib(factory=dict)

    def to_json_data(self) -> dict:
        return self.panel_json(dict(self.body, type=self.panelType))


def _links_json(links: Sequence[Link]) -> list[dict]:
    return [{"title": li.title, "url": li.url, "targetBlank": li.new_tab} for li in links]


def _targets(panel: Panel) -> list[_Target]:
    out = []
    for i, q in enumerate(panel.queries):
        out.append(_Target(expr=q.expr, legendFormat=q.legend, refId=chr(ord("A") + i), datasource=DATASOURCE,
                           instant=panel.instant, exemplar=q.exemplar, table=panel.kind == "table"))
    return out


def _defaults(panel: Panel, **extra: Any) -> dict:
    color = {"mode": "palette-classic"} if panel.kind == "timeseries" else {"mode": "thresholds"}
    d: dict[str, Any] = {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": panel.thresholds},
                         "mappings": panel.mappings, "color": color}
    if panel.min is not None:
        d["min"] = panel.min
    if panel.max is not None:
        d["max"] = panel.max
    if panel.decimals is not None:
        d["decimals"] = panel.decimals
    d.update(extra)
    return d


def _table_body(panel: Panel) -> dict:
    value_names = ["Value"] if len(panel.queries) == 1 else [f"Value #{chr(ord('A') + i)}"
                                                            for i in range(len(panel.queries))]
    first = [label for label in panel.labels if label not in panel.last]
    order = first + value_names + [label for label in panel.labels if label in panel.last]
    overrides: list[dict] = []
    for label in panel.labels:
        props: list[dict] = [{"id": "displayName", "value": LABEL_TITLES.get(label, label)}]
        if label in panel.label_links:
            props.append({"id": "links", "value": _links_json(panel.label_links[label])})
        overrides.append({"matcher": {"id": "byName", "options": label}, "properties": props})
    for name, q in zip(value_names, panel.queries):
        props = [{"id": "displayName", "value": q.title}, {"id": "unit", "value": q.unit or panel.unit}]
        if q.thresholds:
            props.append({"id": "thresholds", "value": {"mode": "absolute", "steps": list(q.thresholds)}})
        if q.mappings:
            props.append({"id": "mappings", "value": list(q.mappings)})
        if q.cell:
            props.append({"id": "custom.cellOptions", "value": {"type": q.cell}})
        if q.decimals is not None:
            props.append({"id": "decimals", "value": q.decimals})
        if q.min is not None:
            props.append({"id": "min", "value": q.min})
        if q.max is not None:
            props.append({"id": "max", "value": q.max})
        overrides.append({"matcher": {"id": "byName", "options": name}, "properties": props})
    transformations: list[dict] = []
    if len(panel.queries) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append({"id": "organize", "options": {
        "excludeByName": {"Time": True, **{h: True for h in panel.hidden}},
        "indexByName": {name: i for i, name in enumerate(order)},
        "renameByName": {},
    }})
    sort = []
    if panel.sort_by:
        sort = [{"displayName": panel.sort_by, "desc": True}]
    return {
        "fieldConfig": {"defaults": _defaults(panel, custom={"align": "auto", "filterable": True,
                                                             "cellOptions": {"type": "auto"}}),
                        "overrides": overrides},
        "options": {"showHeader": True, "cellHeight": "sm", "sortBy": sort,
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
        "transformations": transformations,
    }


def _reduce(calcs: str = "lastNotNull") -> dict:
    return {"calcs": [calcs], "fields": "", "values": False}


def _to_grafanalib(panel: Panel, pid: int, pos: G.GridPos) -> G.Panel:
    common = dict(id=pid, title=panel.title, description=describe(panel), dataSource=DATASOURCE,
                  targets=_targets(panel), gridPos=pos, links=_links_json(panel.links))
    if panel.kind == "timeseries":
        return G.TimeSeries(
            unit=panel.unit, fillOpacity=panel.fill, legendDisplayMode="table" if panel.legend_calcs else "list",
            legendCalcs=list(panel.legend_calcs), tooltipMode="multi", tooltipSort="desc",
            stacking={"mode": "normal", "group": "A"} if panel.stack else {"mode": "none", "group": "A"},
            thresholds=panel.thresholds, mappings=panel.mappings,
            extraJson={"fieldConfig": {"defaults": _defaults(panel)}, "pluginVersion": PLUGIN_VERSION},
            **common)
    if panel.kind == "stat":
        return G.Stat(
            format=panel.unit, graphMode="none", reduceCalc="lastNotNull", colorMode=panel.color_mode,
            thresholds=panel.thresholds, mappings=panel.mappings, decimals=panel.decimals, noValue=None,
            extraJson={"fieldConfig": {"defaults": _defaults(panel)}, "pluginVersion": PLUGIN_VERSION},
            **common)
    if panel.kind == "table":
        return _ModernPanel(panelType="table", body=dict(_table_body(panel), pluginVersion=PLUGIN_VERSION),
                            **common)
    if panel.kind == "gauge":
        return _ModernPanel(panelType="gauge", body={
            "fieldConfig": {"defaults": _defaults(panel), "overrides": []},
            "options": {"reduceOptions": _reduce(), "showThresholdMarkers": True, "showThresholdLabels": False,
                        "orientation": "auto"},
            "pluginVersion": PLUGIN_VERSION}, **common)
    if panel.kind == "bargauge":
        return _ModernPanel(panelType="bargauge", body={
            "fieldConfig": {"defaults": _defaults(panel), "overrides": []},
            "options": {"reduceOptions": _reduce(), "displayMode": "gradient", "orientation": "horizontal",
                        "showUnfilled": True, "valueMode": "color", "namePlacement": "auto",
                        "minVizHeight": 16, "minVizWidth": 8, "sizing": "auto"},
            "pluginVersion": PLUGIN_VERSION}, **common)
    if panel.kind == "state-timeline":
        return G.StateTimeline(
            mappings=panel.mappings, thresholds=panel.thresholds, showValue="never",
            extraJson={"fieldConfig": {"defaults": _defaults(panel)}, "pluginVersion": PLUGIN_VERSION},
            **common)
    raise ValueError(f"unknown panel kind {panel.kind!r}")


def _templating() -> G.Templating:
    ds = G.Template(name="datasource", query="prometheus", type="datasource", label="Data source",
                    hide=0, regex="", default=None)
    traces = G.Template(name="traces", query="tempo", type="datasource", label="Traces", hide=0, regex="",
                        default=None)
    out = [ds]
    for name, query in variable_queries():
        single = name == "cluster"
        out.append(G.Template(
            name=name, query=query, label=LABEL_TITLES.get(VARIABLES[name], name.title()),
            dataSource=DATASOURCE, includeAll=True, allValue=".*", multi=not single, default="$__all",
            refresh=G.REFRESH_ON_TIME_RANGE_CHANGE, sort=G.SORT_ALPHA_ASC, regex="", hide=0))
    out.append(traces)
    return G.Templating(list=out)


def dashboard(uid: str, description: str, rows: Sequence[Row], *, time_from: str = "now-6h") -> G.Dashboard:
    """Lay the rows out on the 24-column grid and build the dashboard."""
    if uid not in TITLES:
        raise ValueError(f"unknown dashboard uid {uid!r}")
    panels: list[G.Panel] = []
    pid = 0
    y = 0
    for row in rows:
        pid += 1
        panels.append(G.RowPanel(id=pid, title=row.title, gridPos=G.GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        x, line_h = 0, 0
        for p in row.panels:
            if x + p.w > 24:
                x, y, line_h = 0, y + line_h, 0
            pid += 1
            panels.append(_to_grafanalib(p, pid, G.GridPos(h=p.h, w=p.w, x=x, y=y)))
            x += p.w
            line_h = max(line_h, p.h)
        y += line_h
    links = [G.DashboardLink(type="dashboards", tags=[TAG], title="Accelerator dashboards", asDropdown=False,
                             includeVars=True, keepTime=True, icon="dashboard")]
    return G.Dashboard(
        title=TITLES[uid], uid=uid, description=description, tags=[TAG, "gpu", "kubernetes"], panels=panels,
        templating=_templating(), links=links, time=G.Time(time_from, "now"), timezone="browser",
        refresh="1m", graphTooltip=G.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR, schemaVersion=SCHEMA_VERSION,
        editable=True,
        annotations=G.Annotations(list=[{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
            "type": "dashboard"}]),
    )


_LEGACY_DASHBOARD_KEYS = ("rows", "style", "hideControls", "sharedCrosshair", "gnetId", "id", "__inputs")
_LEGACY_PANEL_KEYS = ("span", "minSpan", "height", "error", "hideTimeOverride", "editable")
_LEGACY_VARIABLE_KEYS = ("useTags", "tagsQuery", "tagValuesQuery", "auto", "auto_min", "auto_count")
_ROW_ONLY_KEYS = ("collapsed", "gridPos", "id", "panels", "title", "type")


def _clean(d: dict) -> dict:
    """Drop grafanalib's legacy keys and ``None`` panel fields; give the
    variables Grafana's current form."""
    for k in _LEGACY_DASHBOARD_KEYS:
        d.pop(k, None)
    for p in d.get("panels", []):
        if p.get("type") == "row":
            for k in [k for k in p if k not in _ROW_ONLY_KEYS]:
                del p[k]
            continue
        for k in [k for k, v in p.items() if v is None or k in _LEGACY_PANEL_KEYS]:
            del p[k]
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        for k in [k for k, v in defaults.items() if v is None]:
            del defaults[k]
    for v in d["templating"]["list"]:
        for k in _LEGACY_VARIABLE_KEYS:
            v.pop(k, None)
        for k in [k for k, val in v.items() if val is None]:
            del v[k]
        if v["type"] == "query":
            v["definition"] = v["query"]
            v["current"] = ({"selected": True, "text": ["All"], "value": ["$__all"]} if v["multi"]
                            else {"selected": True, "text": "All", "value": "$__all"})
        else:
            v["current"] = {}
    return d


def to_dict(d: G.Dashboard) -> dict:
    """The dashboard as Grafana JSON (plain dicts)."""
    return _clean(json.loads(json.dumps(d.to_json_data(), cls=DashboardEncoder)))


def to_json(d: G.Dashboard) -> str:
    """Stable JSON text: sorted keys, two-space indent, newline-terminated."""
    return json.dumps(to_dict(d), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


__all__ = [
    "bargauge", "by", "dashboard", "dashboard_link", "dashboard_url", "eq", "gauge", "health_code", "metric_refs",
    "namespace_links", "namespace_trace_search_links", "ne", "node_links", "pod_trace_search_links", "rx", "sel",
    "stat", "state_timeline", "steps", "table", "timeseries", "to_dict", "to_json", "trace_links", "value_mapping",
    "variable_queries", "with_trace_id", "BYTES", "BYTES_PER_SECOND", "CELSIUS", "CONFIG", "COUNT", "Config",
    "DATASOURCE", "FLEET_UID", "FRAGMENTATION_UID", "HEALTHY_MAPPING", "HEALTH_MAPPING", "HERTZ", "KNOWN_METRICS",
    "LABEL_TITLES", "Link", "NODE_DEVICE_UID", "PANEL_TYPES", "PER_SECOND", "PLACEMENTS_UID", "Panel", "Q",
    "RATIO", "Row", "SECONDS", "TAG", "TENANTS_UID", "TITLES", "UID_REGEX", "UNITS", "VARIABLES", "WATTS",
]
