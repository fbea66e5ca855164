"""The teacher asked for its top-k logprobs on every call, and the client's answer cut back to
what it asked for. The refusal memory against DeepSeek's reasoner 400 over real HTTP is in
``tests/serving/test_capabilities.py``; here the parts that need no server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from distillserve.backends.openai_http import OpenAIHTTPBackend
from distillserve.backends.teacher_logprobs import LogprobsAskingBackend, asking_logprobs
from distillserve.config import OpenAIBackendConfig
from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import BackendRejected
from distillserve.protocol.logprobs import fit_logprobs
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest
from tests.support.metrics import sample
from tests.support.reference_teacher import reference_teacher


def chat(**kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "t", "messages": [{"role": "user", "content": "hi"}], **kw}
    )


def entry(token: str, n: int) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": -0.1,
        "bytes": [],
        "top_logprobs": [{"token": f"{token}{i}", "logprob": -0.1 - i, "bytes": []} for i in range(n)],
    }


class RejectsEverything(Backend):
    """Fault injection: an upstream that answers 400 to every request, logprobs or not (a request
    that is bad on its own), which no reference server does on demand."""

    name, kind = "teacher", "openai"

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        self.calls.append(request)
        raise BackendRejected(f"bad request #{len(self.calls)}", status_code=400)

    def chat_stream(self, request: ChatCompletionRequest, *, model: str | None = None) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def health(self) -> bool:
        return True


def test_what_is_asked() -> None:
    teacher = LogprobsAskingBackend(RejectsEverything(), 5)
    asked = teacher.asked(chat())
    assert asked is not None and (asked.logprobs, asked.top_logprobs) == (True, 5)
    assert teacher.asked(chat(logprobs=True, top_logprobs=8)) is None  # already asks for more
    assert teacher.asked(chat(logprobs=True, top_logprobs=2)).top_logprobs == 5  # type: ignore[union-attr]
    text = CompletionRequest.model_validate({"model": "t", "prompt": "hi"})
    assert teacher.asked(text).logprobs == 5  # type: ignore[union-attr]
    assert asking_logprobs(teacher.inner, 0) is teacher.inner
    with pytest.raises(ValueError, match=r"\[1, 20\]"):
        LogprobsAskingBackend(teacher.inner, 21)


async def test_a_bad_request_is_not_taken_for_a_refusal(fresh_metrics: CollectorRegistry) -> None:
    inner = RejectsEverything()
    teacher = LogprobsAskingBackend(inner, 5)
    with pytest.raises(BackendRejected, match="#2"):  # the retry's own error, as the client sent it
        await teacher.chat(chat())
    assert [c.logprobs for c in inner.calls] == [True, False]
    assert not teacher.refused
    assert sample(fresh_metrics, "distillserve_teacher_logprobs_refused_total", backend="openai") == 0


async def test_a_refusing_teacher_over_http_is_asked_without_from_then_on(
    fresh_metrics: CollectorRegistry,
) -> None:
    with reference_teacher(refuse_logprobs=True) as reasoner:
        backend = OpenAIHTTPBackend(OpenAIBackendConfig(name="teacher", url=reasoner.url))
        teacher = LogprobsAskingBackend(backend, 5)
        try:
            for _ in range(2):
                body = await teacher.chat(chat())
                assert body["choices"][0]["logprobs"] is None
            assert [c async for c in teacher.chat_stream(chat(stream=True))]
        finally:
            await backend.aclose()
    assert ["top_logprobs" in r for r in reasoner.requests] == [True, False, False, False]
    assert teacher.refused
    assert sample(fresh_metrics, "distillserve_teacher_logprobs_refused_total", backend="openai") == 1


def test_chat_logprobs_are_cut_to_the_clients_ask() -> None:
    original = {"content": [entry("a", 5), entry("b", 5)], "refusal": None}
    choice = {"logprobs": original}
    fit_logprobs(choice, chat())
    assert choice["logprobs"] is None
    choice = {"logprobs": original}
    fit_logprobs(choice, chat(logprobs=True, top_logprobs=2))
    assert [[t["token"] for t in e["top_logprobs"]] for e in choice["logprobs"]["content"]] == [
        ["a0", "a1"],
        ["b0", "b1"],
    ]
    assert choice["logprobs"]["refusal"] is None
    assert all(len(e["top_logprobs"]) == 5 for e in original["content"])  # the teacher log's copy is intact
    choice = {"logprobs": original}
    fit_logprobs(choice, chat(logprobs=True, top_logprobs=5))
    assert choice["logprobs"] is original


def test_completion_logprobs_are_cut_to_the_clients_ask() -> None:
    lp = {
        "tokens": ["a"],
        "token_logprobs": [-0.1],
        "top_logprobs": [{"x": -3.0, "a": -0.1, "y": -2.0}],
        "text_offset": [0],
    }
    choice = {"logprobs": lp}
    fit_logprobs(choice, CompletionRequest.model_validate({"model": "t", "prompt": "p", "logprobs": 2}))
    assert choice["logprobs"]["top_logprobs"] == [{"a": -0.1, "y": -2.0}]
    choice = {"logprobs": lp}
    fit_logprobs(choice, CompletionRequest.model_validate({"model": "t", "prompt": "p"}))
    assert choice["logprobs"] is None
