"""The judge as a Grader: two orders per pair, cached, bounded, metered (see ``judge``)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx

from distillserve.grading.grade import Grade, Grader
from distillserve.grading.judge import (
    JudgeEndpoint,
    JudgeError,
    JudgeMeter,
    NoMeter,
    Preference,
    VerdictCache,
    judge_messages,
    parse_preference,
)
from distillserve.grading.text import answer_text


class JudgeGrader(Grader):
    name = "judge"

    def __init__(
        self,
        endpoint: JudgeEndpoint,
        *,
        max_concurrency: int = 4,
        cache_size: int = 10_000,
        max_tokens: int = 512,
        max_answer_chars: int = 4000,
        threshold: float = 1.0,
        meter: JudgeMeter | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.max_concurrency = max_concurrency
        self.max_tokens = max_tokens
        self.max_answer_chars = max_answer_chars
        self.threshold = threshold
        self.meter: JudgeMeter = meter or NoMeter()
        self.cache = VerdictCache(cache_size)
        # One semaphore per event loop: asyncio primitives belong to the loop that first waits on them.
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def grade(self, prompt: str, reference: str, candidate: str) -> Grade:
        """Blocking form, for code outside an event loop (inside one, await ``agrade``)."""
        return asyncio.run(self.agrade(prompt, reference, candidate))

    async def agrade(self, prompt: str, reference: str, candidate: str) -> Grade:
        ref, cand = self._shown(reference), self._shown(candidate)
        # Both orders run to the end before a failure is raised: no call is left running unawaited
        # (and uncounted) behind the error.
        both = await asyncio.gather(
            self.prefer(prompt, ref, cand), self.prefer(prompt, cand, ref), return_exceptions=True
        )
        for outcome in both:
            if isinstance(outcome, BaseException):
                raise outcome
        ref_first, cand_first = both
        score = (ref_first in ("B", "tie")) * 0.5 + (cand_first in ("A", "tie")) * 0.5
        return self.verdict(score, f"reference first: {ref_first}; candidate first: {cand_first}")

    def _shown(self, answer: str) -> str:
        return answer_text(answer)[: self.max_answer_chars]

    def _gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.max_concurrency)
        return gate

    async def prefer(self, prompt: str, first: str, second: str) -> Preference | None:
        """Which of two answers the judge prefers ("A" = ``first``), cached by content hash."""
        messages = judge_messages(prompt, first, second)
        key = VerdictCache.key(self.endpoint.model, messages)
        hit, cached = self.cache.get(key)
        self.meter.cache(hit)
        if hit:
            return cached
        async with self._gate():
            body = await self._ask(messages)
        text = ((body.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
        preference = parse_preference(text)
        usage = body.get("usage") or {}
        for kind in ("prompt", "completion"):
            if isinstance(usage.get(f"{kind}_tokens"), int):
                self.meter.tokens(kind, usage[f"{kind}_tokens"])
        if isinstance(usage, dict):
            self.meter.usage(self.endpoint.model, usage)
        self.meter.call("ok" if preference is not None else "unparsed")
        self.cache.put(key, preference)
        return preference

    async def _ask(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        e = self.endpoint
        headers = {"Authorization": f"Bearer {e.api_key}"} if e.api_key else {}
        payload = {"model": e.model, "messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        try:
            async with httpx.AsyncClient(timeout=e.timeout_s) as client:
                r = await client.post(f"{e.url.rstrip('/')}/chat/completions", json=payload, headers=headers)
            r.raise_for_status()
            body = r.json()
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
            return body
        except (httpx.HTTPError, ValueError) as exc:
            self.meter.call("error")
            raise JudgeError(f"judge {e.model} at {e.url} failed: {exc!r}") from exc
