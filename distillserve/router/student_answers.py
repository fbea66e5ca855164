"""Ask a student backend for its answer and token log-probabilities (for labelled sets and retraining)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import APIError
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.confidence import chunk_logprobs


@dataclass(frozen=True)
class StudentAnswer:
    text: str
    logprobs: list[float]


#: Told each answer's ``usage`` object (cost accounting prices the calls the router makes).
UsageListener = Callable[[dict[str, Any] | None], None]


async def ask(
    backend: Backend,
    messages: list[dict[str, Any]],
    *,
    model: str | None = None,
    max_tokens: int = 64,
    on_usage: UsageListener | None = None,
) -> StudentAnswer:
    """Greedy answer to one conversation, with the log-probability of every generated token."""
    request = ChatCompletionRequest(
        model=model or backend.name, messages=messages, temperature=0.0, max_tokens=max_tokens, logprobs=True
    )
    body = await backend.chat(request, model=model)
    if on_usage is not None:
        on_usage(body.get("usage"))
    choice = body["choices"][0]
    return StudentAnswer((choice.get("message") or {}).get("content") or "", chunk_logprobs(choice))


async def ask_many(
    backend: Backend,
    conversations: Sequence[list[dict[str, Any]]],
    *,
    model: str | None = None,
    max_tokens: int = 64,
    concurrency: int = 16,
    on_usage: UsageListener | None = None,
) -> list[StudentAnswer | APIError]:
    """Answers in input order; ``concurrency`` requests in flight lets a batching engine batch them.
    A conversation the backend failed on (a timeout, a refusal) holds its error instead of failing
    the others: one slow answer must not waste the batch (``all_answered`` when it must)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(messages: list[dict[str, Any]]) -> StudentAnswer | APIError:
        async with gate:
            try:
                return await ask(backend, messages, model=model, max_tokens=max_tokens, on_usage=on_usage)
            except APIError as exc:
                return exc

    return list(await asyncio.gather(*(one(m) for m in conversations)))


def all_answered(settled: Sequence[StudentAnswer | APIError]) -> list[StudentAnswer]:
    """Every answer of ``ask_many``, or its first error raised."""
    for a in settled:
        if isinstance(a, APIError):
            raise a
    return [a for a in settled if isinstance(a, StudentAnswer)]
