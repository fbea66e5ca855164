"""The router: forced routes and per-key overrides first, then scorer + policy."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from distillserve.config import RouterConfig
from distillserve.monitoring import metrics
from distillserve.router.heuristic import HeuristicScorer
from distillserve.router.policy import Route, RoutingPolicy, TargetSharePolicy, ThresholdPolicy
from distillserve.router.scoring import DifficultyScorer, Score, build_scorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    score: float
    scorer: str
    reason: str  # "score", "forced", "key_override", "pinned"
    features: dict[str, float] = field(default_factory=dict)


def build_policy(cfg: RouterConfig) -> RoutingPolicy:
    if cfg.policy == "target_share":
        return TargetSharePolicy(cfg.target_teacher_share, cfg.window, cfg.threshold)
    return ThresholdPolicy(cfg.threshold)


class Router:
    def __init__(
        self, cfg: RouterConfig, scorer: DifficultyScorer | None = None, policy: RoutingPolicy | None = None
    ) -> None:
        self.cfg = cfg
        self.scorer = scorer or build_scorer(cfg.scorer)
        self.policy = policy or build_policy(cfg)
        self._fallback = HeuristicScorer()

    async def _score(self, prompt: str) -> Score:
        if isinstance(self.scorer, HeuristicScorer):
            return self.scorer.score_sync(prompt)
        try:
            return await asyncio.wait_for(self.scorer.score(prompt), self.cfg.scorer_timeout_s)
        except Exception as exc:  # any scorer fault falls back; routing never fails a request
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            metrics.ROUTER_SCORER_FALLBACKS.labels(scorer=self.scorer.name, reason=reason).inc()
            log.warning("scorer %s failed (%s); using heuristic", self.scorer.name, reason)
            return self._fallback.score_sync(prompt)

    async def decide(
        self, prompt: str, *, forced: str | None = None, api_key: str | None = None
    ) -> RouteDecision:
        if forced in ("student", "teacher"):
            return RouteDecision(forced, float("nan"), "none", "forced")  # type: ignore[arg-type]
        override = self.cfg.key_overrides.get(api_key) if api_key else None
        if override in ("student", "teacher"):
            return RouteDecision(override, float("nan"), "none", "key_override")  # type: ignore[arg-type]
        s = await self._score(prompt)
        self.policy.observe(s.value)
        threshold = float(override) if isinstance(override, float | int) else None
        route = self.policy.decide(s.value, threshold)
        metrics.ROUTER_DIFFICULTY.labels(scorer=s.scorer).observe(s.value)
        return RouteDecision(route, s.value, s.scorer, "score", s.features)

    async def aclose(self) -> None:
        await self.scorer.aclose()
