"""SRE overview, "Routing": decisions by reason, difficulty scores, threshold, router health."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import GW, quantiles, rate_sum, series
from deploy.grafana.panels.traffic import SEL

TITLE = "Routing"


def panels() -> list[Any]:
    return [
        series(
            "Route decisions per second by reason",
            [(rate_sum("route, reason", "distillserve_route_decisions_total", SEL), "{{route}} {{reason}}")],
        ),
        series(
            "Difficulty score p50 / p90",
            quantiles("distillserve_router_difficulty_score", "scorer", GW, qs=(0.5, 0.9)),
            bounds=(0, 1),
        ),
        series("Routing threshold", [(f"max(distillserve_router_threshold{{{GW}}})", "threshold")]),
        series(
            "Router decision time p99",
            quantiles("distillserve_router_decision_seconds", "scorer", GW, qs=(0.99,)),
            "s",
        ),
        series(
            "Scorer fallbacks per second",
            [
                (
                    rate_sum("scorer, reason", "distillserve_router_scorer_fallbacks_total", GW),
                    "{{scorer}} {{reason}}",
                )
            ],
        ),
    ]
