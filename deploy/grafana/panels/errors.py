"""SRE overview, "Errors and fallbacks": 5xx ratio, client errors, backend errors, fallbacks."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import GW, REQUESTS, RI, rate_sum, series
from deploy.grafana.panels.traffic import SEL

TITLE = "Errors and fallbacks"


def panels() -> list[Any]:
    ratio = f'sum(rate({REQUESTS}{{{SEL}, status=~"5.."}}[{RI}])) / sum(rate({REQUESTS}{{{SEL}}}[{RI}]))'
    return [
        series("5xx error ratio", [(ratio, "5xx ratio")], "percentunit"),
        series(
            "Client errors (4xx) per second",
            [(rate_sum("status", REQUESTS, f'{GW}, status=~"4.."'), "{{status}}")],
            "reqps",
            "Includes requests rejected before routing (route none): bad body, key or model.",
        ),
        series(
            "Backend errors per second",
            [
                (
                    rate_sum("route, backend, kind", "distillserve_backend_errors_total", SEL),
                    "{{route}} {{backend}} {{kind}}",
                )
            ],
        ),
        series(
            "Fallbacks per second",
            [
                (
                    rate_sum("from_route, to_route", "distillserve_fallbacks_total", GW),
                    "{{from_route}} → {{to_route}}",
                )
            ],
            desc="Requests re-routed because their backend failed.",
        ),
    ]
