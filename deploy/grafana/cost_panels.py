"""The "Cost and savings" panel group of the SRE overview, built with Grafana's official
``grafana-foundation-sdk`` (typed builders, Grafana's own JSON encoder) rather than hand-written
JSON. ``generate_dashboards.py`` places these panels on its grid; the other groups there are
still hand-written and move to the SDK group by group.

Dollars come from ``distillserve_spend_usd_total`` (by route, tenant and purpose) and
``distillserve_savings_usd_total`` (the teacher's price of what the student served); the budget
burn rate from the recording rules in ``deploy/prometheus/rules/cost.yml``.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
GW = 'job=~"$job"'
RI = "$__rate_interval"
SPEND = "distillserve_spend_usd_total"
SAVINGS = "distillserve_savings_usd_total"
PER_HOUR = 3600


def _query(expr: str, legend: str, ref: str, *, instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    return q.instant() if instant else q


def _queries(*pairs: tuple[str, str], instant: bool = False) -> list[prometheus.Dataquery]:
    return [_query(e, legend, chr(ord("A") + i), instant=instant) for i, (e, legend) in enumerate(pairs)]


def _series(title: str, desc: str, unit: str, *pairs: tuple[str, str]) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(desc).datasource(DS).unit(unit)
    return panel.line_width(1).fill_opacity(10).targets(_queries(*pairs))  # type: ignore[arg-type]


def _hourly(expr: str) -> str:
    return f"{expr} * {PER_HOUR}"


def spend_by(label: str) -> timeseries.Panel:
    return _series(
        f"Spend per hour by {label}",
        "US dollars per hour, priced from the pricing table (serve, shadow, judge and relabel calls).",
        "currencyUSD",
        (_hourly(f"sum by ({label}) (rate({SPEND}{{{GW}}}[{RI}]))"), f"{{{{{label}}}}}"),
    )


def savings() -> timeseries.Panel:
    student = f'sum(rate({SPEND}{{{GW}, route="student", purpose="serve"}}[{RI}]))'
    return _series(
        "Savings per hour",
        "Teacher cost avoided: what the student-served requests would have cost on the teacher "
        "(their tokens at its price); net of the student's own per-token price.",
        "currencyUSD",
        (_hourly(f"sum(rate({SAVINGS}{{{GW}}}[{RI}]))"), "teacher cost avoided"),
        (_hourly(f"(sum(rate({SAVINGS}{{{GW}}}[{RI}])) - ({student} or vector(0)))"), "net savings"),
    )


def spent_against_teacher_only() -> stat.Panel:
    spent = f"sum(increase({SPEND}{{{GW}}}[$__range]))"
    teacher_serve = f'sum(increase({SPEND}{{{GW}, route="teacher", purpose="serve"}}[$__range]))'
    teacher_only = f"({teacher_serve} or vector(0)) + sum(increase({SAVINGS}{{{GW}}}[$__range]))"
    panel = stat.Panel().title("Spent vs teacher-only (time range)").datasource(DS).unit("currencyUSD")
    panel = panel.description(
        "All spend over the dashboard's time range, against the same client traffic all on the teacher."
    )
    return panel.targets(_queries((spent, "spent"), (teacher_only, "teacher-only"), instant=True))  # type: ignore[arg-type]


def budget_burn() -> timeseries.Panel:
    return _series(
        "Budget burn rate by key (1h)",
        "1 = the key's budget lasts exactly its period; the alert fires above 14.4 (over 1h and 5m).",
        "x",
        ("distillserve:key_budget_burn:ratio_rate1h", "{{tenant}} {{key_alias}} ({{unit}})"),
    )


def unpriced() -> timeseries.Panel:
    return _series(
        "Unpriced tokens per second",
        "Tokens of a model the pricing table does not list: counted, not priced. Should be zero.",
        "short",
        (
            f"sum by (route, purpose) (rate(distillserve_unpriced_tokens_total{{{GW}}}[{RI}])) or vector(0)",
            "{{route}} {{purpose}}",
        ),
    )


def cost_panels() -> list[tuple[dict[str, Any], int]]:
    """The group's panels as dashboard JSON, each with its width on the 24-column grid."""
    panels = [
        (spend_by("purpose"), 8),
        (spend_by("tenant"), 8),
        (savings(), 8),
        (spent_against_teacher_only(), 8),
        (budget_burn(), 8),
        (unpriced(), 8),
    ]
    return [(_without_nulls(json.loads(json.dumps(p.build(), cls=JSONEncoder))), w) for p, w in panels]


def _without_nulls(panel: dict[str, Any]) -> dict[str, Any]:
    # The encoder writes unset options as null; Grafana reads an absent key as its default.
    return {k: v for k, v in panel.items() if v is not None}
