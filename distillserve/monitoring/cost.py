"""Money: the tokens of every LLM call distillserve makes, priced from the ``pricing`` table and
counted in ``distillserve_spend_usd_total`` by route, tenant and purpose; and, for each request the
student served, what the teacher would have charged for it (``distillserve_savings_usd_total``).

The price of a call is the one its provider bills (LiteLLM's ``completion_cost`` does the same):
prompt tokens a prompt cache served (OpenAI's ``prompt_tokens_details.cached_tokens``, DeepSeek's
``prompt_cache_hit_tokens``) at the cached-input rate, the other prompt tokens at the input rate,
completion tokens (reasoning included) at the output rate.

Savings count only the requests the student finally served: a request a cascade escalated was
paid on the teacher too, so the student's attempt at it is spend (``purpose="serve"``, route
``student``) and saves nothing.

The savings estimate takes the student's prompt token count at the teacher's input price, with no
cache discount: the teacher's cache cannot be known for a request it never saw, and the student's
tokenizer stands in for the teacher's. The completion is priced at what the teacher writes for the
student's traffic: the mean completion tokens of the teacher's last shadow answers (a random
sample of student-served requests), once there are ``MIN_SHADOW_SAMPLES`` of them; before that
(or with shadowing off), the student's own count. A reasoning teacher (DeepSeek-R1) bills its
trace as output: pricing the student's short answer instead understated the savings about
tenfold on the LLM demo. Net savings are the savings minus the student's own serve spend (both
counters carry the tenant).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from distillserve.config import ModelPrice, PricingConfig, Settings
from distillserve.monitoring import metrics

Purpose = Literal["serve", "shadow", "judge", "relabel"]
#: ``route`` of a call made to neither student nor teacher (a judge with an endpoint of its own).
OTHER_ROUTE = "other"
#: Shadow answers needed before their mean prices the savings; and how many recent ones it covers
#: (the student's share of the traffic moves as adapters go live).
MIN_SHADOW_SAMPLES, SHADOW_WINDOW = 8, 256


@dataclass(frozen=True)
class TokenUse:
    prompt: int
    cached: int  # of ``prompt``, served by the provider's prompt cache
    completion: int

    @classmethod
    def from_usage(cls, usage: Mapping[str, Any] | None) -> TokenUse | None:
        """The counts of an OpenAI-style ``usage`` object; None when it has none to price."""
        if not usage:
            return None
        prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
        if prompt == 0 and completion == 0:
            return None
        details = usage.get("prompt_tokens_details")
        cached = _count(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
        # DeepSeek reports its cache apart; a provider may send both, they count the same tokens.
        cached = max(cached, _count(usage.get("prompt_cache_hit_tokens")))
        return cls(prompt, min(cached, prompt), completion)

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _count(value: Any) -> int:
    # vLLM may send null; a broken upstream's negative count must not price as a refund.
    return value if isinstance(value, int) and value > 0 else 0


class CostLedger:
    """Prices calls by route (or by model, for a judge) and counts the money in Prometheus."""

    def __init__(self, pricing: PricingConfig, *, teacher_model: str | None) -> None:
        self.pricing = pricing
        self.teacher_model = pricing.teacher_model or teacher_model
        self.teacher_price = pricing.price(self.teacher_model)
        self.student_price = pricing.price(pricing.student_model)
        self._shadow_completions: deque[int] = deque(maxlen=SHADOW_WINDOW)

    @classmethod
    def from_settings(cls, settings: Settings) -> CostLedger:
        return cls(settings.pricing, teacher_model=settings.teacher.served_model)

    def route_price(self, route: str) -> ModelPrice | None:
        return self.teacher_price if route == "teacher" else self.student_price

    def cost_usd(self, route: str, use: TokenUse) -> float | None:
        """What ``use`` costs on ``route``: 0 on a free student, None on an unpriced teacher."""
        if route == "student" and self.pricing.student_model is None:
            return 0.0
        price = self.route_price(route)
        return price.cost_usd(use.prompt, use.cached, use.completion) if price is not None else None

    def teacher_equivalent_usd(self, use: TokenUse) -> float | None:
        """What the teacher would have charged for ``use``: no cache discount, and its completion
        at the teacher's length for this traffic when shadow answers have measured it (the module
        says why)."""
        if self.teacher_price is None:
            return None
        return self.teacher_price.cost_usd(use.prompt, 0, self.teacher_completion_tokens(use.completion))

    def teacher_completion_tokens(self, student_completion: int) -> float:
        """The teacher's expected completion length for a request the student answered in
        ``student_completion`` tokens: its shadow answers' mean, else the student's count."""
        n = len(self._shadow_completions)
        return sum(self._shadow_completions) / n if n >= MIN_SHADOW_SAMPLES else student_completion

    # -- counted ----------------------------------------------------------------------------------
    def spend(
        self,
        route: str,
        purpose: Purpose,
        usage: Mapping[str, Any] | None,
        tenant: str | None = None,
        *,
        served: bool = True,
    ) -> float:
        """Count what a call on ``route`` cost; a student answer the client got also counts its
        savings. ``served=False``: an answer that never reached the client (the student's attempt
        at a request a cascade escalated to the teacher): its cost is spend, and it saves nothing,
        since the teacher was paid for that request as well."""
        use = TokenUse.from_usage(usage)
        if use is None:
            return 0.0
        cost = self._counted(route, purpose, tenant, use, self.cost_usd(route, use))
        if route == "teacher" and purpose == "shadow":
            self._shadow_completions.append(use.completion)
        if served and route == "student" and purpose == "serve":
            saved = self.teacher_equivalent_usd(use)
            if saved is not None:
                metrics.SAVINGS.labels(tenant=tenant or "").inc(saved)
        return cost

    def spend_on_model(
        self, model: str, purpose: Purpose, usage: Mapping[str, Any] | None, tenant: str | None = None
    ) -> float:
        """Count a call to a named model (the judge's): the teacher route when it is the teacher's."""
        use = TokenUse.from_usage(usage)
        if use is None:
            return 0.0
        price = self.pricing.price(model)
        cost = price.cost_usd(use.prompt, use.cached, use.completion) if price is not None else None
        route = "teacher" if model == self.teacher_model else OTHER_ROUTE
        return self._counted(route, purpose, tenant, use, cost)

    @staticmethod
    def _counted(
        route: str, purpose: Purpose, tenant: str | None, use: TokenUse, cost: float | None
    ) -> float:
        if cost is None:  # nothing lost silently: the tokens are counted, unpriced
            metrics.UNPRICED_TOKENS.labels(route=route, purpose=purpose).inc(use.total)
            return 0.0
        metrics.SPEND.labels(route=route, tenant=tenant or "", purpose=purpose).inc(cost)
        return cost
