"""The 429s of a key's limits, in OpenAI's shapes: ``rate_limit_exceeded`` (error ``type``
"requests" or "tokens", as api.openai.com sends) with ``Retry-After``, and ``insufficient_quota``
for an exhausted budget. Each carries the headers its response needs (``x-ratelimit-*``, and
``x-should-retry: false`` for a budget, which the OpenAI SDK honours instead of retrying)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from distillserve.protocol.errors import APIError

LimitName = Literal["requests", "tokens"]


@dataclass(frozen=True)
class LimitState:
    """One per-minute limit after this request, for the ``x-ratelimit-*`` headers."""

    name: LimitName
    limit: int
    remaining: int
    reset_in_s: float

    def headers(self) -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{self.name}": str(self.limit),
            f"x-ratelimit-remaining-{self.name}": str(max(0, self.remaining)),
            f"x-ratelimit-reset-{self.name}": go_duration(self.reset_in_s),
        }


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: "20ms", "1.5s", "6m0s"."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    secs = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{secs}" if minutes else secs


def retry_after_headers(seconds: float) -> dict[str, str]:
    # The SDK prefers retry-after-ms; proxies and other clients read Retry-After (whole seconds).
    return {
        "retry-after": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000))),
    }


class KeyLimitError(APIError):
    """A refusal whose response carries headers of its own."""

    status_code = 429

    def __init__(self, message: str, headers: dict[str, str], **fields: str) -> None:
        super().__init__(message, **fields)  # type: ignore[arg-type]
        self.headers = headers


class RateLimited(KeyLimitError):
    code = "rate_limit_exceeded"

    def __init__(self, state: LimitState, requested: int, others: dict[str, str]) -> None:
        unit = "requests per min (RPM)" if state.name == "requests" else "tokens per min (TPM)"
        message = (
            f"Rate limit reached on {unit}: Limit {state.limit}, Remaining {max(0, state.remaining)}, "
            f"Requested {requested}. Please try again in {go_duration(state.reset_in_s)}."
        )
        headers = {**others, **state.headers(), **retry_after_headers(state.reset_in_s)}
        super().__init__(message, headers, type=state.name)


class QuotaExhausted(KeyLimitError):
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, limit: float, unit: str, reset_in_s: float) -> None:
        budget = "$" + f"{limit:.6f}".rstrip("0").rstrip(".") if unit == "usd" else f"{int(limit)} {unit}"
        message = (
            f"You exceeded your current quota: this API key's budget of {budget} is spent; "
            f"it renews in {go_duration(reset_in_s)}."
        )
        super().__init__(message, {"x-should-retry": "false", **retry_after_headers(reset_in_s)})
