"""The configured graders, with the judge's calls, tokens and cache lookups counted in Prometheus.

Router, distiller and shadow sampling all build their graders here, so every judge call is
metered the same way (``purpose="judge"``, where cost accounting hangs)."""

from __future__ import annotations

from typing import Any

from distillserve.config import GradingConfig, Settings
from distillserve.grading.factory import build_selection, teacher_endpoint
from distillserve.grading.selection import GraderSelection
from distillserve.monitoring import metrics
from distillserve.monitoring.cost import CostLedger

JUDGE_PURPOSE = "judge"


class PrometheusJudgeMeter:
    def __init__(self, cost: CostLedger | None = None) -> None:
        self.cost = cost

    def call(self, outcome: str) -> None:
        metrics.LLM_CALLS.labels(purpose=JUDGE_PURPOSE, outcome=outcome).inc()

    def tokens(self, kind: str, n: int) -> None:
        metrics.LLM_TOKENS.labels(purpose=JUDGE_PURPOSE, kind=kind).inc(n)

    def cache(self, hit: bool) -> None:
        metrics.JUDGE_CACHE.labels(result="hit" if hit else "miss").inc()

    def usage(self, model: str, usage: dict[str, Any]) -> None:
        if self.cost is not None:
            self.cost.spend_on_model(model, "judge", usage)


def configured_graders(settings: Settings) -> GraderSelection:
    """The ``grading`` section's graders; a judge without its own endpoint asks the teacher."""
    return graders_for(settings, settings.grading)


def graders_for(settings: Settings, cfg: GradingConfig) -> GraderSelection:
    return build_selection(
        cfg,
        teacher=teacher_endpoint(settings.teacher),
        meter=PrometheusJudgeMeter(CostLedger.from_settings(settings)),
    )
