"""Generate the Grafana dashboards in ``dashboards/`` (run after editing; a test checks the JSON is in sync).

    .venv/bin/python deploy/grafana/generate_dashboards.py

Two boards, built with Grafana's official ``grafana-foundation-sdk`` (typed builders, Grafana's
own JSON encoder): an SRE overview (traffic, latency and TTFT by route, errors, fallbacks,
routing, teacher log / Kafka, vLLM, cost and savings, health) and a learning-loop board for ML
engineers (adapter versions, eval results, agreement and drift, teacher-share trend, distiller).
Each row is one module in ``panels/``. Every query's metric names come from
``distillserve/monitoring/metrics.py``, the recording rules in ``deploy/prometheus/rules`` or
vLLM's own ``vllm:*`` metrics; tests/deploy/test_dashboards.py runs every query against a real
Prometheus scraping a real gateway.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a file: the repo's packages
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from deploy.grafana.panels import (
    adapters,
    agreement,
    cost,
    distiller,
    errors,
    health,
    latency,
    routing,
    teacher_log,
    teacher_share,
    traffic,
    vllm,
)
from deploy.grafana.variables import variables

OUT = Path(__file__).resolve().parent / "dashboards"
SRE_ROWS = (traffic, latency, errors, routing, teacher_log, vllm, cost, health)
LEARNING_ROWS = (adapters, agreement, teacher_share, distiller)


def board(uid: str, title: str, desc: str, rows: tuple[ModuleType, ...], *, route: bool) -> dict[str, Any]:
    """One dashboard: a row per panel-group module, its panels laid out by the SDK's grid."""
    dash = (
        Dashboard(title)
        .uid(uid)
        .description(desc)
        .tags(["distillserve"])
        .timezone("browser")
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .version(1)
        .refresh("30s")
        .time("now-6h", "now")
        .variables(variables(route=route))
    )
    for group in rows:
        dash = dash.with_row(Row(group.TITLE))
        for panel in group.panels():
            dash = dash.with_panel(panel)
    data = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    for i, panel in enumerate(data["panels"], start=1):
        panel["id"] = i  # the SDK leaves ids unset; Grafana wants them unique
    return data


def sre_overview() -> dict[str, Any]:
    return board(
        "distillserve-sre",
        "distillserve / SRE overview",
        "Traffic, latency and TTFT by route, errors, teacher share, fallbacks, teacher log and Kafka lag, "
        "spend and savings.",
        SRE_ROWS,
        route=True,
    )


def learning_loop() -> dict[str, Any]:
    return board(
        "distillserve-learning",
        "distillserve / learning loop",
        "Adapter versions, eval results, student/teacher agreement and drift, teacher share, distiller.",
        LEARNING_ROWS,
        route=False,
    )


DASHBOARDS = {"sre-overview.json": sre_overview, "learning-loop.json": learning_loop}


def render() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
