"""The testbed teacher: an exact programmatic oracle for the synthetic tasks in
``testbed.tasks``. It is *not* a language model; it exists so the whole learning loop
runs offline and its quality can be measured against exact answers.

Tokens are characters (the testbed student's tokenizer is character-level too), and
with ``logprobs`` every token gets log-probability 0 (the oracle is certain), which is
what token-level distillation from an exact teacher should see. It can emulate a
reasoning teacher (``<think>`` block or ``reasoning_content`` field) and a slow one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from distillserve.protocol.backend import Backend
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
from distillserve.testbed.tasks import TASKS, parse_prompt

ReasoningFormat = Literal["none", "think_tags", "reasoning_content"]
UNKNOWN = "I can only answer testbed tasks: " + ", ".join(TASKS) + "."


def solve(prompt: str) -> tuple[str, str | None]:
    """(answer, reasoning trace) for a testbed prompt."""
    # A task may follow other text (instructions, context): then its line is the last one.
    parsed = parse_prompt(prompt) or parse_prompt(prompt.strip().rsplit("\n", 1)[-1])
    if parsed is None:
        return UNKNOWN, None
    task, x = parsed
    answer = task.solve(x)
    return answer, f"The task is {task.name} on {x!r}, so the answer is {answer!r}."


class TestbedTeacher(Backend):
    kind = "testbed"

    def __init__(
        self,
        name: str = "teacher",
        *,
        reasoning: ReasoningFormat = "none",
        first_token_delay_s: float = 0.0,
        token_delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self.reasoning = reasoning
        self.first_token_delay_s = first_token_delay_s
        self.token_delay_s = token_delay_s

    def _answer(self, prompt: str) -> tuple[str, str | None]:
        answer, trace = solve(prompt)
        if self.reasoning == "think_tags" and trace:
            return f"<think>{trace}</think>{answer}", None
        if self.reasoning == "reasoning_content" and trace:
            return answer, trace
        return answer, None

    @staticmethod
    def _limit(text: str, limit: int, stops: list[str]) -> tuple[str, str]:
        for s in stops:
            i = text.find(s)
            if i >= 0:
                text = text[:i]
                return text[:limit], "stop" if len(text) <= limit else "length"
        return (text[:limit], "length") if len(text) > limit else (text, "stop")

    @staticmethod
    def _logprobs(text: str, top: int) -> dict[str, Any]:
        return {"content": [token_logprob(c, 0.0, [(c, 0.0)][:top] if top else []) for c in text]}

    async def _delay(self, n_tokens: int) -> None:
        d = self.first_token_delay_s + n_tokens * self.token_delay_s
        if d > 0:
            await asyncio.sleep(d)

    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        content, reasoning = self._answer(request.last_user_text())
        content, finish = self._limit(content, request.token_limit(4096), request.stop_list())
        await self._delay(len(content))
        lp = self._logprobs(content, request.top_logprobs or 0) if request.logprobs else None
        return chat_completion(
            id=new_id("chatcmpl"),
            model=model or self.name,
            content=content,
            reasoning_content=reasoning,
            finish_reason=finish,
            prompt_tokens=len(request.prompt_text()),
            completion_tokens=len(content),
            logprobs=lp,
        )

    async def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        content, reasoning = self._answer(request.last_user_text())
        content, finish = self._limit(content, request.token_limit(4096), request.stop_list())
        cid, created, m = new_id("chatcmpl"), int(time.time()), model or self.name
        if self.first_token_delay_s:
            await asyncio.sleep(self.first_token_delay_s)
        yield chat_chunk(id=cid, model=m, created=created, delta={"role": "assistant", "content": ""})
        if reasoning:
            yield chat_chunk(id=cid, model=m, created=created, delta={"reasoning_content": reasoning})
        top = request.top_logprobs or 0
        for c in content:
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            lp = self._logprobs(c, top) if request.logprobs else None
            yield chat_chunk(id=cid, model=m, created=created, delta={"content": c}, logprobs=lp)
        yield chat_chunk(id=cid, model=m, created=created, delta={}, finish_reason=finish)
        if request.stream_options and request.stream_options.include_usage:
            yield chat_chunk(
                id=cid, model=m, created=created, usage_=usage(len(request.prompt_text()), len(content))
            )

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        text, _ = solve(request.prompt_str())
        text, finish = self._limit(text, request.token_limit(16), request.stop_list())
        await self._delay(len(text))
        return text_completion(
            id=new_id("cmpl"),
            model=model or self.name,
            text=text,
            finish_reason=finish,
            prompt_tokens=len(request.prompt_str()),
            completion_tokens=len(text),
        )

    async def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        text, _ = solve(request.prompt_str())
        text, finish = self._limit(text, request.token_limit(16), request.stop_list())
        cid, created, m = new_id("cmpl"), int(time.time()), model or self.name
        if self.first_token_delay_s:
            await asyncio.sleep(self.first_token_delay_s)
        for c in text:
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            yield text_chunk(id=cid, model=m, created=created, text=c)
        yield text_chunk(id=cid, model=m, created=created, text="", finish_reason=finish)
        if request.stream_options and request.stream_options.include_usage:
            yield text_chunk(
                id=cid,
                model=m,
                created=created,
                text=None,
                usage_=usage(len(request.prompt_str()), len(text)),
            )

    async def health(self) -> bool:
        return True
