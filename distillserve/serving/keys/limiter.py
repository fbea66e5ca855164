"""Per-key rate limits and budgets in ``limits`` storage: Redis shared by every gateway replica,
or memory for one process. State is keyed by tenant and key hash prefix, never by the key.

- requests/min: a moving window (exact; no double burst at a window edge), one hit per request.
- tokens/min: reserved up front (prompt estimate + max_tokens, as OpenAI counts its TPM limit) in
  a fixed window, then corrected by the actual usage. Reserving first keeps concurrent requests
  from all passing a "tokens left?" check together (the overshoot of counting only afterwards);
  correcting keeps short answers from eating the limit.
- budget per period: checked before (anything left?), charged the actual usage after, as billing
  does (OpenAI, LiteLLM's ``max_budget``): a budget is money or tokens spent, known afterwards.

If the storage cannot be reached the request is served (fail open, like LiteLLM) and counted in
``distillserve_key_limiter_errors_total``: a Redis outage must not take the API down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from limits import (
    RateLimitItem,
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerMonth,
    RateLimitItemPerYear,
)
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from distillserve.config.keys import BudgetConfig, KeyEntry
from distillserve.monitoring import metrics
from distillserve.serving.keys.budget import BudgetMeter, ServedTokens, TokenMeter
from distillserve.serving.keys.keyring import Caller
from distillserve.serving.keys.refusals import LimitState, QuotaExhausted, RateLimited

log = logging.getLogger(__name__)
NAMESPACE = "distillserve"


def async_storage_uri(uri: str) -> tuple[str, dict[str, str | bool]]:
    """``limits``' async URI for a configured one; redis through redis-py (installed), not coredis."""
    options: dict[str, str | bool] = {"wrap_exceptions": True}
    if uri.startswith(("redis://", "rediss://")):
        options["implementation"] = "redispy"
    return f"async+{uri}", options


_PER_PERIOD: dict[str, type[RateLimitItem]] = {
    "minute": RateLimitItemPerMinute,
    "hour": RateLimitItemPerHour,
    "day": RateLimitItemPerDay,
    "month": RateLimitItemPerMonth,
    "year": RateLimitItemPerYear,
}


def _per(budget: BudgetConfig) -> RateLimitItem:
    return _PER_PERIOD[budget.period](budget.counted_limit, namespace=NAMESPACE)


class KeyLimiter:
    def __init__(self, storage_uri: str, meters: Mapping[str, BudgetMeter] | None = None) -> None:
        # A budget's unit picks its meter; money needs the price table (``budget_meters``).
        self.meters: Mapping[str, BudgetMeter] = meters or {"tokens": TokenMeter()}
        uri, options = async_storage_uri(storage_uri)
        self.storage = storage_from_string(uri, **options)
        self.moving = MovingWindowRateLimiter(self.storage)
        self.fixed = FixedWindowRateLimiter(self.storage)

    async def admit(self, caller: Caller, reserve_tokens: int) -> Admission:
        """Take one request and ``reserve_tokens`` from the caller's limits, or raise a 429."""
        admission = Admission(self, caller, reserve_tokens)
        policy = caller.policy
        if policy.budget is None and policy.rpm_limit is None and policy.tpm_limit is None:
            return admission
        try:
            await self._check_budget(caller)
            if policy.rpm_limit is not None:
                admission.states.append(await self._take_request(caller, policy.rpm_limit, admission))
            if policy.tpm_limit is not None:
                admission.states.append(
                    await self._reserve(caller, policy.tpm_limit, reserve_tokens, admission)
                )
        except StorageError:
            _storage_failed("admit")
            admission.states.clear()
        return admission

    # -- the three limits -------------------------------------------------------------------------
    async def _check_budget(self, caller: Caller) -> None:
        budget = caller.policy.budget
        if budget is None:
            return
        item = _per(budget)
        stats = await self.fixed.get_window_stats(item, *_ids("budget", caller))
        if stats.remaining <= 0:
            _refused(caller, "budget")
            raise QuotaExhausted(budget.limit, budget.unit, stats.reset_time - time.time())

    async def _take_request(self, caller: Caller, limit: int, admission: Admission) -> LimitState:
        item = RateLimitItemPerMinute(limit, namespace=NAMESPACE)
        ids = _ids("requests", caller)
        taken = await self.moving.hit(item, *ids)
        stats = await self.moving.get_window_stats(item, *ids)
        state = LimitState("requests", limit, stats.remaining, stats.reset_time - time.time())
        if not taken:
            _refused(caller, "requests")
            raise RateLimited(state, 1, admission.headers())
        return state

    async def _reserve(self, caller: Caller, limit: int, tokens: int, admission: Admission) -> LimitState:
        item = RateLimitItemPerMinute(limit, namespace=NAMESPACE)
        ids = _ids("tokens", caller)
        reserved = await self.fixed.hit(item, *ids, cost=tokens)
        if not reserved:  # a fixed window counts a refused hit: give the tokens back
            await self.storage.incr(item.key_for(*ids), item.get_expiry(), amount=-tokens)
        stats = await self.fixed.get_window_stats(item, *ids)
        state = LimitState("tokens", limit, stats.remaining, stats.reset_time - time.time())
        if not reserved:
            _refused(caller, "tokens")
            raise RateLimited(state, tokens, admission.headers())
        admission.tokens_reset_at = stats.reset_time
        return state

    # -- after the answer -------------------------------------------------------------------------
    async def settle(self, admission: Admission, served: ServedTokens) -> None:
        policy = admission.caller.policy
        try:
            if policy.tpm_limit is not None and admission.tokens_reset_at is not None:
                await self._correct_tokens(admission, policy, served.total - admission.reserved)
            if policy.budget is not None:
                await self._charge(admission.caller, policy.budget, served)
        except StorageError:
            _storage_failed("settle")

    async def _charge(self, caller: Caller, budget: BudgetConfig, served: ServedTokens) -> None:
        meter = self.meters[budget.unit]
        amount = meter.charge(served)
        if amount > 0:
            await self.fixed.hit(_per(budget), *_ids("budget", caller), cost=amount)
            metrics.KEY_BUDGET_CHARGED.labels(**budget_labels(caller.policy)).inc(meter.in_unit(amount))

    async def _correct_tokens(self, admission: Admission, policy: KeyEntry, delta: int) -> None:
        item = RateLimitItemPerMinute(policy.tpm_limit or 1, namespace=NAMESPACE)
        key = item.key_for(*_ids("tokens", admission.caller))
        if delta > 0:
            await self.storage.incr(key, item.get_expiry(), amount=delta)
            return
        # A refund belongs to the window it was reserved in: none once that window has closed,
        # and never below zero.
        same_window = abs(await self.storage.get_expiry(key) - (admission.tokens_reset_at or 0)) < 2
        refund = min(-delta, await self.storage.get(key)) if same_window else 0
        if refund > 0:
            await self.storage.incr(key, item.get_expiry(), amount=-refund)


@dataclass
class Admission:
    """A request let through: its limits' state (for the response headers) and its reservation,
    settled once the answer's usage is known."""

    limiter: KeyLimiter
    caller: Caller
    reserved: int
    states: list[LimitState] = field(default_factory=list)
    tokens_reset_at: float | None = None
    settled: bool = False

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for state in self.states:
            out.update(state.headers())
        return out

    async def settle(self, served: ServedTokens) -> None:
        if self.settled:
            return
        self.settled = True
        await self.limiter.settle(self, served)


def budget_labels(policy: KeyEntry) -> dict[str, str]:
    """The budget series of a key: its tenant, its alias (or hash prefix) and the budget's unit."""
    unit = policy.budget.unit if policy.budget is not None else ""
    return {"tenant": policy.tenant, "key_alias": policy.alias or policy.sha256[:16], "unit": unit}


def publish_budgets(entries: Iterable[KeyEntry]) -> None:
    """Each budget's limit and period as gauges: the burn-rate alert divides the charge rate by them."""
    for policy in entries:
        if policy.budget is not None:
            labels = budget_labels(policy)
            metrics.KEY_BUDGET_LIMIT.labels(**labels).set(policy.budget.limit)
            metrics.KEY_BUDGET_PERIOD.labels(**labels).set(_per(policy.budget).get_expiry())


def _ids(limit: str, caller: Caller) -> tuple[str, ...]:
    return (limit, caller.tenant or "-", caller.key_id)


def _refused(caller: Caller, limit: str) -> None:
    metrics.KEY_REFUSALS.labels(tenant=caller.tenant or "", reason=limit).inc()


def _storage_failed(step: str) -> None:
    log.warning("rate-limit storage unreachable at %s; serving without limits", step, exc_info=True)
    metrics.KEY_LIMITER_ERRORS.labels(step=step).inc()
