"""A base for backends whose answer is a stream of text pieces: the in-process engine,
Triton, the testbed oracle.

A subclass maps a request to its own job (``chat_job`` / ``completion_job``: prompt,
sampling parameters, adapter) and implements ``generate``: an async iterator of ``Piece``s
ending with one ``Finish``. This base writes the OpenAI side once for all of them: blocking
and streaming, chat and completions, ``chat.completion`` / ``chat.completion.chunk`` /
``text_completion`` bodies, logprobs in both shapes, usage, finish reasons, ids.

Usage: every stream ends with the chunk vLLM's OpenAI server sends when
``stream_options.include_usage`` is set (``choices: []`` and ``usage``), whether or not this
request asked for it. The gateway counts tokens and logs teacher usage from that chunk and
drops it before the client when the client did not ask (``Gateway.relay``), as it does for the
HTTP backends, which always ask their upstream for usage.
"""

from __future__ import annotations

import functools
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import InvalidRequest
from distillserve.protocol.features import refuse_unsupported
from distillserve.protocol.schema import (
    ChatCompletionRequest,
    CompletionRequest,
    chat_chunk,
    chat_completion,
    new_id,
    text_chunk,
    text_completion,
    token_logprob,
    usage,
)

JobT = TypeVar("JobT")


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token and its log-probability, with the most likely alternatives."""

    token: str
    logprob: float
    top: Sequence[tuple[str, float]] = ()


@dataclass(frozen=True)
class Piece:
    """What the answer grows by: text to show, reasoning (``reasoning_content``), and the
    logprobs of the tokens generated since the last piece (text may lag behind its tokens)."""

    text: str = ""
    reasoning: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Finish:
    """The last event of every generation."""

    reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


Event = Piece | Finish


@dataclass
class _Answer:
    """A whole generation, for blocking responses."""

    text: str
    reasoning: str | None
    logprobs: list[TokenLogprob]
    finish: Finish


def chat_logprobs(tokens: Sequence[TokenLogprob], top: int) -> dict[str, Any]:
    """``choices[0].logprobs`` of a chat answer or chunk."""
    return {"content": [token_logprob(t.token, t.logprob, list(t.top[:top])) for t in tokens]}


def completion_logprobs(tokens: Sequence[TokenLogprob], top: int, offset: int = 0) -> dict[str, Any]:
    """The legacy completions shape: parallel lists of tokens, logprobs, top maps, text offsets."""
    offsets, pos = [], offset
    for t in tokens:
        offsets.append(pos)
        pos += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top[:top]) for t in tokens],
        "text_offset": offsets,
    }


async def _collect(events: AsyncIterator[Event]) -> _Answer:
    texts: list[str] = []
    thoughts: list[str] = []
    logprobs: list[TokenLogprob] = []
    async with aclosing(events):
        async for event in events:
            if isinstance(event, Finish):
                return _Answer("".join(texts), "".join(thoughts) or None, logprobs, event)
            texts.append(event.text)
            thoughts.append(event.reasoning)
            logprobs.extend(event.logprobs)
    raise RuntimeError("a generation ended without its Finish event")


async def _events(events: AsyncIterator[Event], first: Event | None) -> AsyncIterator[Event]:
    """``first`` (already read) and the rest, up to the Finish; closes ``events`` when done."""
    async with aclosing(events):
        event = first
        while event is not None:
            yield event
            if isinstance(event, Finish):
                return
            event = await anext(events, None)
    raise RuntimeError("a generation ended without its Finish event")


class TokenStreamBackend(Backend, Generic[JobT]):
    """A backend that implements ``generate``; the OpenAI bodies are built here."""

    #: False for backends whose server gives no logprobs: requests asking for them get ``null``.
    reports_logprobs: ClassVar[bool] = True

    @abstractmethod
    async def chat_job(self, request: ChatCompletionRequest, model: str | None) -> JobT:
        """The backend's own job for a chat request (render the prompt, map sampling, adapter)."""

    @abstractmethod
    async def completion_job(self, request: CompletionRequest, model: str | None) -> JobT:
        """The backend's own job for a text completion request."""

    @abstractmethod
    def generate(self, job: JobT, *, stream: bool) -> AsyncIterator[Event]:
        """``Piece``s, then one ``Finish``. ``stream=False`` lets a backend send fewer, larger pieces."""

    async def _first(self, job: JobT) -> AsyncIterator[Event]:
        # Read the first event before any chunk is built, so a dead backend fails the
        # request (with a proper status, or a fallback) before anything reaches the client.
        events = self.generate(job, stream=True)
        first = await anext(events, None)
        return _events(events, first)

    def _refuse_what_a_text_prompt_drops(self, request: ChatCompletionRequest, model: str | None) -> None:
        """The prompt is rendered as text: tools, response formats, images and other non-text parts
        would be dropped from it, so a request that needs them is refused, never half-answered."""
        refuse_unsupported(request, self.supports, model or self.name)
        other = sorted({t for m in request.messages for t in m.part_types()} - {"text"})
        if other:
            raise InvalidRequest(
                f"The model '{model or self.name}' reads text only: content parts of type "
                f"{', '.join(repr(t) for t in other)} cannot be served.",
                param="messages",
                code="unsupported_feature",
            )

    # -- chat -------------------------------------------------------------------------------------
    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        self._refuse_what_a_text_prompt_drops(request, model)
        answer = await _collect(self.generate(await self.chat_job(request, model), stream=False))
        logprobs = None
        if request.logprobs and self.reports_logprobs:
            logprobs = chat_logprobs(answer.logprobs, request.top_logprobs or 0)
        return chat_completion(
            id=new_id("chatcmpl"),
            model=model or self.name,
            content=answer.text,
            reasoning_content=answer.reasoning,
            finish_reason=answer.finish.reason,
            prompt_tokens=answer.finish.prompt_tokens,
            completion_tokens=answer.finish.completion_tokens,
            logprobs=logprobs,
        )

    async def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        self._refuse_what_a_text_prompt_drops(request, model)
        events = await self._first(await self.chat_job(request, model))
        chunk = functools.partial(
            chat_chunk, id=new_id("chatcmpl"), model=model or self.name, created=int(time.time())
        )
        want_logprobs = request.logprobs and self.reports_logprobs
        yield chunk(delta={"role": "assistant", "content": ""})
        pending: list[TokenLogprob] = []  # tokens whose text is still held back
        async with aclosing(events):  # a client that leaves stops the generation now
            async for event in events:
                if isinstance(event, Finish):
                    yield chunk(delta={}, finish_reason=event.reason)
                    yield chunk(usage_=usage(event.prompt_tokens, event.completion_tokens))
                    return
                pending.extend(event.logprobs)
                if event.reasoning:
                    yield chunk(delta={"reasoning_content": event.reasoning})
                if event.text:
                    lp = chat_logprobs(pending, request.top_logprobs or 0) if want_logprobs else None
                    yield chunk(delta={"content": event.text}, logprobs=lp)
                    pending = []

    # -- text completions -------------------------------------------------------------------------
    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        answer = await _collect(self.generate(await self.completion_job(request, model), stream=False))
        prefix = request.prompt_str() if request.echo else ""
        logprobs = None
        if request.logprobs is not None and self.reports_logprobs:
            logprobs = completion_logprobs(answer.logprobs, request.logprobs, len(prefix))
        return text_completion(
            id=new_id("cmpl"),
            model=model or self.name,
            text=prefix + answer.text,
            finish_reason=answer.finish.reason,
            prompt_tokens=answer.finish.prompt_tokens,
            completion_tokens=answer.finish.completion_tokens,
            logprobs=logprobs,
        )

    async def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        events = await self._first(await self.completion_job(request, model))
        chunk = functools.partial(
            text_chunk, id=new_id("cmpl"), model=model or self.name, created=int(time.time())
        )
        want_logprobs = request.logprobs is not None and self.reports_logprobs
        pending: list[TokenLogprob] = []
        offset = 0
        async with aclosing(events):
            async for event in events:
                if isinstance(event, Finish):
                    yield chunk(text="", finish_reason=event.reason)
                    yield chunk(text=None, usage_=usage(event.prompt_tokens, event.completion_tokens))
                    return
                pending.extend(event.logprobs)
                if event.text:
                    out = chunk(text=event.text)
                    if want_logprobs:
                        out["choices"][0]["logprobs"] = completion_logprobs(
                            pending, request.logprobs or 0, offset
                        )
                    offset += len(event.text)
                    pending = []
                    yield out
