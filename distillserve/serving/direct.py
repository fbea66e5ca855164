"""How a request is executed once it is planned. The gateway picks a strategy once per request
(``RoutePlan.strategy``): ``direct`` here, ``cascade`` in ``serving.cascade``."""

from __future__ import annotations

from typing import Any, Protocol

from distillserve.serving.attempts import Attempts, OpenedStream
from distillserve.serving.route_plan import Request, RoutePlan


class ExecutionStrategy(Protocol):
    async def complete(self, request: Request, plan: RoutePlan) -> tuple[dict[str, Any], RoutePlan]:
        """A blocking answer, and the plan that served it."""
        ...

    async def open_stream(self, request: Request, plan: RoutePlan) -> OpenedStream:
        """A started stream whose first chunk has arrived."""
        ...


class DirectStrategy:
    """The planned backend answers; if it is down or too slow, the plan's fallback does (once)."""

    def __init__(self, attempts: Attempts) -> None:
        self.attempts = attempts

    async def complete(self, request: Request, plan: RoutePlan) -> tuple[dict[str, Any], RoutePlan]:
        return await self.attempts.blocking_with_failover(request, plan)

    async def open_stream(self, request: Request, plan: RoutePlan) -> OpenedStream:
        return await self.attempts.stream_with_failover(request, plan)
