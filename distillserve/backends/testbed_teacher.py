"""The testbed teacher: an exact programmatic oracle for the synthetic tasks in
``testbed.tasks`` and the natural-language ones in ``testbed.language`` (word problems,
conversions, date arithmetic, JSON extraction). It is *not* a language model; it exists so
the whole learning loop runs offline and its quality can be measured against exact answers.

On the natural-language tasks it answers in DeepSeek-R1's form: a step-by-step trace, then
the answer (``\\boxed{…}`` or a JSON fence); with ``think_tags`` the trace leads the content
as R1 writes it (``<think>\\n…\\n</think>\\n\\n``), with ``reasoning_content`` it comes
in its own field as DeepSeek's API sends it.

Tokens are characters (the testbed student's tokenizer is character-level too), and
with ``logprobs`` every token gets log-probability 0 (the oracle is certain), which is
what token-level distillation from an exact teacher should see. It can emulate a
reasoning teacher (``<think>`` block or ``reasoning_content`` field) and a slow one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from distillserve.backends.token_stream import Event, Finish, Piece, TokenLogprob, TokenStreamBackend
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest
from distillserve.testbed import language
from distillserve.testbed.tasks import TASKS, parse_prompt

ReasoningFormat = Literal["none", "think_tags", "reasoning_content"]
UNKNOWN = "I can only answer testbed tasks: " + ", ".join([*TASKS, *language.FAMILIES]) + "."
# The synthetic tasks keep their compact block; the natural-language ones R1's own layout.
_THINK_COMPACT = "<think>{trace}</think>{answer}"
_THINK_R1 = "<think>\n{trace}\n</think>\n\n{answer}"


@dataclass(frozen=True)
class Solved:
    answer: str
    trace: str | None
    think_layout: str = _THINK_COMPACT


def solve_prompt(prompt: str) -> Solved:
    """The answer, reasoning trace and think-block layout for a testbed prompt."""
    worked = language.solve(prompt)
    if worked is not None:
        _, solution = worked
        return Solved(solution.answer, "\n".join(solution.steps), _THINK_R1)
    # A task may follow other text (instructions, context): then its line is the last one.
    parsed = parse_prompt(prompt) or parse_prompt(prompt.strip().rsplit("\n", 1)[-1])
    if parsed is None:
        return Solved(UNKNOWN, None)
    task, x = parsed
    answer = task.solve(x)
    return Solved(answer, f"The task is {task.name} on {x!r}, so the answer is {answer!r}.")


def solve(prompt: str) -> tuple[str, str | None]:
    """(answer, reasoning trace) for a testbed prompt."""
    solved = solve_prompt(prompt)
    return solved.answer, solved.trace


def _limit(text: str, limit: int, stops: list[str]) -> tuple[str, str]:
    """The text cut at the first stop string and at ``limit`` tokens, and the finish reason."""
    for s in stops:
        i = text.find(s)
        if i >= 0:
            text = text[:i]
            return text[:limit], "stop" if len(text) <= limit else "length"
    return (text[:limit], "length") if len(text) > limit else (text, "stop")


def _certain(text: str) -> tuple[TokenLogprob, ...]:
    # The oracle is certain of every token (a character): log-probability 0.
    return tuple(TokenLogprob(c, 0.0, ((c, 0.0),)) for c in text)


@dataclass(frozen=True)
class OracleAnswer:
    content: str
    reasoning: str | None
    finish_reason: str
    prompt_tokens: int


class TestbedTeacher(TokenStreamBackend[OracleAnswer]):
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
        solved = solve_prompt(prompt)
        if self.reasoning == "think_tags" and solved.trace:
            return solved.think_layout.format(trace=solved.trace, answer=solved.answer), None
        if self.reasoning == "reasoning_content" and solved.trace:
            return solved.answer, solved.trace
        return solved.answer, None

    async def chat_job(self, request: ChatCompletionRequest, model: str | None) -> OracleAnswer:
        content, reasoning = self._answer(request.last_user_text())
        content, finish = _limit(content, request.token_limit(4096), request.stop_list())
        return OracleAnswer(content, reasoning, finish, len(request.prompt_text()))

    async def completion_job(self, request: CompletionRequest, model: str | None) -> OracleAnswer:
        text, _ = solve(request.prompt_str())
        text, finish = _limit(text, request.token_limit(16), request.stop_list())
        return OracleAnswer(text, None, finish, len(request.prompt_str()))

    async def generate(self, job: OracleAnswer, *, stream: bool) -> AsyncIterator[Event]:
        # A blocking answer waits as long as the stream would have taken, then comes whole.
        first_wait = self.first_token_delay_s + (0.0 if stream else len(job.content) * self.token_delay_s)
        if first_wait > 0:
            await asyncio.sleep(first_wait)
        if job.reasoning:
            yield Piece(reasoning=job.reasoning)
        for c in job.content if stream else [job.content]:
            if stream and self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            yield Piece(c, logprobs=_certain(c))
        yield Finish(job.finish_reason, job.prompt_tokens, len(job.content))

    async def health(self) -> bool:
        return True
