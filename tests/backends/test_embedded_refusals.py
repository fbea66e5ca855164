"""The embedded engine (a real one, on the testbed student) refuses what its text prompt would
drop: tools, structured output, images and other non-text parts get a 400 naming the feature,
blocking and streamed, instead of a 200 that ignored them. A plain request still answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from distillserve.backends.embedded import EmbeddedBackend
from distillserve.config import EmbeddedBackendConfig
from distillserve.protocol.errors import InvalidRequest
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.testbed.student_model import ensure_testbed_student

USER = {"role": "user", "content": "copy: pillow"}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
IMAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "copy: pillow"},
        {"type": "image_url", "image_url": {"url": "data:,"}},
    ],
}
AUDIO = {
    "role": "user",
    "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}],
}


# One engine for the module, on the module's event loop (its worker thread answers into that loop).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def embedded() -> AsyncIterator[EmbeddedBackend]:
    cfg = EmbeddedBackendConfig(name="student", model_path=str(ensure_testbed_student()), threads=1)
    backend = EmbeddedBackend(cfg)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()


def req(**kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "student", "messages": [USER], "max_tokens": 8, **kw}
    )


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"tools": [TOOL]}, "tools", "tool calling"),
        ({"tools": [TOOL], "tool_choice": "none"}, "tools", "tool calling"),
        ({"response_format": {"type": "json_object"}}, "response_format", "structured output"),
        ({"messages": [IMAGE]}, "messages", "image content parts"),
        (
            {
                "messages": [
                    USER,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "42"},
                ]
            },
            "tools",
            "tool calling",
        ),
    ],
)
async def test_features_a_text_prompt_drops_are_refused(
    embedded: EmbeddedBackend, fields: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(InvalidRequest) as blocking:
        await embedded.chat(req(**fields))
    with pytest.raises(InvalidRequest) as streamed:
        await anext(embedded.chat_stream(req(**fields)))
    for err in (blocking.value, streamed.value):
        assert err.status_code == 400 and err.code == "unsupported_feature" and err.param == param
        assert words in err.message and "'student'" in err.message


async def test_other_non_text_parts_are_refused_by_type(embedded: EmbeddedBackend) -> None:
    with pytest.raises(InvalidRequest, match="'input_audio'"):
        await embedded.chat(req(messages=[AUDIO]))


async def test_a_plain_request_still_answers(embedded: EmbeddedBackend) -> None:
    body = await embedded.chat(req(temperature=0, response_format={"type": "text"}))
    assert body["choices"][0]["message"]["content"] == "pillow"
