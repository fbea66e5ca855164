"""SRE overview, "Health": scrape targets up, alerts firing."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import single_stat

TITLE = "Health"


def panels() -> list[Any]:
    return [
        single_stat(
            "Targets up", [('up{job=~"$job|$distiller_job|$vllm_job"}', "{{job}} {{instance}}")], w=12, h=5
        ),
        single_stat(
            "Alerts firing", [('count(ALERTS{alertstate="firing"}) or vector(0)', "firing")], w=12, h=5
        ),
    ]
