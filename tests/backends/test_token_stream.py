"""The token-stream base: the OpenAI bodies it builds from a backend's pieces.

``Scripted`` is the smallest backend there is: its job is a list of events, which ``generate``
replays. Every assertion is about what the base makes of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from distillserve.backends.token_stream import Event, Finish, Piece, TokenLogprob, TokenStreamBackend
from distillserve.protocol.errors import BackendUnavailable
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest

TOP = (("hi", -0.1), ("ho", -2.5), ("ha", -3.0))
# "hi" then " there" whose text is held back one token (a possible stop string), then the end.
SCRIPT: list[Event] = [
    Piece("hi", logprobs=(TokenLogprob("hi", -0.1, TOP),)),
    Piece("", logprobs=(TokenLogprob(" the", -0.2, ((" the", -0.2),)),)),
    Piece(" there", logprobs=(TokenLogprob("re", -0.3, (("re", -0.3),)),)),
    Finish("length", prompt_tokens=5, completion_tokens=3),
]


class Scripted(TokenStreamBackend[list[Event]]):
    kind = "scripted"

    def __init__(self, script: list[Event], *, reports_logprobs: bool = True) -> None:
        self.name = "scripted"
        self.script = script
        self.reports_logprobs = reports_logprobs  # type: ignore[misc]
        self.closed = False
        self.streamed: list[bool] = []

    async def chat_job(self, request: ChatCompletionRequest, model: str | None) -> list[Event]:
        return self.script

    async def completion_job(self, request: CompletionRequest, model: str | None) -> list[Event]:
        return self.script

    async def generate(self, job: list[Event], *, stream: bool) -> AsyncIterator[Event]:
        self.streamed.append(stream)
        try:
            for event in job:
                if isinstance(event, Exception):
                    raise event
                yield event
        finally:
            self.closed = True

    async def health(self) -> bool:
        return True


def chat_request(**kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="scripted", messages=[{"role": "user", "content": "hey"}], **kw)


def completion_request(**kw: Any) -> CompletionRequest:
    return CompletionRequest(model="scripted", prompt="say: ", **kw)


async def chunks_of(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c async for c in stream]


# -- chat ------------------------------------------------------------------------------------------
async def test_chat_blocking_body() -> None:
    backend = Scripted(SCRIPT)
    body = await backend.chat(chat_request(), model="adapter-1")
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "adapter-1" and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "hi there"}
    assert choice["finish_reason"] == "length" and choice["logprobs"] is None
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert backend.streamed == [False]


async def test_chat_blocking_logprobs_cover_every_token_with_top_cut_to_the_request() -> None:
    body = await Scripted(SCRIPT).chat(chat_request(logprobs=True, top_logprobs=2))
    content = body["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in content] == ["hi", " the", "re"]
    assert content[0]["logprob"] == -0.1 and content[0]["bytes"] == list(b"hi")
    assert [t["token"] for t in content[0]["top_logprobs"]] == ["hi", "ho"]
    assert content[1]["top_logprobs"] == [{"token": " the", "logprob": -0.2, "bytes": list(b" the")}]


async def test_chat_without_backend_logprobs_gives_null() -> None:
    body = await Scripted(SCRIPT, reports_logprobs=False).chat(chat_request(logprobs=True))
    assert body["choices"][0]["logprobs"] is None


async def test_chat_reasoning_content() -> None:
    script: list[Event] = [Piece(reasoning="because"), Piece("42"), Finish("stop", 1, 2)]
    body = await Scripted(script).chat(chat_request())
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "42",
        "reasoning_content": "because",
    }
    chunks = await chunks_of(Scripted(script).chat_stream(chat_request()))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[1:3] == [{"reasoning_content": "because"}, {"content": "42"}]


async def test_chat_stream_order_ids_finish_and_usage_chunk() -> None:
    backend = Scripted(SCRIPT)
    chunks = await chunks_of(backend.chat_stream(chat_request()))
    assert backend.streamed == [True] and backend.closed
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert texts == ["hi", " there"]  # the held-back token makes no chunk of its own
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    # vLLM's usage chunk: no choices; always sent, the gateway drops it when not asked for.
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 8
    assert all("usage" not in c for c in chunks[:-1])


async def test_chat_stream_usage_chunk_is_the_same_when_asked_for() -> None:
    asked = chat_request(stream=True, stream_options={"include_usage": True})
    chunks = await chunks_of(Scripted(SCRIPT).chat_stream(asked))
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_chat_stream_logprobs_ride_with_the_text_they_made() -> None:
    chunks = await chunks_of(Scripted(SCRIPT).chat_stream(chat_request(logprobs=True, top_logprobs=1)))
    with_text = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert [[e["token"] for e in ch["logprobs"]["content"]] for ch in with_text] == [["hi"], [" the", "re"]]
    assert len(with_text[0]["logprobs"]["content"][0]["top_logprobs"]) == 1


async def test_stream_of_an_empty_answer() -> None:
    chunks = await chunks_of(Scripted([Finish("stop", 2, 0)]).chat_stream(chat_request()))
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [{"role": "assistant", "content": ""}, {}]
    assert chunks[-1]["usage"]["completion_tokens"] == 0


async def test_a_failing_backend_fails_before_the_first_chunk() -> None:
    backend = Scripted([BackendUnavailable("down")])  # type: ignore[list-item]
    stream = backend.chat_stream(chat_request())
    with pytest.raises(BackendUnavailable):
        await anext(stream)


async def test_a_client_that_leaves_closes_the_generation() -> None:
    backend = Scripted(SCRIPT)
    stream = backend.chat_stream(chat_request())
    await anext(stream)
    await anext(stream)
    assert not backend.closed
    await stream.aclose()
    assert backend.closed


async def test_a_generation_without_finish_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="Finish"):
        await Scripted([Piece("x")]).chat(chat_request())
    with pytest.raises(RuntimeError, match="Finish"):
        await chunks_of(Scripted([Piece("x")]).completion_stream(completion_request()))


# -- text completions ------------------------------------------------------------------------------
async def test_completion_blocking_body_with_echo_and_logprobs() -> None:
    body = await Scripted(SCRIPT).completion(completion_request(echo=True, logprobs=1))
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    choice = body["choices"][0]
    assert choice["text"] == "say: hi there" and choice["finish_reason"] == "length"
    assert choice["logprobs"] == {
        "tokens": ["hi", " the", "re"],
        "token_logprobs": [-0.1, -0.2, -0.3],
        "top_logprobs": [{"hi": -0.1}, {" the": -0.2}, {"re": -0.3}],
        "text_offset": [5, 7, 11],  # after the echoed prompt
    }
    assert body["usage"]["total_tokens"] == 8


async def test_completion_without_logprobs() -> None:
    body = await Scripted(SCRIPT).completion(completion_request())
    assert body["choices"][0]["text"] == "hi there" and body["choices"][0]["logprobs"] is None


async def test_completion_stream() -> None:
    chunks = await chunks_of(Scripted(SCRIPT).completion_stream(completion_request(logprobs=0)))
    assert {c["object"] for c in chunks} == {"text_completion"} and len({c["id"] for c in chunks}) == 1
    texts = [c["choices"][0] for c in chunks[:-2]]
    assert [t["text"] for t in texts] == ["hi", " there"]
    assert texts[1]["logprobs"]["tokens"] == [" the", "re"] and texts[1]["logprobs"]["text_offset"] == [2, 6]
    assert texts[0]["logprobs"]["top_logprobs"] == [{}]
    assert chunks[-2]["choices"][0]["text"] == "" and chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 5
