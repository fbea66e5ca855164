"""The gateway's core: resolve a request to a route, call the backend, fall back when a
backend fails, log teacher answers, observe metrics. HTTP concerns live in ``app``."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from distillserve.adapters.student_target import StudentTarget
from distillserve.config import Settings
from distillserve.monitoring import metrics
from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import APIError, BackendTimeout, BackendUnavailable, ModelNotFound
from distillserve.protocol.reasoning import ThinkStreamFilter, split_think, strip_message
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest, SamplingFields, new_id
from distillserve.router.policy import Route
from distillserve.router.router import CASCADE, RouteDecision, Router
from distillserve.serving import cascade
from distillserve.teacher_log.record import TeacherLogRecord, TokenLogprob, conversation_key
from distillserve.teacher_log.sink import NullSink, TeacherLogSink

log = logging.getLogger(__name__)

Request = ChatCompletionRequest | CompletionRequest


class ShadowHook(Protocol):
    """Called after the student answered, to sample a teacher comparison in the background."""

    def maybe_shadow(
        self, request: ChatCompletionRequest, student_text: str, adapter: str | None
    ) -> None: ...

    def set_baseline(self, adapter: str | None, value: float) -> None: ...


@dataclass
class RoutePlan:
    route: Route
    backend: Backend
    model: str | None  # upstream model / adapter name; None = the backend's default
    decision: RouteDecision
    public_model: str  # what the response's "model" says
    fallback: RoutePlan | None = None
    # An escalated cascade: (student model, its answer that was not good enough), kept in the teacher log.
    cascade_student: tuple[str, str] | None = None

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


@dataclass
class StreamState:
    """What a stream carried, gathered for metrics and the teacher log."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, int] | None = None


def _is_failover_error(exc: APIError) -> bool:
    return isinstance(exc, BackendUnavailable | BackendTimeout)


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

    def _student_plan(self, decision: RouteDecision, adapter: str | None = None) -> RoutePlan:
        chosen = adapter if adapter is not None else self.target.pick().adapter
        public = chosen or self.student.name
        return RoutePlan("student", self.student, chosen, decision, public)

    def _teacher_plan(self, decision: RouteDecision) -> RoutePlan:
        return RoutePlan("teacher", self.teacher, None, decision, self.teacher.name)

    async def plan(self, request: Request, *, forced: str | None, api_key: str | None) -> RoutePlan:
        model = request.model
        pinned = RouteDecision("student", float("nan"), "none", "pinned")
        if model == self.auto_name:
            prompt = (
                request.prompt_text() if isinstance(request, ChatCompletionRequest) else request.prompt_str()
            )
            decision = await self.router.decide(prompt, forced=forced, api_key=api_key)
            metrics.ROUTE_DECISIONS.labels(route=decision.route, reason=decision.reason).inc()
            metrics.ROUTER_THRESHOLD.set(self.router.policy.threshold())
            if decision.route == "teacher":
                plan = self._teacher_plan(decision)
                plan.fallback = self._student_plan(decision)
            else:
                plan = self._student_plan(decision)
                plan.fallback = self._teacher_plan(decision)
            return plan
        if model == self.student.name:
            metrics.ROUTE_DECISIONS.labels(route="student", reason="pinned").inc()
            return self._student_plan(pinned)
        if model == self.teacher.name:
            metrics.ROUTE_DECISIONS.labels(route="teacher", reason="pinned").inc()
            return self._teacher_plan(RouteDecision("teacher", float("nan"), "none", "pinned"))
        if model in (self.target.live, self.target.canary):
            metrics.ROUTE_DECISIONS.labels(route="student", reason="pinned").inc()
            return self._student_plan(pinned, adapter=model)
        raise ModelNotFound(
            f"The model '{model}' does not exist. Available: {', '.join(self.model_ids())}", param="model"
        )

    # -- blocking ---------------------------------------------------------------------------------
    async def complete(self, request: Request, plan: RoutePlan) -> tuple[dict[str, Any], RoutePlan]:
        """Run a blocking request, falling back once for ``auto`` if the chosen backend is down."""
        if plan.decision.reason == CASCADE:
            return await cascade.complete(self, request, plan)
        try:
            return await self._complete_once(request, plan), plan
        except APIError as exc:
            if plan.fallback is None or not _is_failover_error(exc):
                raise
            log.warning(
                "%s backend failed (%s); falling back to %s", plan.route, exc.message, plan.fallback.route
            )
            metrics.FALLBACKS.labels(from_route=plan.route, to_route=plan.fallback.route).inc()
            return await self._complete_once(request, plan.fallback), plan.fallback

    async def _complete_once(self, request: Request, plan: RoutePlan) -> dict[str, Any]:
        chat = isinstance(request, ChatCompletionRequest)
        with self.target.in_flight(plan.model) if plan.route == "student" else nullcontext():
            try:
                if chat:
                    body = await plan.backend.chat(request, model=plan.model)  # type: ignore[arg-type]
                else:
                    body = await plan.backend.completion(request, model=plan.model)  # type: ignore[arg-type]
            except APIError as exc:
                metrics.BACKEND_ERRORS.labels(
                    backend=plan.backend.kind, route=plan.route, kind=exc.code or exc.type
                ).inc()
                raise
        body["model"] = plan.public_model
        self._count_tokens(plan.route, body.get("usage"))
        choice = (body.get("choices") or [{}])[0]
        if plan.route == "teacher":
            self._log_teacher(request, plan, body)
            if self.settings.server.strip_reasoning and chat:
                strip_message(choice.get("message", {}))
        elif chat and self.shadow is not None:
            text = (choice.get("message") or {}).get("content") or ""
            self.shadow.maybe_shadow(request, text, plan.model)  # type: ignore[arg-type]
        body["distillserve"] = plan.annotation()
        return body

    # -- streaming --------------------------------------------------------------------------------
    async def open_stream(
        self, request: Request, plan: RoutePlan
    ) -> tuple[AsyncIterator[dict[str, Any]], dict[str, Any] | None, RoutePlan]:
        """Start a stream and fetch its first chunk, so a dead backend still gets a proper
        error status (or a fallback) before any byte reaches the client. A cascade holds the
        student's stream back until it is sure, and may answer with the teacher's instead."""
        if plan.decision.reason == CASCADE:
            return await cascade.open_stream(self, request, plan)
        try:
            it, first = await self._first_chunk(request, plan)
            return it, first, plan
        except APIError as exc:
            if plan.fallback is None or not _is_failover_error(exc):
                raise
            metrics.FALLBACKS.labels(from_route=plan.route, to_route=plan.fallback.route).inc()
            it, first = await self._first_chunk(request, plan.fallback)
            return it, first, plan.fallback

    async def _first_chunk(
        self, request: Request, plan: RoutePlan
    ) -> tuple[AsyncIterator[dict[str, Any]], dict[str, Any] | None]:
        if isinstance(request, ChatCompletionRequest):
            it = plan.backend.chat_stream(request, model=plan.model)
        else:
            it = plan.backend.completion_stream(request, model=plan.model)
        # Count the request on its adapter from the moment it was picked (no await since),
        # so a hot-swap never unloads an adapter a stream is about to start on.
        try:
            with self.target.in_flight(plan.model) if plan.route == "student" else nullcontext():
                first = await it.__anext__()
        except StopAsyncIteration:
            return it, None
        except APIError as exc:
            metrics.BACKEND_ERRORS.labels(
                backend=plan.backend.kind, route=plan.route, kind=exc.code or exc.type
            ).inc()
            raise
        return it, first

    async def relay(
        self,
        request: Request,
        plan: RoutePlan,
        it: AsyncIterator[dict[str, Any]],
        first: dict[str, Any] | None,
        started: float,
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks for the client: model renamed, reasoning stripped if configured, usage chunk
        only if asked for; the whole answer is gathered for the teacher log."""
        chat = isinstance(request, ChatCompletionRequest)
        want_usage = bool(request.stream_options and request.stream_options.include_usage)
        strip = self.settings.server.strip_reasoning and plan.route == "teacher" and chat
        think = ThinkStreamFilter() if strip else None
        state = StreamState()
        annotated = False
        got_first_token = False
        try:
            with self.target.in_flight(plan.model) if plan.route == "student" else nullcontext():
                chunk = first
                while chunk is not None:
                    chunk["model"] = plan.public_model
                    if chunk.get("usage"):
                        state.usage = chunk["usage"]
                    choices = chunk.get("choices") or []
                    if choices:
                        self._gather(state, choices[0], chat)
                        if not got_first_token and _has_content(choices[0], chat):
                            got_first_token = True
                            metrics.TIME_TO_FIRST_TOKEN.labels(
                                route=plan.route, backend=plan.backend.kind
                            ).observe(time.perf_counter() - started)
                        if strip:
                            _strip_chunk(choices[0], think)  # type: ignore[arg-type]
                    emit = bool(choices) or want_usage
                    if not choices and chunk.get("usage") and not want_usage:
                        emit = False
                    if emit:
                        if not annotated:
                            chunk["distillserve"] = plan.annotation()
                            annotated = True
                        yield chunk
                    try:
                        chunk = await it.__anext__()
                    except StopAsyncIteration:
                        chunk = None
                    except APIError as exc:
                        metrics.BACKEND_ERRORS.labels(
                            backend=plan.backend.kind, route=plan.route, kind=exc.code or exc.type
                        ).inc()
                        raise
        finally:
            await _aclose(it)
        self._count_tokens(plan.route, state.usage)
        if plan.route == "teacher":
            self._log_teacher_stream(request, plan, state)
        elif chat and self.shadow is not None:
            self.shadow.maybe_shadow(request, "".join(state.content), plan.model)  # type: ignore[arg-type]

    @staticmethod
    def _gather(state: StreamState, choice: dict[str, Any], chat: bool) -> None:
        if chat:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                state.content.append(delta["content"])
            r = delta.get("reasoning_content") or delta.get("reasoning")
            if r:
                state.reasoning.append(r)
            lp = choice.get("logprobs")
            if lp and lp.get("content"):
                state.logprobs.extend(lp["content"])
        elif choice.get("text"):
            state.content.append(choice["text"])
        if choice.get("finish_reason"):
            state.finish_reason = choice["finish_reason"]

    # -- accounting -------------------------------------------------------------------------------
    @staticmethod
    def _count_tokens(route: str, usage: dict[str, int] | None) -> None:
        if usage:
            metrics.TOKENS.labels(route=route, direction="prompt").inc(usage.get("prompt_tokens", 0))
            metrics.TOKENS.labels(route=route, direction="completion").inc(usage.get("completion_tokens", 0))

    def _log_teacher(self, request: Request, plan: RoutePlan, body: dict[str, Any]) -> None:
        choice = (body.get("choices") or [{}])[0]
        if isinstance(request, ChatCompletionRequest):
            msg = choice.get("message") or {}
            text = msg.get("content") or ""
            reasoning = msg.get("reasoning_content") or msg.get("reasoning")
            lp = (choice.get("logprobs") or {}).get("content")
        else:
            text, reasoning, lp = choice.get("text") or "", None, None
        self._submit(
            request,
            plan,
            text,
            reasoning,
            choice.get("finish_reason"),
            body.get("usage") or {},
            lp,
            body.get("id"),
        )

    def _log_teacher_stream(self, request: Request, plan: RoutePlan, state: StreamState) -> None:
        self._submit(
            request,
            plan,
            "".join(state.content),
            "".join(state.reasoning) or None,
            state.finish_reason,
            state.usage or {},
            state.logprobs or None,
            None,
        )

    def _submit(
        self,
        request: Request,
        plan: RoutePlan,
        text: str,
        reasoning: str | None,
        finish_reason: str | None,
        usage: dict[str, int],
        logprobs: list[dict[str, Any]] | None,
        response_id: str | None,
    ) -> None:
        if not self.settings.teacher_log.enabled:
            return
        if reasoning is None:
            reasoning, _ = split_think(text) if "</think>" in text else (None, text)
        try:
            record = build_record(request, plan, text, reasoning, finish_reason, usage, logprobs, response_id)
            self.sink.submit(record)
            if record.messages is not None:  # kept to retrain the learned router after a promotion
                self.router.remember_teacher_answer(record.messages, text)
        except Exception:  # logging must never fail a request; the sink counts its own drops
            log.exception("could not log a teacher answer")


def build_record(
    request: Request,
    plan: RoutePlan,
    text: str,
    reasoning: str | None,
    finish_reason: str | None,
    usage: dict[str, int],
    logprobs: list[dict[str, Any]] | None,
    response_id: str | None,
) -> TeacherLogRecord:
    chat = isinstance(request, ChatCompletionRequest)
    messages = [m.model_dump(exclude_none=True) for m in request.messages] if chat else None  # type: ignore[union-attr]
    prompt = None if chat else request.prompt_str()  # type: ignore[union-attr]
    score = plan.decision.score
    return TeacherLogRecord(
        request_id=response_id or _new_request_id(),
        key=conversation_key(messages, prompt, request.user),
        endpoint="chat" if chat else "completions",
        messages=messages,
        prompt=prompt,
        sampling=_sampling(request),
        difficulty=None if math.isnan(score) else score,
        route=plan.decision.reason if plan.decision.reason != "score" else plan.route,
        teacher_model=plan.backend.name,
        teacher_backend=plan.backend.kind,
        response_text=text,
        reasoning_content=reasoning,
        finish_reason=finish_reason,
        usage=usage,
        logprobs=[_token_logprob(e) for e in logprobs] if logprobs else None,
        student_model=plan.cascade_student[0] if plan.cascade_student else None,
        student_text=plan.cascade_student[1] if plan.cascade_student else None,
    )


def _token_logprob(entry: dict[str, Any]) -> TokenLogprob:
    top = [(t["token"], float(t["logprob"])) for t in entry.get("top_logprobs") or []]
    return TokenLogprob(token=entry["token"], logprob=float(entry["logprob"]), top=top)


def _sampling(request: SamplingFields) -> dict[str, Any]:
    keys = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "top_logprobs")
    return {k: getattr(request, k) for k in keys if getattr(request, k, None) is not None}


def _new_request_id() -> str:
    return new_id("req")


def _has_content(choice: dict[str, Any], chat: bool) -> bool:
    if chat:
        delta = choice.get("delta") or {}
        return bool(delta.get("content") or delta.get("reasoning_content"))
    return bool(choice.get("text"))


def _strip_chunk(choice: dict[str, Any], think: ThinkStreamFilter) -> None:
    delta = choice.get("delta")
    if not delta:
        return
    delta.pop("reasoning_content", None)
    delta.pop("reasoning", None)
    if delta.get("content"):
        delta["content"] = think.feed(delta["content"])
    if choice.get("finish_reason"):
        tail = think.flush()
        if tail:
            delta["content"] = (delta.get("content") or "") + tail


async def _aclose(it: AsyncIterator[Any]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing a broken upstream must not mask the original outcome
            log.debug("error closing a backend stream", exc_info=True)
