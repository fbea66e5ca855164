"""What the OpenAI-compatible backend sends upstream: the client's request as sent (tools,
tool_choice, tool turns with their ``content: null``, response_format, image parts, a JSON
schema's nulls), with only ``model`` and ``stream`` set, over real HTTP to the reference teacher.
And how a request is checked on the way in: OpenAI's shapes validate, broken ones are 400s that
name the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from distillserve.backends.openai_http import OpenAIHTTPBackend
from distillserve.config import OpenAIBackendConfig, VLLMBackendConfig, backend_config
from distillserve.protocol.errors import InvalidRequest
from distillserve.protocol.http import parse_request
from distillserve.protocol.schema import ChatCompletionRequest
from tests.support.reference_teacher import ReferenceTeacher, reference_teacher

BODY: dict[str, Any] = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": ["string", "null"], "default": None}},
                },
                "strict": False,
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
    "temperature": 0.2,
    "metadata": {"unmodelled": ["fields", "pass", None]},
}


@pytest.fixture
def teacher() -> Iterator[ReferenceTeacher]:
    with reference_teacher() as t:
        yield t


async def test_the_request_reaches_the_upstream_as_the_client_sent_it(teacher: ReferenceTeacher) -> None:
    backend = OpenAIHTTPBackend(OpenAIBackendConfig(name="teacher", url=teacher.url, upstream_model="gpt-x"))
    request = parse_request(orjson.dumps(BODY), ChatCompletionRequest)
    try:
        await backend.chat(request)
        assert [c async for c in backend.chat_stream(request)]
    finally:
        await backend.aclose()
    blocking, streamed = teacher.requests
    assert blocking == {**BODY, "model": "gpt-x", "stream": False}
    assert streamed == {**BODY, "model": "gpt-x", "stream": True, "stream_options": {"include_usage": True}}


def test_the_features_a_request_needs() -> None:
    request = ChatCompletionRequest.model_validate(BODY)
    assert request.required_features() == {"tools", "json_schema", "vision"}
    plain = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "text"}}
    )
    assert plain.required_features() == frozenset()
    legacy = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "functions": [{"name": "f"}]}
    )
    assert legacy.required_features() == {"tools"}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": [{"role": "tool", "content": "rain"}]}, "messages[0]"),
        ({"tools": [{"type": "function"}]}, "tools[0]"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
    ],
)
def test_broken_shapes_are_400s_naming_the_field(change: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_request(orjson.dumps({**BODY, **change}), ChatCompletionRequest)
    assert err.value.status_code == 400 and (err.value.param or "").startswith(param)


def test_what_each_backend_kind_serves_by_default() -> None:
    assert OpenAIBackendConfig(name="t", url="http://x/v1").capabilities == {"tools", "json_schema", "vision"}
    assert VLLMBackendConfig(name="s", url="http://x/v1").capabilities == frozenset()
    assert VLLMBackendConfig(name="s", url="http://x/v1", supports=["json_schema"]).capabilities == {
        "json_schema"
    }
    assert backend_config({"kind": "embedded", "name": "s"}).capabilities == frozenset()
    with pytest.raises(ValueError, match=r"'supports' .*does not belong to kind embedded"):
        backend_config({"kind": "embedded", "name": "s", "supports": ["tools"]})
    with pytest.raises(ValueError, match="supports"):
        backend_config({"kind": "openai", "name": "t", "supports": ["telepathy"]})
    with pytest.raises(ValueError, match="top_logprobs"):
        backend_config({"kind": "openai", "name": "t", "top_logprobs": 21})
