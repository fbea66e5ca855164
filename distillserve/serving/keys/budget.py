"""What one request costs against a key's budget. The budget's unit decides the meter; cost
accounting adds a money meter (a price table per model) beside ``TokenMeter`` without touching the
limiter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ServedTokens:
    """The tokens a request used; ``estimated`` when the answer carried no usage (a stream cut
    short, a backend that sends none) and the up-front estimate stands in."""

    prompt_tokens: int
    completion_tokens: int
    model: str | None = None
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class BudgetMeter(Protocol):
    unit: str

    def charge(self, served: ServedTokens) -> int:
        """The amount (an integer in ``unit``) to take from the budget."""
        ...


class TokenMeter:
    unit = "tokens"

    def charge(self, served: ServedTokens) -> int:
        return served.total


def meter_for(unit: str) -> BudgetMeter:
    meters: dict[str, BudgetMeter] = {"tokens": TokenMeter()}
    return meters[unit]
