"""What happens to an answer on its way to the client, blocking or streamed: the model renamed
to what the client asked for, reasoning stripped if configured, tokens counted, the usage chunk
only when asked for, teacher answers logged, student answers offered to the shadow sampler."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from distillserve.adapters.student_target import StudentTarget
from distillserve.monitoring import metrics
from distillserve.monitoring.cost import CostLedger
from distillserve.protocol.errors import APIError
from distillserve.protocol.logprobs import fit_logprobs
from distillserve.protocol.reasoning import ThinkStreamFilter, strip_message
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.serving.keys.call_context import current_tenant, may_log, note_usage
from distillserve.serving.route_plan import Request, RoutePlan
from distillserve.serving.stream_gathering import StreamState, has_content, strip_chunk
from distillserve.teacher_log.answer import TeacherAnswer
from distillserve.teacher_log.intake import log_answer
from distillserve.teacher_log.sink import TeacherLogSink

log = logging.getLogger(__name__)

#: Told every logged teacher chat answer (messages, text): the learned router re-fits on them.
# (messages, teacher answer, the request's metadata.task)
TeacherAnswerListener = Callable[[list[dict[str, Any]], str, str | None], None]


class ShadowHook(Protocol):
    """Called after the student answered, to sample a teacher comparison in the background."""

    def maybe_shadow(
        self, request: ChatCompletionRequest, student_text: str, adapter: str | None
    ) -> None: ...

    def set_baseline(self, adapter: str | None, value: float) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


def count_backend_error(plan: RoutePlan, exc: APIError) -> None:
    metrics.BACKEND_ERRORS.labels(
        backend=plan.backend.kind, route=plan.route, kind=exc.code or exc.type
    ).inc()


class AnswerDelivery:
    def __init__(
        self,
        target: StudentTarget,
        sink: TeacherLogSink,
        *,
        strip_reasoning: bool,
        log_teacher_answers: bool,
        shadow: ShadowHook | None = None,
        on_teacher_answer: TeacherAnswerListener | None = None,
        cost: CostLedger | None = None,
    ) -> None:
        self.target = target
        self.sink = sink
        self.strip_reasoning = strip_reasoning
        self.log_teacher_answers = log_teacher_answers
        self.shadow = shadow
        self.on_teacher_answer = on_teacher_answer
        self.cost = cost

    def in_flight(self, plan: RoutePlan) -> AbstractContextManager[None]:
        """Counts a student request on its adapter, so a hot-swap never unloads it mid-answer."""
        return self.target.in_flight(plan.model) if plan.route == "student" else nullcontext()

    # -- blocking ---------------------------------------------------------------------------------
    def finish(self, request: Request, plan: RoutePlan, body: dict[str, Any]) -> dict[str, Any]:
        chat = isinstance(request, ChatCompletionRequest)
        body["model"] = plan.public_model
        self._account(plan, body.get("usage"))
        choice = (body.get("choices") or [{}])[0]
        if plan.route == "teacher":
            self.log_teacher(TeacherAnswer.from_body(request, plan.teacher_origin(), body))
            if self.strip_reasoning and chat:
                strip_message(choice.get("message", {}))
        elif chat and self.shadow is not None and may_log():
            text = (choice.get("message") or {}).get("content") or ""
            self.shadow.maybe_shadow(request, text, plan.model)  # type: ignore[arg-type]
        fit_logprobs(choice, request)  # after logging: the teacher's top-k stay in the log only
        body["distillserve"] = plan.annotation()
        return body

    # -- streaming --------------------------------------------------------------------------------
    async def relay(
        self,
        request: Request,
        plan: RoutePlan,
        it: AsyncGenerator[dict[str, Any], None],
        first: dict[str, Any] | None,
        started: float,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Chunks for the client; the whole answer is gathered for the teacher log."""
        chat = isinstance(request, ChatCompletionRequest)
        want_usage = bool(request.stream_options and request.stream_options.include_usage)
        think = ThinkStreamFilter() if self.strip_reasoning and plan.route == "teacher" and chat else None
        state = StreamState()
        annotated = False
        got_first_token = False
        try:
            with self.in_flight(plan):
                chunk = first
                while chunk is not None:
                    chunk["model"] = plan.public_model
                    state.gather(chunk, chat)
                    choices = chunk.get("choices") or []
                    if choices:
                        if not got_first_token and has_content(choices[0], chat):
                            got_first_token = True
                            _observe_first_token(plan, started)
                        if think is not None:
                            strip_chunk(choices[0], think)
                        fit_logprobs(choices[0], request)  # gathered above with all the teacher sent
                    if choices or want_usage:
                        if not annotated:
                            chunk["distillserve"] = plan.annotation()
                            annotated = True
                        yield chunk
                    chunk = await _next_chunk(it, plan)
        finally:
            await close_stream(it)
        self._account(plan, state.usage)  # before the caller settles the key's limits with it
        # The teacher-log record (or the shadow sample) is built once the client has its last
        # event: the callback runs when this task next yields, in this request's context.
        asyncio.get_running_loop().call_soon(self._after_stream, request, plan, state, chat)

    def _after_stream(self, request: Request, plan: RoutePlan, state: StreamState, chat: bool) -> None:
        if plan.route == "teacher":
            self.log_teacher(state.teacher_answer(request, plan.teacher_origin()))
        elif chat and self.shadow is not None and may_log():
            try:
                self.shadow.maybe_shadow(request, state.text, plan.model)  # type: ignore[arg-type]
            except Exception:  # sampling must never surface in a finished stream
                log.exception("could not sample a shadow comparison")

    def _account(self, plan: RoutePlan, usage: dict[str, Any] | None) -> None:
        """Tokens, money (and savings, for the student) and the key's usage, once per answer."""
        count_tokens(plan.route, usage)
        note_usage(usage)
        if self.cost is not None:
            self.cost.spend(plan.route, "serve", usage, current_tenant())

    def discard(self, plan: RoutePlan, usage: dict[str, Any] | None) -> None:
        """An answer the client never gets (a cascade's student attempt, escalated): its tokens and
        money are counted, without savings; the key is charged for the answer it does get."""
        count_tokens(plan.route, usage)
        if self.cost is not None:
            self.cost.spend(plan.route, "serve", usage, current_tenant(), served=False)

    # -- the teacher log --------------------------------------------------------------------------
    def log_teacher(self, answer: TeacherAnswer) -> None:
        if not self.log_teacher_answers:
            return
        if not may_log():  # served, never logged: no record, no replay, no router memory
            metrics.TEACHER_LOG_RECORDS.labels(outcome="opted_out").inc()
            return
        try:
            # an invalid answer is dead-lettered and counted
            record = log_answer(self.sink, dataclasses.replace(answer, tenant=current_tenant()))
            if record is not None and record.messages is not None and self.on_teacher_answer is not None:
                self.on_teacher_answer(record.messages, answer.text, record.task)
        except Exception:  # logging must never fail a request; the sink counts its own drops
            log.exception("could not log a teacher answer")


def count_tokens(route: str, usage: dict[str, Any] | None) -> None:
    # Only counts that make sense: vLLM may send ``completion_tokens: null``, and a broken
    # upstream's negative count must not fail the request (its record is dead-lettered instead).
    for direction in ("prompt", "completion"):
        n = (usage or {}).get(f"{direction}_tokens")
        if isinstance(n, int) and n > 0:
            metrics.TOKENS.labels(route=route, direction=direction).inc(n)


def _observe_first_token(plan: RoutePlan, started: float) -> None:
    metrics.TIME_TO_FIRST_TOKEN.labels(route=plan.route, backend=plan.backend.kind).observe(
        time.perf_counter() - started
    )


async def _next_chunk(it: AsyncGenerator[dict[str, Any], None], plan: RoutePlan) -> dict[str, Any] | None:
    try:
        return await it.__anext__()
    except StopAsyncIteration:
        return None
    except APIError as exc:
        count_backend_error(plan, exc)
        raise


async def close_stream(it: AsyncGenerator[Any, None]) -> None:
    """Close a backend stream we stop reading; closing a broken upstream must not mask the outcome."""
    try:
        await it.aclose()
    except Exception:
        log.debug("error closing a backend stream", exc_info=True)
