"""Learning loop, "Teacher share trend": the share the teacher answers, and cascade escalations."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import GW, REQUESTS, RI, ROUTED, series

TITLE = "Teacher share trend"


def panels() -> list[Any]:
    hourly = (
        f'sum(rate({REQUESTS}{{{GW}, route="teacher"}}[1h])) / sum(rate({REQUESTS}{{{GW}, {ROUTED}}}[1h]))'
    )
    return [
        series(
            "Teacher share (5m and 1h)",
            [("distillserve:teacher_share:ratio_rate5m", "5m"), (hourly, "1h")],
            "percentunit",
            "Falls as the student learns what the teacher used to answer.",
            w=16,
            bounds=(0, 1),
        ),
        series(
            "Cascade escalations per second",
            [(f"sum(rate(distillserve_cascade_escalations_total{{{GW}}}[{RI}]))", "escalations")],
            w=8,
        ),
    ]
