"""The OpenAI wire format as pydantic models (requests) and builders (responses).

Requests are validated strictly enough to give OpenAI-style 400s with the offending
``param``, yet keep unknown fields (``extra="allow"``) so they pass through to an
upstream OpenAI-compatible server untouched. Responses are plain dicts: they are
built once and serialized with orjson, which keeps the gateway's overhead low.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

NonEmptyStr = Annotated[str, Field(min_length=1)]


def _integral_float(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Requests are validated strictly (``protocol.http.parse_request``), yet JSON Schema counts 2.0 as
# an integer, and so do OpenAI's clients in other languages: an integral float is taken as an int.
# The bounds come before the validator, so the JSON Schema shows them as minimum / maximum.
_Integral = BeforeValidator(_integral_float)
PositiveInt = Annotated[int, Field(ge=1), _Integral]
TopLogprobs = Annotated[int, Field(ge=0, le=20), _Integral]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1), _Integral]  # what engines seed with

#: What a chat request may need beyond plain text; a backend declares which it serves
#: (``supports`` in its config). ``json_schema`` covers both structured ``response_format`` types.
Feature = Literal["tools", "json_schema", "vision"]
FEATURES: tuple[Feature, ...] = ("tools", "json_schema", "vision")


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    """One part of a message's content: ``text``, ``image_url``, or another type passed through."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    image_url: ImageURL | None = None

    @model_validator(mode="after")
    def _image_part_has_url(self) -> ContentPart:
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an image_url part needs an 'image_url' object with a 'url'")
        return self


class FunctionCall(BaseModel):
    """A call the model made: the function's name and its arguments as a JSON string."""

    model_config = ConfigDict(extra="allow")
    name: str
    arguments: str


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: str = "function"
    function: FunctionCall


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema, passed through as sent
    strict: bool | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "function"
    function: FunctionDefinition | None = None

    @model_validator(mode="after")
    def _function_tool_has_function(self) -> Tool:
        if self.type == "function" and self.function is None:
            raise ValueError("a tool of type 'function' needs a 'function' object")
        return self


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "function"
    function: NamedFunction


# What the validators below refuse, said in the JSON Schema as well, so the published document
# (and a fuzzer reading it) knows that such a body is invalid.
_JSON_SCHEMA_NEEDS_A_NAME = {
    "if": {"properties": {"type": {"const": "json_schema"}}, "required": ["type"]},
    "then": {
        "properties": {
            "json_schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        },
        "required": ["json_schema"],
    },
}
_TOOL_TURN_NEEDS_ITS_CALL = {
    "if": {"properties": {"role": {"const": "tool"}}, "required": ["role"]},
    "then": {
        "properties": {"tool_call_id": {"type": "string", "minLength": 1}},
        "required": ["tool_call_id"],
    },
}


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra=_JSON_SCHEMA_NEEDS_A_NAME)
    type: Literal["text", "json_object", "json_schema"]
    # ``{"name", "schema", "strict", "description"}``: kept as a plain dict so it passes through as sent.
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema_has_name(self) -> ResponseFormat:
        if self.type == "json_schema" and not isinstance((self.json_schema or {}).get("name"), str):
            raise ValueError("response_format of type 'json_schema' needs 'json_schema' with a 'name'")
        return self


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra=_TOOL_TURN_NEEDS_ITS_CALL)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None  # the legacy single-function form

    @model_validator(mode="after")
    def _tool_turn_names_its_call(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs 'tool_call_id'")
        return self

    def text(self) -> str:
        """The message's text; non-text parts (images, audio) contribute nothing."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")

    def uses_tools(self) -> bool:
        """A tool call the assistant made, or a tool's result."""
        return self.role in ("tool", "function") or bool(self.tool_calls) or self.function_call is not None

    def part_types(self) -> set[str]:
        return set() if not isinstance(self.content, list) else {p.type for p in self.content}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class SamplingFields(BaseModel):
    """Sampling parameters shared by chat and text completions."""

    model_config = ConfigDict(extra="allow")

    model: str
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: PositiveInt | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: Int64 | None = None
    n: Annotated[int, Field(ge=1, le=1), _Integral] = Field(default=1, description="Only 1 is supported.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> list[str] | None:
        if v is None:
            return None
        stops = [v] if isinstance(v, str) else v  # at most 4: the field's max_length
        return [s for s in stops if s]

    def stop_list(self) -> list[str]:
        return list(self.stop or [])  # type: ignore[arg-type]


# OpenAI refuses top_logprobs without logprobs; said in the schema as well as in the validator.
_TOP_LOGPROBS_NEED_LOGPROBS = {
    "if": {"properties": {"top_logprobs": {"type": "integer", "minimum": 1}}, "required": ["top_logprobs"]},
    "then": {"properties": {"logprobs": {"const": True}}, "required": ["logprobs"]},
}


class ChatCompletionRequest(SamplingFields):
    model_config = ConfigDict(extra="allow", json_schema_extra=_TOP_LOGPROBS_NEED_LOGPROBS)

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: PositiveInt | None = None
    logprobs: bool = False
    top_logprobs: TopLogprobs | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionDefinition] | None = None  # legacy form of ``tools``
    function_call: Literal["none", "auto"] | NamedFunction | None = None  # legacy form of ``tool_choice``
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _top_logprobs_needs_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs=true")
        return self

    def required_features(self) -> frozenset[Feature]:
        """What a backend must serve to answer this request without ignoring part of it."""
        needs: set[Feature] = set()
        if self.tools or self.functions or any(m.uses_tools() for m in self.messages):
            needs.add("tools")
        if self.response_format is not None and self.response_format.type != "text":
            needs.add("json_schema")
        if any("image_url" in m.part_types() for m in self.messages):
            needs.add("vision")
        return frozenset(needs)

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def prompt_text(self) -> str:
        """All user-visible text of the conversation, for scoring and keys."""
        return "\n".join(m.text() for m in self.messages)

    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.role == "user":
                return m.text()
        return ""


class CompletionRequest(SamplingFields):
    # Engines refuse an empty prompt (vLLM: "The decoder prompt cannot be empty"): say so up front.
    prompt: NonEmptyStr | Annotated[list[NonEmptyStr], Field(min_length=1, max_length=1)]
    logprobs: TopLogprobs | None = None
    echo: bool = False
    suffix: str | None = None

    def prompt_str(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def token_limit(self, default: int) -> int:
        return self.max_tokens or default


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_completion(
    *,
    id: str,
    model: str,
    content: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_content: str | None = None,
    logprobs: dict[str, Any] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning_content is not None:
        message["reasoning_content"] = reasoning_content
    return {
        "id": id,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish_reason}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chat_chunk(
    *,
    id: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    logprobs: dict[str, Any] | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One SSE chunk; a usage-only chunk (``delta is None``) has an empty choices list, as OpenAI sends."""
    chunk: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
    }
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk


def text_completion(
    *,
    id: str,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    logprobs: dict[str, Any] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "text_completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def text_chunk(
    *,
    id: str,
    model: str,
    created: int,
    text: str | None,
    finish_reason: str | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": []
        if text is None
        else [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk


def token_logprob(token: str, logprob: float, top: list[tuple[str, float]]) -> dict[str, Any]:
    """One entry of ``choices[0].logprobs.content`` in OpenAI's chat format."""
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top],
    }
