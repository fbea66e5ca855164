"""SRE overview, "Traffic": requests by route and status, teacher share, tokens, the live adapter."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import GW, REQUESTS, RI, ROUTED, rate_sum, series, single_stat

TITLE = "Traffic"
SEL = f'{GW}, route=~"$route"'


def panels() -> list[Any]:
    share = f'sum(rate({REQUESTS}{{{GW}, route="teacher"}}[{RI}])) / sum(rate({REQUESTS}{{{GW}, {ROUTED}}}[{RI}]))'
    return [
        series("Requests per second by route", [(rate_sum("route", REQUESTS, SEL), "{{route}}")], "reqps"),
        series("Requests per second by status", [(rate_sum("status", REQUESTS, GW), "{{status}}")], "reqps"),
        series(
            "Teacher share",
            [(share, "teacher share")],
            "percentunit",
            "Share of client requests the teacher answered: the cost driver.",
            bounds=(0, 1),
        ),
        series(
            "Requests in flight",
            [(f"sum by (route) (distillserve_requests_in_flight{{{SEL}}})", "{{route}}")],
        ),
        series(
            "Tokens per second",
            [(rate_sum("route, direction", "distillserve_tokens_total", SEL), "{{route}} {{direction}}")],
        ),
        single_stat(
            "Live adapter",
            [(f"distillserve_live_adapter_info{{{GW}}} == 1", "{{version}}")],
            desc="The LoRA adapter version the student route serves (base = no adapter).",
        ),
    ]
