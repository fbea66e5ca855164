"""What one request costs against a key's budget. The budget's unit decides the meter: tokens
(``TokenMeter``) or money (``UsdMeter``, priced from the ``pricing`` table by the route that served
the request, as cost accounting prices it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from distillserve.config.keys import USD_MICROS
from distillserve.monitoring.cost import CostLedger, TokenUse


@dataclass(frozen=True)
class ServedTokens:
    """The tokens a request used; ``estimated`` when the answer carried no usage (a stream cut
    short, a backend that sends none) and the up-front estimate stands in."""

    prompt_tokens: int
    completion_tokens: int
    model: str | None = None
    estimated: bool = False
    route: str | None = None  # the route that answered; None: nothing was served
    cached_prompt_tokens: int = 0  # of ``prompt_tokens``, from the provider's prompt cache

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class BudgetMeter(Protocol):
    unit: str

    def charge(self, served: ServedTokens) -> int:
        """The amount (an integer in the limiter's counting unit) to take from the budget."""
        ...

    def in_unit(self, amount: int) -> float:
        """``amount`` as the budget's configured unit says it (tokens, dollars)."""
        ...


class TokenMeter:
    unit = "tokens"

    def charge(self, served: ServedTokens) -> int:
        return served.total

    def in_unit(self, amount: int) -> float:
        return float(amount)


class UsdMeter:
    """Charges a request its price in micro-dollars, rounded up (a priced call never charges 0).
    An estimated usage (no usage came back) is priced as uncached prompt and completion tokens on
    the route that answered; a request nothing served costs nothing."""

    unit = "usd"

    def __init__(self, cost: CostLedger) -> None:
        self.cost = cost

    def charge(self, served: ServedTokens) -> int:
        if served.route is None or served.total == 0:
            return 0
        use = TokenUse(served.prompt_tokens, served.cached_prompt_tokens, served.completion_tokens)
        usd = self.cost.cost_usd(served.route, use)
        # rounded to a nano-dollar first: float noise must not round a whole micro-dollar up
        return math.ceil(round(usd * USD_MICROS, 3)) if usd else 0

    def in_unit(self, amount: int) -> float:
        return amount / USD_MICROS


def budget_meters(cost: CostLedger) -> dict[str, BudgetMeter]:
    return {"tokens": TokenMeter(), "usd": UsdMeter(cost)}
