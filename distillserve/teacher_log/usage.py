"""Parts of a teacher's answer as providers send them: token usage and tool calls.

Known fields are typed; fields we do not know are kept as sent (``extra="allow"``), so a
provider adding a counter never costs a record. Every nested object may be ``null``: vLLM's
OpenAI server sends ``"prompt_tokens_details": null``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, NonNegativeInt


class _AsSent(BaseModel):
    model_config = ConfigDict(extra="allow")


class PromptTokensDetails(_AsSent):
    """OpenAI: ``cached_tokens`` (prompt caching), ``audio_tokens``."""

    cached_tokens: NonNegativeInt | None = None
    audio_tokens: NonNegativeInt | None = None


class CompletionTokensDetails(_AsSent):
    """OpenAI and DeepSeek: ``reasoning_tokens``; OpenAI also audio and predicted-output counts."""

    reasoning_tokens: NonNegativeInt | None = None
    audio_tokens: NonNegativeInt | None = None
    accepted_prediction_tokens: NonNegativeInt | None = None
    rejected_prediction_tokens: NonNegativeInt | None = None


class Usage(_AsSent):
    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    total_tokens: NonNegativeInt | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    # DeepSeek's context caching: prompt tokens served from / missing the cache.
    prompt_cache_hit_tokens: NonNegativeInt | None = None
    prompt_cache_miss_tokens: NonNegativeInt | None = None

    @property
    def reasoning_tokens(self) -> int | None:
        details = self.completion_tokens_details
        return details.reasoning_tokens if details is not None else None


class ToolCallFunction(_AsSent):
    name: str
    # A JSON document as a string, exactly as the model wrote it (it may not parse: it is kept anyway).
    arguments: str = ""


class ToolCall(_AsSent):
    id: str | None = None
    type: str = "function"
    function: ToolCallFunction
