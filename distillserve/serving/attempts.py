"""The one way a request reaches a backend: a blocking call or the start of a stream, each
counted (backend errors, the student's in-flight requests per adapter), with one failover to
the plan's fallback when the chosen backend is down or too slow. Both execution strategies
(direct and cascade) are built from these calls."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from distillserve.monitoring import metrics
from distillserve.protocol.backend import ChunkStream
from distillserve.protocol.errors import APIError, BackendTimeout, BackendUnavailable
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.serving.delivery import AnswerDelivery, count_backend_error
from distillserve.serving.route_plan import Request, RoutePlan

log = logging.getLogger(__name__)

#: Errors that mean "this backend cannot answer now": the request may go to the other one.
FAILOVER_ERRORS = (BackendUnavailable, BackendTimeout)


class OpenedStream(NamedTuple):
    """A started stream: its iterator, the first chunk (None: it ended at once), the plan that served."""

    chunks: ChunkStream
    first: dict[str, Any] | None
    plan: RoutePlan


class Attempts:
    def __init__(self, delivery: AnswerDelivery) -> None:
        self.delivery = delivery

    async def blocking(self, request: Request, plan: RoutePlan) -> dict[str, Any]:
        """One blocking answer from the plan's backend, delivered (renamed, counted, logged)."""
        return self.delivery.finish(request, plan, await self.undelivered(request, plan))

    async def undelivered(self, request: Request, plan: RoutePlan) -> dict[str, Any]:
        """The backend's blocking answer as it came, for a caller that decides whether the client
        gets it (``delivery.finish``) or not (``delivery.discard``): the cascade."""
        with self.delivery.in_flight(plan):
            try:
                if isinstance(request, ChatCompletionRequest):
                    return await plan.backend.chat(request, model=plan.model)
                return await plan.backend.completion(request, model=plan.model)
            except APIError as exc:
                count_backend_error(plan, exc)
                raise

    async def first_chunk(self, request: Request, plan: RoutePlan) -> OpenedStream:
        """Start a stream and wait for its first chunk, so a dead backend still gets a proper error
        status (or a failover) before any byte reaches the client."""
        if isinstance(request, ChatCompletionRequest):
            it = plan.backend.chat_stream(request, model=plan.model)
        else:
            it = plan.backend.completion_stream(request, model=plan.model)
        # Counted on its adapter from the moment it was picked (no await since), so a hot-swap
        # never unloads an adapter a stream is about to start on.
        try:
            with self.delivery.in_flight(plan):
                first = await it.__anext__()
        except StopAsyncIteration:
            return OpenedStream(it, None, plan)
        except APIError as exc:
            count_backend_error(plan, exc)
            raise
        return OpenedStream(it, first, plan)

    async def blocking_with_failover(
        self, request: Request, plan: RoutePlan
    ) -> tuple[dict[str, Any], RoutePlan]:
        try:
            return await self.blocking(request, plan), plan
        except FAILOVER_ERRORS as exc:
            fallback = _fallback_or_raise(plan, exc)
            return await self.blocking(request, fallback), fallback

    async def stream_with_failover(self, request: Request, plan: RoutePlan) -> OpenedStream:
        try:
            return await self.first_chunk(request, plan)
        except FAILOVER_ERRORS as exc:
            return await self.first_chunk(request, _fallback_or_raise(plan, exc))


def _fallback_or_raise(plan: RoutePlan, exc: APIError) -> RoutePlan:
    if plan.fallback is None:
        raise exc
    log.warning("%s backend failed (%s); falling back to %s", plan.route, exc.message, plan.fallback.route)
    metrics.FALLBACKS.labels(from_route=plan.route, to_route=plan.fallback.route).inc()
    return plan.fallback
