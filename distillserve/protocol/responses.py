"""The OpenAI response shapes as pydantic models, for the OpenAPI document and for tests.

The gateway builds its responses as plain dicts (``protocol.schema``) and serializes them with
orjson; these models describe the same bodies, field by field, as OpenAI's API reference defines
``chat.completion``, ``chat.completion.chunk``, ``text_completion``, the model list and the error
object. Every object allows extra fields (``extra="allow"``): answers relayed from an upstream
(vLLM adds ``stop_reason``, DeepSeek ``prompt_cache_hit_tokens``) keep what the upstream sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorObject(_Open):
    message: str = Field(description="Human-readable description of the error.")
    type: str = Field(description="invalid_request_error, server_error, ...")
    param: str | None = Field(description="The request parameter at fault, if any.")
    code: str | None = Field(description="Machine-readable code, e.g. invalid_api_key, model_not_found.")


class ErrorResponse(_Open):
    """Every failure, whatever its status (OpenAI's error object)."""

    error: ErrorObject


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class TopLogprob(_Open):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatChoiceLogprobs(_Open):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class ChatCompletionMessage(_Open):
    role: Literal["assistant"]
    content: str | None
    reasoning_content: str | None = Field(
        default=None, description="The reasoning trace (DeepSeek reasoner, vLLM's reasoning parser)."
    )
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatCompletionChoice(_Open):
    index: int
    message: ChatCompletionMessage
    logprobs: ChatChoiceLogprobs | None = None
    finish_reason: str | None = Field(description="stop, length, tool_calls, content_filter, ...")


class ChatCompletion(_Open):
    """A blocking chat answer (``stream`` false)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ChatCompletionDelta(_Open):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatCompletionChunkChoice(_Open):
    index: int
    delta: ChatCompletionDelta
    logprobs: ChatChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """One ``data:`` event of a chat stream. The last one carries ``usage`` and no choices when
    ``stream_options.include_usage`` is asked."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class TextLogprobs(_Open):
    tokens: list[str] | None = None
    token_logprobs: list[float | None] | None = None
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] | None = None


class TextCompletionChoice(_Open):
    index: int
    text: str
    logprobs: TextLogprobs | None = None
    finish_reason: str | None


class TextCompletion(_Open):
    """A legacy completion, blocking or one ``data:`` event of its stream (the same object)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextCompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class Model(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Open):
    object: Literal["list"]
    data: list[Model]


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorResponse,
    ChatCompletion,
    ChatCompletionChunk,
    TextCompletion,
    ModelList,
)
