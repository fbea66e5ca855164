"""SRE overview, "Cost and savings". Dollars come from ``distillserve_spend_usd_total`` (by route,
tenant and purpose) and ``distillserve_savings_usd_total`` (the teacher's price of what the student
finally served); the budget burn rate from the recording rules in ``deploy/prometheus/rules/cost.yml``.
"""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import GW, RI, series, single_stat

TITLE = "Cost and savings"
SPEND = "distillserve_spend_usd_total"
SAVINGS = "distillserve_savings_usd_total"
PER_HOUR = 3600
USD = "currencyUSD"


def _hourly(expr: str) -> str:
    return f"{expr} * {PER_HOUR}"


def spend_by(label: str) -> Any:
    return series(
        f"Spend per hour by {label}",
        [(_hourly(f"sum by ({label}) (rate({SPEND}{{{GW}}}[{RI}]))"), f"{{{{{label}}}}}")],
        USD,
        "US dollars per hour, priced from the pricing table (serve, shadow, judge and relabel calls).",
    )


def savings() -> Any:
    student = f'sum(rate({SPEND}{{{GW}, route="student", purpose="serve"}}[{RI}]))'
    return series(
        "Savings per hour",
        [
            (_hourly(f"sum(rate({SAVINGS}{{{GW}}}[{RI}]))"), "teacher cost avoided"),
            (_hourly(f"(sum(rate({SAVINGS}{{{GW}}}[{RI}])) - ({student} or vector(0)))"), "net savings"),
        ],
        USD,
        "Teacher cost avoided: what the student-served requests would have cost on the teacher "
        "(their tokens at its price); net of the student's own per-token price, including the "
        "student's attempts at requests a cascade escalated to the teacher.",
    )


def spent_against_teacher_only() -> Any:
    spent = f"sum(increase({SPEND}{{{GW}}}[$__range]))"
    teacher_serve = f'sum(increase({SPEND}{{{GW}, route="teacher", purpose="serve"}}[$__range]))'
    teacher_only = f"({teacher_serve} or vector(0)) + sum(increase({SAVINGS}{{{GW}}}[$__range]))"
    return single_stat(
        "Spent vs teacher-only (time range)",
        [(spent, "spent"), (teacher_only, "teacher-only")],
        USD,
        "All spend over the dashboard's time range, against the same client traffic all on the teacher.",
    )


def panels() -> list[Any]:
    return [
        spend_by("purpose"),
        spend_by("tenant"),
        savings(),
        spent_against_teacher_only(),
        series(
            "Budget burn rate by key (1h)",
            [("distillserve:key_budget_burn:ratio_rate1h", "{{tenant}} {{key_alias}} ({{unit}})")],
            "x",
            "1 = the key's budget lasts exactly its period; the alert fires above 14.4 (over 1h and 5m).",
        ),
        series(
            "Unpriced tokens per second",
            [
                (
                    f"sum by (route, purpose) (rate(distillserve_unpriced_tokens_total{{{GW}}}[{RI}])) or vector(0)",
                    "{{route}} {{purpose}}",
                )
            ],
            "short",
            "Tokens of a model the pricing table does not list: counted, not priced. Should be zero.",
        ),
    ]
