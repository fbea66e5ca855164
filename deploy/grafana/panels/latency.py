"""SRE overview, "Latency": request latency and time to first token by route, the latency SLO."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import quantiles, series
from deploy.grafana.panels.traffic import SEL

TITLE = "Latency"
DURATION = "distillserve_request_duration_seconds"
OK = f'{SEL}, status="200"'


def panels() -> list[Any]:
    return [
        series("Request latency p50 / p95 / p99 by route", quantiles(DURATION, "route", OK), "s", w=12),
        series(
            "Time to first token p50 / p95 / p99 by route",
            quantiles("distillserve_time_to_first_token_seconds", "route", SEL),
            "s",
            "Streamed requests only.",
            w=12,
        ),
        series("Request latency p95 by backend", quantiles(DURATION, "backend", OK, qs=(0.95,)), "s"),
        series(
            "Latency SLO: share of requests missing the objective (5m)",
            [('distillserve:request_latency_slo_miss:ratio_rate5m{route=~"$route"}', "{{route}}")],
            "percentunit",
            "Objective: 99% of successful requests within 1 s (student) / 30 s (teacher).",
        ),
        series(
            "Latency error-budget burn rate (1h)",
            [('distillserve:request_latency_slo_miss:ratio_rate1h{route=~"$route"} / 0.01', "{{route}}")],
            "x",
            "1 = the budget lasts exactly the SLO period; the page fires above 14.4.",
        ),
    ]
