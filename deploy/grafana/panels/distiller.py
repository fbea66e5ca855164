"""Learning loop, "Distiller": runs, losses, durations, records consumed, lag."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import DIST, quantiles, rate_sum, series, single_stat
from deploy.grafana.panels.teacher_log import consumer_lag

TITLE = "Distiller"


def panels() -> list[Any]:
    runs = f"sum by (outcome) (increase(distillserve_distiller_runs_total{{{DIST}}}[1h]))"
    since = f"time() - max(distillserve_distiller_last_run_timestamp_seconds{{{DIST}}} > 0)"
    return [
        series("Distiller runs by outcome (per hour)", [(runs, "{{outcome}}")]),
        series(
            "Training loss of the last run",
            [(f"max by (kind) (distillserve_distiller_loss{{{DIST}}})", "{{kind}}")],
        ),
        series(
            "Run duration p50 / p95",
            quantiles("distillserve_distiller_run_duration_seconds", "job", DIST, qs=(0.5, 0.95)),
            "s",
        ),
        series(
            "Records consumed per second by outcome",
            [(rate_sum("outcome", "distillserve_distiller_records_total", DIST), "{{outcome}}")],
        ),
        single_stat("Time since the last run", [(since, "since last run")], "s"),
        consumer_lag(),
    ]
