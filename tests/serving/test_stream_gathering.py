"""Streams gathered for the teacher log: every provider's stream fixture reassembles into the
answer the official ``openai`` SDK reads from it (reasoning and tool-call deltas included)."""

from __future__ import annotations

import pytest

from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.serving.stream_gathering import StreamState, ToolCallAssembler
from distillserve.teacher_log.answer import AnswerOrigin
from tests.support.fixture_teacher import FIXTURES
from tests.support.provider_fixtures import expected_answer, provider_fixtures, stream_chunks, without_nulls

STREAMS = [name for name in provider_fixtures() if name.endswith(".sse")]
ORIGIN = AnswerOrigin(teacher_model="teacher", teacher_backend="openai", route="teacher")
REQUEST = ChatCompletionRequest(model="teacher", messages=[{"role": "user", "content": "hi"}], stream=True)


def test_every_provider_has_streams() -> None:
    assert {name.split("/")[0] for name in STREAMS} == {"deepseek", "openai", "vllm"}


@pytest.mark.parametrize("name", STREAMS)
def test_stream_reassembles_like_the_sdk_reads_it(name: str) -> None:
    state = StreamState()
    for chunk in stream_chunks((FIXTURES / name).read_bytes()):
        state.gather(chunk, chat=True)
    record = state.teacher_answer(REQUEST, ORIGIN).to_record()
    want = expected_answer(name)
    assert record.request_id == want.response_id
    assert record.response_text == want.text
    assert record.reasoning_content == want.reasoning
    assert record.finish_reason == want.finish_reason
    assert record.usage.model_dump(exclude_none=True) == without_nulls(want.usage)
    assert [(t.id, t.function.name, t.function.arguments) for t in record.tool_calls or []] == want.tool_calls
    assert record.system_fingerprint == want.system_fingerprint


def test_parallel_tool_call_deltas_interleaved_by_index() -> None:
    calls = ToolCallAssembler()
    calls.add([{"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": ""}}])
    calls.add([{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{"}}])
    calls.add([{"index": 1, "function": {"arguments": "{}"}}, {"index": 0, "function": {"arguments": "}"}}])
    assert calls.calls() == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]


def test_choices_other_than_the_first_are_not_mixed_in() -> None:
    state = StreamState()
    state.gather({"id": "x", "choices": [{"index": 1, "delta": {"content": "other"}}]}, chat=True)
    state.gather(
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "mine"}, "finish_reason": "stop"}]},
        chat=True,
    )
    assert state.text == "mine" and state.finish_reason == "stop"
