"""The confidence cascade: the student answers first, with token log-probabilities; if they
say it is unsure, the teacher answers instead.

Streams are held back until decided, so an escalation happens before the first chunk
reaches the client and the client sees one coherent answer from one model (the headers
name it). A student that fails while we wait escalates too: nothing was sent yet.
Log-probabilities the client did not ask for are removed from what it gets.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from distillserve.monitoring import metrics
from distillserve.protocol.backend import ChunkStream
from distillserve.protocol.errors import APIError
from distillserve.protocol.logprobs import fit_logprobs
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.confidence import ConfidenceCascade, chunk_logprobs
from distillserve.serving.attempts import FAILOVER_ERRORS, Attempts, OpenedStream
from distillserve.serving.delivery import close_stream
from distillserve.serving.route_plan import Request, RoutePlan, StudentAttempt

log = logging.getLogger(__name__)


def with_logprobs(request: Request) -> Request:
    """The same request, asking for the logprobs of the generated tokens."""
    if isinstance(request, ChatCompletionRequest):
        return request.model_copy(update={"logprobs": True})
    return request.model_copy(update={"logprobs": max(request.logprobs or 0, 1)})


def _escalated(plan: RoutePlan, student_text: str | None) -> RoutePlan:
    assert plan.fallback is not None, "a cascade plan always has the teacher as its fallback"
    decision = dataclasses.replace(plan.decision, route="teacher")
    student = StudentAttempt(plan.public_model, student_text) if student_text is not None else None
    return dataclasses.replace(
        plan.fallback, decision=decision, fallback=None, strategy="direct", escalated_from=student
    )


def _serving_student_instead(exc: APIError) -> None:
    # Degraded, not failed: the unsure student answer is better than no answer.
    log.warning("teacher failed on a cascade escalation (%s); serving the student's answer", exc.message)
    metrics.FALLBACKS.labels(from_route="teacher", to_route="student").inc()


@dataclass
class _HeldBack:
    """The student's first chunks, held until the cascade has decided."""

    chunks: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def add(self, chunk: dict[str, Any]) -> None:
        self.chunks.append(chunk)
        for choice in chunk.get("choices") or []:
            self.logprobs.extend(chunk_logprobs(choice))
            delta = choice.get("delta") or {}
            self.text.append(delta.get("content") or choice.get("text") or "")

    def usage(self, request: Request) -> dict[str, int]:
        """What a student stream cut short by an escalation used: no usage chunk comes before a
        stream's end, so its generated tokens are counted (one logprob each) and its prompt is
        estimated like key admission does (about 4 characters per token, OpenAI's rule of thumb)."""
        prompt = request.prompt_text() if isinstance(request, ChatCompletionRequest) else request.prompt_str()
        return {"prompt_tokens": math.ceil(len(prompt) / 4), "completion_tokens": len(self.logprobs)}


class CascadeStrategy:
    def __init__(self, attempts: Attempts, cascade: ConfidenceCascade) -> None:
        self.attempts = attempts
        self.cascade = cascade

    def _decided(self, plan: RoutePlan, logprobs: list[float]) -> RoutePlan:
        s = self.cascade.score(logprobs)
        decision = dataclasses.replace(plan.decision, score=s.value, scorer=s.scorer, features=s.features)
        return dataclasses.replace(plan, decision=decision)

    # -- blocking ---------------------------------------------------------------------------------
    async def complete(self, request: Request, plan: RoutePlan) -> tuple[dict[str, Any], RoutePlan]:
        try:
            body = await self.attempts.undelivered(with_logprobs(request), plan)
        except FAILOVER_ERRORS:
            metrics.FALLBACKS.labels(from_route="student", to_route="teacher").inc()
            teacher = _escalated(plan, None)
            return await self.attempts.blocking(request, teacher), teacher
        logprobs = chunk_logprobs((body.get("choices") or [{}])[0])
        plan = self._decided(plan, logprobs)
        if self.cascade.is_unsure(logprobs):
            escalated = await self._escalate(request, plan, body)
            if escalated is not None:
                return escalated
        # Delivered only now that the student's answer stands: counted once, with its savings.
        return self.attempts.delivery.finish(request, plan, body), plan

    async def _escalate(
        self, request: Request, plan: RoutePlan, student: dict[str, Any]
    ) -> tuple[dict[str, Any], RoutePlan] | None:
        """The teacher's answer instead; None when the teacher failed and the student's answer stands.
        The discarded student answer is paid for but saves nothing: counted as spend only."""
        metrics.CASCADE_ESCALATIONS.inc()
        choice = (student.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") if "message" in choice else choice.get("text")
        teacher = _escalated(plan, text)
        student_served = False
        try:
            return await self.attempts.blocking(request, teacher), teacher
        except FAILOVER_ERRORS as exc:
            _serving_student_instead(exc)
            student_served = True
            return None
        finally:
            if not student_served:
                self.attempts.delivery.discard(plan, student.get("usage"))

    # -- streaming --------------------------------------------------------------------------------
    async def open_stream(self, request: Request, plan: RoutePlan) -> OpenedStream:
        held = _HeldBack()
        it: ChunkStream | None = None
        failed = False
        with self.attempts.delivery.in_flight(plan):
            try:
                it, chunk, _ = await self.attempts.first_chunk(with_logprobs(request), plan)
                while chunk is not None:
                    held.add(chunk)
                    if self._can_decide(held.logprobs):
                        break
                    chunk = await anext(it, None)
            except FAILOVER_ERRORS as exc:
                log.warning("student failed during a cascade (%s); asking the teacher", exc.message)
                metrics.FALLBACKS.labels(from_route="student", to_route="teacher").inc()
                failed = True
        plan = self._decided(plan, held.logprobs)
        if failed or self.cascade.is_unsure(held.logprobs):
            escalated = await self._escalate_stream(request, plan, it, held, failed)
            if escalated is not None:
                return escalated
        assert it is not None
        replay = _replay(held.chunks, it, request)
        return OpenedStream(replay, await anext(replay, None), plan)

    def _can_decide(self, logprobs: list[float]) -> bool:
        after = self.cascade.decide_after_tokens
        return self.cascade.unsure_already(logprobs) or bool(after and len(logprobs) >= after)

    async def _escalate_stream(
        self, request: Request, plan: RoutePlan, it: ChunkStream | None, held: _HeldBack, failed: bool
    ) -> OpenedStream | None:
        """The teacher's stream instead; None when the teacher failed and the student's answer stands."""
        if not failed:
            metrics.CASCADE_ESCALATIONS.inc()
        teacher = _escalated(plan, None if failed else "".join(held.text))
        try:
            opened = await self.attempts.first_chunk(request, teacher)
        except FAILOVER_ERRORS as exc:
            if failed or it is None:
                raise
            _serving_student_instead(exc)
            return None
        if it is not None:
            await close_stream(it)
            self.attempts.delivery.discard(plan, held.usage(request))  # paid for, saves nothing
        return opened


async def _replay(held: list[dict[str, Any]], rest: ChunkStream, request: Request) -> ChunkStream:
    """The held-back chunks, then the rest of the student's stream, as one stream."""
    try:
        for chunk in held:
            yield _fit(chunk, request)
        async for chunk in rest:
            yield _fit(chunk, request)
    finally:
        await close_stream(rest)


def _fit(chunk: dict[str, Any], request: Request) -> dict[str, Any]:
    for choice in chunk.get("choices") or []:
        fit_logprobs(choice, request)
    return chunk
