"""What a model's tokens cost, in US dollars per million tokens, as providers publish them: input
(a cache miss), cached input (a prompt-cache hit) and output (reasoning tokens included: DeepSeek
and OpenAI bill them as output).

    pricing:
      models:
        deepseek-reasoner: {input_per_million: 0.56, cached_input_per_million: 0.07, output_per_million: 1.68}
        my-student: {input_per_million: 0.02, output_per_million: 0.02}   # self-hosted compute
      teacher_model: deepseek-reasoner   # prices the teacher route; default: the teacher's model
      student_model: my-student          # prices the student route; default: free (none)

The defaults below were read from the providers' pricing pages; prices change, so a deployment
sets its own. DeepSeek: https://api-docs.deepseek.com/quick_start/pricing (the list in force from
2025-09-05 16:00 UTC; deepseek-chat and deepseek-reasoner share one price). OpenAI:
https://openai.com/api/pricing (gpt-4o, gpt-4o-mini), as listed in 2025. Read 2026-12-03.
"""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat

from distillserve.config.strict_model import StrictModel

_MILLION = 1_000_000


class ModelPrice(StrictModel):
    input_per_million: NonNegativeFloat
    # A prompt-cache hit; None: the provider has no cache discount (the input price).
    cached_input_per_million: NonNegativeFloat | None = None
    output_per_million: NonNegativeFloat

    def cost_usd(self, prompt_tokens: int, cached_tokens: int, completion_tokens: float) -> float:
        """``cached_tokens`` are part of ``prompt_tokens`` (as OpenAI and DeepSeek count them); an
        estimate (the savings' expected teacher length) may count completion tokens in fractions."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_rate = (
            self.input_per_million if self.cached_input_per_million is None else self.cached_input_per_million
        )
        return (
            (prompt_tokens - cached) * self.input_per_million
            + cached * cached_rate
            + completion_tokens * self.output_per_million
        ) / _MILLION


def _deepseek() -> ModelPrice:
    return ModelPrice(input_per_million=0.56, cached_input_per_million=0.07, output_per_million=1.68)


def default_prices() -> dict[str, ModelPrice]:
    return {
        "deepseek-reasoner": _deepseek(),
        "deepseek-chat": _deepseek(),
        "gpt-4o": ModelPrice(input_per_million=2.50, cached_input_per_million=1.25, output_per_million=10.00),
        "gpt-4o-mini": ModelPrice(
            input_per_million=0.15, cached_input_per_million=0.075, output_per_million=0.60
        ),
    }


class PricingConfig(StrictModel):
    models: dict[str, ModelPrice] = Field(default_factory=default_prices)
    # The entry that prices the teacher route (and the savings estimate); None: the teacher
    # backend's served model, looked up in ``models``.
    teacher_model: str | None = None
    # The entry that prices the student route; None: the student costs nothing per token (its
    # compute is paid for anyway). Set one to charge self-hosted compute per token.
    student_model: str | None = None

    def price(self, model: str | None) -> ModelPrice | None:
        return self.models.get(model) if model is not None else None
