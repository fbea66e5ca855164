"""The gateway's core: resolve a request to a route plan, then execute it with the plan's
strategy (``direct`` or ``cascade``). HTTP concerns live in ``app``; what happens to an
answer on its way out in ``delivery``; the backend calls and failover in ``attempts``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from distillserve.adapters.student_target import StudentTarget
from distillserve.config import Settings
from distillserve.monitoring import metrics
from distillserve.monitoring.cost import CostLedger
from distillserve.protocol.backend import Backend, ChunkStream
from distillserve.protocol.errors import ModelNotFound
from distillserve.protocol.features import missing_features
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.router import CAPABILITY, CASCADE, RouteDecision, Router
from distillserve.serving.attempts import Attempts, OpenedStream
from distillserve.serving.cascade import CascadeStrategy
from distillserve.serving.delivery import AnswerDelivery, ShadowHook
from distillserve.serving.direct import DirectStrategy, ExecutionStrategy
from distillserve.serving.route_plan import Request, RoutePlan, StrategyName, within_capabilities
from distillserve.teacher_log.sink import NullSink, TeacherLogSink

_NO_SCORE = float("nan")


class Gateway:
    def __init__(
        self,
        settings: Settings,
        student: Backend,
        teacher: Backend,
        router: Router,
        sink: TeacherLogSink | None = None,
        target: StudentTarget | None = None,
        shadow: ShadowHook | None = None,
    ) -> None:
        self.settings = settings
        self.student = student
        self.teacher = teacher
        self.router = router
        self.sink = sink or NullSink()
        self.target = target or StudentTarget()
        self.shadow = shadow
        self.auto_name = settings.server.auto_model_name
        self.delivery = AnswerDelivery(
            self.target,
            self.sink,
            strip_reasoning=settings.server.strip_reasoning,
            log_teacher_answers=settings.teacher_log.enabled,
            shadow=shadow,
            # kept to retrain the learned router after a promotion
            on_teacher_answer=router.remember_teacher_answer,
            cost=CostLedger.from_settings(settings),
        )
        attempts = Attempts(self.delivery)
        self._strategies: dict[StrategyName, ExecutionStrategy] = {"direct": DirectStrategy(attempts)}
        if router.cascade is not None:
            self._strategies["cascade"] = CascadeStrategy(attempts, router.cascade)

    def set_drift_baseline(self, adapter: str, agreement: float | None) -> None:
        """A promoted version's eval agreement with the teacher: drift is measured from it."""
        if agreement is not None and self.shadow is not None:
            self.shadow.set_baseline(adapter, agreement)

    # -- models -----------------------------------------------------------------------------------
    def model_ids(self) -> list[str]:
        ids = [self.auto_name, self.student.name, self.teacher.name]
        for adapter in (self.target.live, self.target.canary):
            if adapter and adapter not in ids:
                ids.append(adapter)
        return ids

    # -- planning ---------------------------------------------------------------------------------
    def _student_plan(self, decision: RouteDecision, adapter: str | None = None) -> RoutePlan:
        chosen = adapter if adapter is not None else self.target.pick().adapter
        public = chosen or self.student.name
        return RoutePlan("student", self.student, chosen, decision, public)

    def _teacher_plan(self, decision: RouteDecision) -> RoutePlan:
        return RoutePlan("teacher", self.teacher, None, decision, self.teacher.name)

    async def plan(self, request: Request, *, forced: str | None, api_key: str | None) -> RoutePlan:
        """The route for ``request``; a 400 when the backend it must go to cannot serve all of it."""
        plan = within_capabilities(await self._plan(request, forced=forced, api_key=api_key), request)
        if plan.decision.reason == CAPABILITY:
            for feature in missing_features(request, self.student.supports):
                metrics.UNSUPPORTED_FEATURE_REQUESTS.labels(feature=feature, outcome="teacher").inc()
        return plan

    async def _plan(self, request: Request, *, forced: str | None, api_key: str | None) -> RoutePlan:
        model = request.model
        if model == self.auto_name:
            return await self._routed_plan(request, forced=forced, api_key=api_key)
        if model == self.student.name or model in (self.target.live, self.target.canary):
            metrics.ROUTE_DECISIONS.labels(route="student", reason="pinned").inc()
            pinned = RouteDecision("student", _NO_SCORE, "none", "pinned")
            return self._student_plan(pinned, adapter=None if model == self.student.name else model)
        if model == self.teacher.name:
            metrics.ROUTE_DECISIONS.labels(route="teacher", reason="pinned").inc()
            return self._teacher_plan(RouteDecision("teacher", _NO_SCORE, "none", "pinned"))
        raise ModelNotFound(
            f"The model '{model}' does not exist. Available: {', '.join(self.model_ids())}", param="model"
        )

    async def _routed_plan(self, request: Request, *, forced: str | None, api_key: str | None) -> RoutePlan:
        prompt = request.prompt_text() if isinstance(request, ChatCompletionRequest) else request.prompt_str()
        lacks = missing_features(request, self.student.supports)
        decision = await self.router.decide(prompt, forced=forced, api_key=api_key, student_lacks=lacks)
        metrics.ROUTE_DECISIONS.labels(route=decision.route, reason=decision.reason).inc()
        metrics.ROUTER_THRESHOLD.set(self.router.policy.threshold())
        if decision.route == "teacher":
            plan = self._teacher_plan(decision)
            plan.fallback = self._student_plan(decision)
        else:
            plan = self._student_plan(decision)
            plan.fallback = self._teacher_plan(decision)
            if decision.reason == CASCADE:
                plan.strategy = "cascade"
        return plan

    # -- execution --------------------------------------------------------------------------------
    async def complete(self, request: Request, plan: RoutePlan) -> tuple[dict[str, Any], RoutePlan]:
        """A blocking answer, and the plan that served it (the fallback's, an escalation's)."""
        return await self._strategies[plan.strategy].complete(request, plan)

    async def open_stream(self, request: Request, plan: RoutePlan) -> OpenedStream:
        """A started stream: ``(chunks, first chunk, serving plan)``. Nothing has reached the
        client yet, so a dead backend still gets a proper error status or a fallback."""
        return await self._strategies[plan.strategy].open_stream(request, plan)

    def relay(
        self,
        request: Request,
        plan: RoutePlan,
        it: ChunkStream,
        first: dict[str, Any] | None,
        started: float,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The chunks for the client (see ``AnswerDelivery.relay``)."""
        return self.delivery.relay(request, plan, it, first, started)
