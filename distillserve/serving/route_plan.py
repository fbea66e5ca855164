"""Where one request goes: the route, its backend and model, why, and where it falls back to."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from distillserve.monitoring import metrics
from distillserve.protocol.backend import Backend
from distillserve.protocol.features import missing_features, unsupported
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest
from distillserve.router.policy import Route
from distillserve.router.router import RouteDecision
from distillserve.teacher_log.answer import AnswerOrigin, difficulty_of

Request = ChatCompletionRequest | CompletionRequest
#: How a request is executed: straight to its backend (failing over once), or student-first cascade.
StrategyName = Literal["direct", "cascade"]


@dataclass(frozen=True)
class StudentAttempt:
    """A student answer that was not good enough (an escalated cascade): kept in the teacher log."""

    model: str
    text: str


@dataclass
class RoutePlan:
    route: Route
    backend: Backend
    model: str | None  # upstream model / adapter name; None = the backend's default
    decision: RouteDecision
    public_model: str  # what the response's "model" says
    fallback: RoutePlan | None = None
    strategy: StrategyName = "direct"
    escalated_from: StudentAttempt | None = None

    def annotation(self) -> dict[str, Any]:
        score = self.decision.score
        return {
            "route": self.route,
            "backend": self.backend.kind,
            "difficulty": None if math.isnan(score) else round(score, 4),
            "reason": self.decision.reason,
            "scorer": self.decision.scorer,
        }

    def headers(self) -> dict[str, str]:
        score = self.decision.score
        return {
            "x-distillserve-route": self.route,
            "x-distillserve-model": self.public_model,
            "x-distillserve-difficulty": "" if math.isnan(score) else f"{score:.4f}",
        }

    def teacher_origin(self) -> AnswerOrigin:
        """How a teacher answer on this plan is logged: the reason it reached the teacher."""
        reason = self.decision.reason
        student = self.escalated_from
        return AnswerOrigin(
            teacher_model=self.backend.name,
            teacher_backend=self.backend.kind,
            route=reason if reason != "score" else self.route,
            difficulty=difficulty_of(self.decision.score),
            student_model=student.model if student else None,
            student_text=student.text if student else None,
        )


def within_capabilities(plan: RoutePlan, request: Request) -> RoutePlan:
    """``plan`` when its backend serves every feature ``request`` needs; a 400 naming the missing
    ones otherwise (a forced or pinned student, or no backend serves them). A fallback that could
    not serve the request is dropped: failing over to it would half-answer it."""
    missing = missing_features(request, plan.backend.supports)
    if missing:
        for feature in missing:
            metrics.UNSUPPORTED_FEATURE_REQUESTS.labels(feature=feature, outcome="refused").inc()
        raise unsupported(missing, plan.public_model)
    if plan.fallback is not None and missing_features(request, plan.fallback.backend.supports):
        plan.fallback = None
    return plan
