"""A key's policy applied to one completion request, in the order that spends least on a refusal:
the rules (model, route forcing, ``max_tokens`` cap), then the limits, then, once the route is
planned, the key's routes; afterwards the limiter is settled with the answer's usage."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from distillserve.config import Settings
from distillserve.monitoring.cost import CostLedger, TokenUse
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.serving.keys import rules
from distillserve.serving.keys.budget import ServedTokens, budget_meters
from distillserve.serving.keys.call_context import KeyedCall, enter_call, log_opted_out
from distillserve.serving.keys.keyring import Caller, KeyRing
from distillserve.serving.keys.limiter import Admission, KeyLimiter, publish_budgets
from distillserve.serving.route_plan import Request, RoutePlan

# OpenAI's rule of thumb (about 4 characters per token in English text) for the up-front estimate;
# the actual usage corrects it.
_CHARS_PER_TOKEN = 4


class KeyEnforcement:
    def __init__(
        self, ring: KeyRing, limiter: KeyLimiter, *, force_header: str, completion_estimate: int
    ) -> None:
        self.ring = ring
        self.limiter = limiter
        self.force_header = force_header
        self.completion_estimate = completion_estimate
        self._settling: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyEnforcement:
        keys = settings.keys
        publish_budgets(keys.all_entries())
        return cls(
            KeyRing.from_config(keys, settings.server.api_keys),
            KeyLimiter(keys.storage, budget_meters(CostLedger.from_settings(settings))),
            force_header=settings.router.force_header,
            completion_estimate=keys.completion_estimate_tokens,
        )

    def checked(self, caller: Caller, request: Request, forced: str | None) -> Request:
        """``request`` as the key may send it (its token limit capped), or a 4xx."""
        rules.check_model(caller, request)
        rules.check_forced_route(caller, forced, self.force_header)
        return rules.capped(caller, request)

    async def admit(self, caller: Caller, request: Request) -> Admission:
        return await self.limiter.admit(caller, self.estimate(request))

    def estimate(self, request: Request) -> int:
        prompt = request.prompt_text() if isinstance(request, ChatCompletionRequest) else request.prompt_str()
        return math.ceil(len(prompt) / _CHARS_PER_TOKEN) + request.token_limit(self.completion_estimate)

    def restricted(self, caller: Caller, plan: RoutePlan) -> RoutePlan:
        return rules.restrict_routes(caller, plan)

    def enter(self, caller: Caller, log_header: str | None) -> KeyedCall:
        """Bind the caller to this request's context, for the teacher log and the usage."""
        call = KeyedCall(caller.tenant, caller.policy.log and not log_opted_out(log_header))
        enter_call(call)
        return call

    # -- after the answer -------------------------------------------------------------------------
    @staticmethod
    def served(
        admission: Admission, usage: dict[str, Any] | None, model: str | None, route: str | None = None
    ) -> ServedTokens:
        use = TokenUse.from_usage(usage)
        if use is None:
            return ServedTokens(0, admission.reserved, model, estimated=True, route=route)
        return ServedTokens(use.prompt, use.completion, model, route=route, cached_prompt_tokens=use.cached)

    def settle_later(self, admission: Admission, served: ServedTokens) -> None:
        """Settle off the request's task: a stream's end may be a cancellation, which must not
        cancel the accounting with it."""
        task = asyncio.get_running_loop().create_task(admission.settle(served))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
