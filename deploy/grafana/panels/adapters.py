"""Learning loop, "Adapters": the live version over time, hot-swaps, eval results per version."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import bargauge, statetimeline
from grafana_foundation_sdk.models.common import BarGaugeDisplayMode, VisibilityMode, VizOrientation

from deploy.grafana.panels.common import DIST, DS, GW, last_not_null, quantiles, queries, series

TITLE = "Adapters"


def live_version() -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title("Live adapter version over time")
        .datasource(DS)
        .show_value(VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .targets(queries((f"max by (version) (distillserve_live_adapter_info{{{GW}}})", "{{version}}")))  # type: ignore[arg-type]
        .span(12)
        .height(8)
    )


def eval_results() -> bargauge.Panel:
    score = f"max by (version, dataset, metric) (distillserve_adapter_eval_score{{{DIST}}})"
    return (
        bargauge.Panel()
        .title("Eval results per adapter version")
        .datasource(DS)
        .unit("percentunit")
        .orientation(VizOrientation.HORIZONTAL)
        .display_mode(BarGaugeDisplayMode.GRADIENT)
        .reduce_options(last_not_null())
        .targets(queries((score, "{{version}} {{dataset}} {{metric}}"), instant=True))  # type: ignore[arg-type]
        .span(24)
        .height(8)
    )


def panels() -> list[Any]:
    swaps = f"sum by (outcome) (increase(distillserve_adapter_swaps_total{{{GW}}}[1h]))"
    return [
        live_version(),
        series("Hot-swaps by outcome (per hour)", [(swaps, "{{outcome}}")], w=6),
        series(
            "Hot-swap duration p95",
            quantiles("distillserve_adapter_swap_duration_seconds", "job", GW, qs=(0.95,)),
            "s",
            w=6,
        ),
        eval_results(),
    ]
