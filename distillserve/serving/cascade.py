"""The confidence cascade in the gateway: the student answers first, with token
log-probabilities; if they say it is unsure, the teacher answers instead.

Streams are held back until decided, so an escalation happens before the first chunk
reaches the client and the client sees one coherent answer from one model (the headers
name it). A student that fails while we wait escalates too: nothing was sent yet.
Log-probabilities the client did not ask for are removed from what it gets.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from distillserve.monitoring import metrics
from distillserve.protocol.errors import APIError, BackendTimeout, BackendUnavailable
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.confidence import ConfidenceCascade, chunk_logprobs

if TYPE_CHECKING:
    from distillserve.serving.gateway import Gateway, Request, RoutePlan

log = logging.getLogger(__name__)


def with_logprobs(request: Request) -> Request:
    """The same request, asking for the logprobs of the generated tokens."""
    if isinstance(request, ChatCompletionRequest):
        return request.model_copy(update={"logprobs": True})
    return request.model_copy(update={"logprobs": max(request.logprobs or 0, 1)})


def client_wants_logprobs(request: Request) -> bool:
    return (
        bool(request.logprobs) if isinstance(request, ChatCompletionRequest) else request.logprobs is not None
    )


def _decided(plan: RoutePlan, cascade: ConfidenceCascade, logprobs: list[float]) -> RoutePlan:
    s = cascade.score(logprobs)
    decision = dataclasses.replace(plan.decision, score=s.value, scorer=s.scorer, features=s.features)
    return dataclasses.replace(plan, decision=decision)


def _escalated(plan: RoutePlan, student_text: str | None) -> RoutePlan:
    assert plan.fallback is not None, "a cascade plan always has the teacher as its fallback"
    decision = dataclasses.replace(plan.decision, route="teacher")
    teacher = dataclasses.replace(plan.fallback, decision=decision, fallback=None)
    if student_text is not None:
        teacher.cascade_student = (plan.public_model, student_text)
    return teacher


async def complete(gateway: Gateway, request: Request, plan: RoutePlan) -> tuple[dict[str, Any], RoutePlan]:
    cascade = gateway.router.cascade
    assert cascade is not None
    try:
        body = await gateway._complete_once(with_logprobs(request), plan)
    except APIError as exc:
        if not isinstance(exc, BackendUnavailable | BackendTimeout):
            raise
        metrics.FALLBACKS.labels(from_route="student", to_route="teacher").inc()
        teacher = _escalated(plan, None)
        return await gateway._complete_once(request, teacher), teacher
    choice = (body.get("choices") or [{}])[0]
    logprobs = chunk_logprobs(choice)
    plan = _decided(plan, cascade, logprobs)
    if cascade.is_unsure(logprobs):
        metrics.CASCADE_ESCALATIONS.inc()
        text = (choice.get("message") or {}).get("content") if "message" in choice else choice.get("text")
        teacher = _escalated(plan, text)
        try:
            return await gateway._complete_once(request, teacher), teacher
        except (BackendUnavailable, BackendTimeout) as exc:
            # Degraded, not failed: the unsure student answer is better than no answer.
            log.warning(
                "teacher failed on a cascade escalation (%s); serving the student's answer", exc.message
            )
            metrics.FALLBACKS.labels(from_route="teacher", to_route="student").inc()
    if not client_wants_logprobs(request):
        choice["logprobs"] = None
    body["distillserve"] = plan.annotation()
    return body, plan


async def open_stream(
    gateway: Gateway, request: Request, plan: RoutePlan
) -> tuple[AsyncIterator[dict[str, Any]], dict[str, Any] | None, RoutePlan]:
    cascade = gateway.router.cascade
    assert cascade is not None
    buffered: list[dict[str, Any]] = []
    logprobs: list[float] = []
    text: list[str] = []
    it: AsyncIterator[dict[str, Any]] | None = None
    failed = False
    with gateway.target.in_flight(plan.model):
        try:
            it, chunk = await gateway._first_chunk(with_logprobs(request), plan)
            while chunk is not None:
                buffered.append(chunk)
                for choice in chunk.get("choices") or []:
                    logprobs.extend(chunk_logprobs(choice))
                    delta = choice.get("delta") or {}
                    text.append(delta.get("content") or choice.get("text") or "")
                if cascade.unsure_already(logprobs) or (
                    cascade.decide_after_tokens and len(logprobs) >= cascade.decide_after_tokens
                ):
                    break
                try:
                    chunk = await it.__anext__()
                except StopAsyncIteration:
                    chunk = None
        except (BackendUnavailable, BackendTimeout) as exc:
            log.warning("student failed during a cascade (%s); asking the teacher", exc.message)
            metrics.FALLBACKS.labels(from_route="student", to_route="teacher").inc()
            failed = True
    plan = _decided(plan, cascade, logprobs)
    if failed or cascade.is_unsure(logprobs):
        if not failed:
            metrics.CASCADE_ESCALATIONS.inc()
        teacher = _escalated(plan, None if failed else "".join(text))
        try:
            it2, first2 = await gateway._first_chunk(request, teacher)
        except (BackendUnavailable, BackendTimeout) as exc:
            if failed or it is None:
                raise
            log.warning(
                "teacher failed on a cascade escalation (%s); serving the student's answer", exc.message
            )
            metrics.FALLBACKS.labels(from_route="teacher", to_route="student").inc()
        else:
            if it is not None:
                await _aclose(it)
            return it2, first2, teacher
    assert it is not None
    replay = _replay(buffered, it, keep_logprobs=client_wants_logprobs(request))
    try:
        first = await replay.__anext__()
    except StopAsyncIteration:
        first = None
    return replay, first, plan


async def _replay(
    buffered: list[dict[str, Any]], rest: AsyncIterator[dict[str, Any]], *, keep_logprobs: bool
) -> AsyncIterator[dict[str, Any]]:
    """The held-back chunks, then the rest of the student's stream, as one stream."""
    try:
        for chunk in buffered:
            yield _scrub(chunk, keep_logprobs)
        async for chunk in rest:
            yield _scrub(chunk, keep_logprobs)
    finally:
        await _aclose(rest)


def _scrub(chunk: dict[str, Any], keep_logprobs: bool) -> dict[str, Any]:
    if not keep_logprobs:
        for choice in chunk.get("choices") or []:
            choice["logprobs"] = None
    return chunk


async def _aclose(it: AsyncIterator[Any]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing a stream we no longer want must not fail the request
            log.debug("error closing a student stream", exc_info=True)
