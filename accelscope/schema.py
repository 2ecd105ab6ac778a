"""Shared types for metric schemas.

Each producer (``exporter``, ``scheduler_events``) owns one schema module
that declares its metric families with :class:`MetricSpec`.  Those modules are
the single source of truth for names, types, units, labels, help texts and
stability; ``docs/metrics.md`` is generated from them (``make generate``),
and dashboards and alert rules import names from them.

Naming follows the OpenTelemetry semantic conventions translated the way
Prometheus' OTLP ingestion does by default (``UnderscoreEscapingWithSuffixes``):
dots become underscores, the UCUM unit becomes a word suffix (``By`` ->
``_bytes``, ``W`` -> ``_watts``, ``Cel`` -> ``_celsius``, ``1`` -> ``_ratio``
on gauges only), monotonic sums get ``_total``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Prometheus metric types used here.
GAUGE = "gauge"
COUNTER = "counter"
HISTOGRAM = "histogram"
INFO = "info"  # a gauge with value 1 whose name ends in _info

#: Stability levels (as OTel uses them).
STABLE = "stable"
DEVELOPMENT = "development"
EXPERIMENTAL = "experimental"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family.

    ``name``: the exposed Prometheus name, with unit and ``_total`` suffixes
    (``hw_energy_joules_total``).
    ``type``: one of :data:`GAUGE`, :data:`COUNTER`, :data:`HISTOGRAM`, :data:`INFO`.
    ``unit``: UCUM unit of the value (``By``, ``s``, ``W``, ``J``, ``Cel``,
    ``Hz``, ``1``); informative.
    ``labels``: label names, in exposition order.
    ``help``: one sentence, with the unit.
    ``otel_name``: the OTel metric name when pushed over OTLP (``hw.energy``),
    or ``None`` when not pushed.
    ``otel_instrument``: ``gauge``, ``counter`` or ``updowncounter``.
    ``stability``: :data:`STABLE`, :data:`DEVELOPMENT` or :data:`EXPERIMENTAL`.
    ``source``: where the value comes from, for the docs.
    """

    name: str
    type: str
    unit: str
    labels: tuple[str, ...]
    help: str
    otel_name: str | None = None
    otel_instrument: str | None = None
    stability: str = DEVELOPMENT
    source: str = ""

    @property
    def family_name(self) -> str:
        """The name to give prometheus_client's metric family constructors
        (they append ``_total`` to counters and ``_info`` to info metrics)."""
        if self.type == COUNTER and self.name.endswith("_total"):
            return self.name[: -len("_total")]
        if self.type == INFO and self.name.endswith("_info"):
            return self.name[: -len("_info")]
        return self.name


def render_markdown(title: str, intro: str, groups: list[tuple[str, list[MetricSpec]]]) -> str:
    """Render a metric reference page.

    ``groups``: (section title, specs).  Returns Markdown text ending in a
    newline.  Used by ``make generate`` for ``docs/metrics.md``.
    """
    out = [f"# {title}", "", intro.strip(), ""]
    for section, specs in groups:
        out += [f"## {section}", "", "| Metric | Type | Unit | Labels | Stability | Description |",
                "|---|---|---|---|---|---|"]
        for s in specs:
            labels = ", ".join(f"`{label}`" for label in s.labels) or "none"
            desc = s.help
            if s.otel_name:
                desc += f" OTel: `{s.otel_name}` ({s.otel_instrument})."
            if s.source:
                desc += f" Source: {s.source}"
            out.append(f"| `{s.name}` | {s.type} | `{s.unit}` | {labels} | {s.stability} | {desc} |")
        out.append("")
    return "\n".join(out)
