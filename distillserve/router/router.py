"""The router: forced routes and per-key overrides first, then scorer + policy.

Routing never fails a request: a scorer that errors, times out or is not ready yet is
replaced by the heuristic for that request (counted in ``ROUTER_SCORER_FALLBACKS``).
With ``scorer: cascade`` the decision is deferred: the student answers first and the
gateway escalates by the student's confidence (``router.confidence``).

A request the student cannot serve (tools, a response format, images: see ``supports`` in the
backend config) goes to the teacher with the reason ``capability``, unless the client forced the
student (the gateway then refuses it with a 400 rather than half-answer it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from distillserve.config import RouterConfig
from distillserve.grading import GraderSelection
from distillserve.monitoring import metrics
from distillserve.monitoring.cost import CostLedger
from distillserve.protocol.backend import Backend
from distillserve.router.confidence import ConfidenceCascade
from distillserve.router.fleet_share import FleetShare, gateway_id
from distillserve.router.heuristic import HeuristicScorer
from distillserve.router.labelled_example import LabelledExample
from distillserve.router.policy import Route, RoutingPolicy, TargetSharePolicy, ThresholdPolicy
from distillserve.router.retraining import GradedAnswers, RecentTeacherAnswers, relabel
from distillserve.router.scoring import DifficultyScorer, LearnedScorer, Score, ScorerNotReady, build_scorer

log = logging.getLogger(__name__)

CASCADE = "cascade"
CAPABILITY = "capability"


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    score: float
    scorer: str
    reason: str  # "score", "forced", "key_override", "pinned", "cascade", "capability"
    features: dict[str, float] = field(default_factory=dict)


def build_policy(cfg: RouterConfig) -> RoutingPolicy:
    if cfg.policy == "target_share":
        return TargetSharePolicy(cfg.target_teacher_share, cfg.window, cfg.threshold)
    return ThresholdPolicy(cfg.threshold)


def build_fleet_share(cfg: RouterConfig, policy: RoutingPolicy) -> FleetShare | None:
    """The exchange that puts a target-share policy on the fleet's share (``router.fleet_share``)."""
    if cfg.fleet_share.redis_url is None or not isinstance(policy, TargetSharePolicy):
        return None
    return FleetShare(policy, cfg.fleet_share, gateway_id())


class Router:
    def __init__(
        self,
        cfg: RouterConfig,
        scorer: DifficultyScorer | None = None,
        policy: RoutingPolicy | None = None,
        graders: GraderSelection | None = None,
        cost: CostLedger | None = None,
    ) -> None:
        self.cfg = cfg
        self.cost = cost  # prices the student calls of a relabel
        # Grade the student's re-asked answers (the learned scorer's labels); None = exact text.
        self.graders = graders
        self._fallback = HeuristicScorer()
        self.cascade = ConfidenceCascade(cfg) if cfg.scorer == CASCADE and scorer is None else None
        if scorer is not None:
            self.scorer = scorer
        elif self.cascade is not None:
            self.scorer = self._fallback  # prompts are not scored before a cascade
        else:
            self.scorer = build_scorer(cfg.scorer, cfg=cfg)
        self.policy = policy or build_policy(cfg)
        self.fleet_share = build_fleet_share(cfg, self.policy)
        self.recent = RecentTeacherAnswers(cfg.retrain.buffer)
        self.graded = GradedAnswers()

    async def start(self) -> None:
        await self.scorer.start()
        if self.fleet_share is not None:
            self.fleet_share.start()

    async def _score(self, prompt: str) -> Score:
        if isinstance(self.scorer, HeuristicScorer):
            return self._heuristic(prompt)
        started = time.perf_counter()
        try:
            s = await asyncio.wait_for(self.scorer.score(prompt), self.cfg.scorer_timeout_s)
            if not math.isfinite(s.value) or not 0.0 <= s.value <= 1.0:
                raise ValueError(f"score {s.value!r} outside [0, 1]")
        except Exception as exc:  # any scorer fault falls back; routing never fails a request
            reason = (
                "timeout"
                if isinstance(exc, TimeoutError)
                else "not_ready"
                if isinstance(exc, ScorerNotReady)
                else "error"
            )
            metrics.ROUTER_SCORER_FALLBACKS.labels(scorer=self.scorer.name, reason=reason).inc()
            if reason == "not_ready" and self.cfg.cold_start == "teacher":
                return Score(1.0, "cold_start")
            if reason != "not_ready":
                log.warning("scorer %s failed (%s: %s); using heuristic", self.scorer.name, reason, exc)
            return self._heuristic(prompt)
        metrics.ROUTER_SCORER_DURATION.labels(scorer=s.scorer).observe(time.perf_counter() - started)
        return s

    def _heuristic(self, prompt: str) -> Score:
        started = time.perf_counter()
        try:
            s = self._fallback.score_sync(prompt)
        except Exception:  # cannot happen for str input; the route must still be decided
            log.exception("heuristic scorer failed")
            return Score(0.5, "none")
        metrics.ROUTER_SCORER_DURATION.labels(scorer=s.scorer).observe(time.perf_counter() - started)
        return s

    async def decide(
        self,
        prompt: str,
        *,
        forced: str | None = None,
        api_key: str | None = None,
        student_lacks: Collection[str] = (),
    ) -> RouteDecision:
        """``student_lacks``: features this request needs that the student does not serve."""
        forced = forced.strip().lower() if isinstance(forced, str) else None
        if forced in ("student", "teacher"):
            return RouteDecision(forced, float("nan"), "none", "forced")  # type: ignore[arg-type]
        if student_lacks:
            return RouteDecision("teacher", float("nan"), "none", CAPABILITY)
        override = self.cfg.key_overrides.get(api_key) if api_key else None
        if override in ("student", "teacher"):
            return RouteDecision(override, float("nan"), "none", "key_override")  # type: ignore[arg-type]
        if not isinstance(prompt, str):
            prompt = str(prompt or "")
        if self.cascade is not None:
            return RouteDecision("student", float("nan"), CASCADE, CASCADE)
        s = await self._score(prompt)
        self.policy.observe(s.value)
        threshold = float(override) if isinstance(override, float | int) else None
        route = self.policy.decide(s.value, threshold)
        metrics.ROUTER_DIFFICULTY.labels(scorer=s.scorer).observe(s.value)
        return RouteDecision(route, s.value, s.scorer, "score", s.features)

    # -- learning ---------------------------------------------------------------------------------
    def remember_teacher_answer(
        self, messages: list[dict[str, Any]], answer: str, task: str | None = None
    ) -> None:
        """The gateway calls this for every teacher answer; kept for retraining after a promotion."""
        self.recent.add(messages, answer, task)

    @property
    def learns(self) -> bool:
        return isinstance(self.scorer, LearnedScorer)

    async def retrain(self, examples: Sequence[LabelledExample], *, adapter: str | None = None) -> Any:
        """Retrain a learned scorer on shadow pairs; None if the scorer does not learn."""
        if not isinstance(self.scorer, LearnedScorer):
            return None
        return await self.scorer.retrain(examples, adapter=adapter)

    async def refresh(self, student: Backend, *, adapter: str | None = None, min_examples: int = 20) -> Any:
        """After ``adapter`` went live on ``student``: re-ask it the recent teacher-answered
        conversations and retrain the learned scorer on the fresh pairs. Call it from the
        promotion path (after the hot-swap); requests keep being routed meanwhile."""
        if not self.learns:
            return None
        answers = self.recent.snapshot()
        if len(answers) < min_examples:
            log.info("router not retrained: %d recent teacher answers (< %d)", len(answers), min_examples)
            return None
        examples = await relabel(
            student,
            answers,
            adapter=adapter,
            concurrency=self.cfg.retrain.relabel_concurrency,
            graded=self.graded,
            graders=self.graders,
            on_usage=self._relabel_spent,
        )
        return await self.retrain(examples, adapter=adapter)

    def _relabel_spent(self, usage: dict[str, Any] | None) -> None:
        if self.cost is not None:
            self.cost.spend("student", "relabel", usage)

    async def aclose(self) -> None:
        if self.fleet_share is not None:
            await self.fleet_share.aclose()
        await self.scorer.aclose()
