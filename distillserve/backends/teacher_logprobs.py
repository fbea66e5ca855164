"""The teacher, asked for its top-k log-probabilities on every call (``teacher.top_logprobs``).

One wrapper around the teacher backend, so every path that calls it gets the same behaviour:
requests it serves, cascade escalations, failovers and shadow comparisons. The answer keeps the
logprobs for the teacher log (token-level distillation); what the client asked for is cut back
on the way out (``protocol.logprobs.fit_logprobs``).

Some teachers refuse logprobs: DeepSeek's ``deepseek-reasoner`` answers 400 to ``logprobs`` /
``top_logprobs`` (https://api-docs.deepseek.com/guides/reasoning_model, "Not Supported
Parameters"). A 400 to a call we added logprobs to is retried once as the client sent it; when
that one succeeds, the refusal is remembered (a metric, one warning) and later calls go without.
When the retry fails too, the request itself was at fault and its error stands.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from distillserve.monitoring import metrics
from distillserve.protocol.backend import AdapterHost, Backend, ChunkStream
from distillserve.protocol.errors import BackendRejected
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest

log = logging.getLogger(__name__)

R = TypeVar("R", ChatCompletionRequest, CompletionRequest)
#: Statuses that mean "the upstream would not take these parameters" (vLLM and OpenAI: 400; some 422).
_REFUSAL_STATUSES = (400, 422)


class LogprobsAskingBackend(Backend):
    def __init__(self, inner: Backend, top_k: int) -> None:
        if not 1 <= top_k <= 20:
            raise ValueError(f"top_logprobs must be in [1, 20], got {top_k}")
        self.inner = inner
        self.top_k = top_k
        self.name = inner.name
        self.kind = inner.kind
        self.supports = inner.supports
        #: True once the teacher refused logprobs: it is not asked for them again.
        self.refused = False

    # -- what is asked ----------------------------------------------------------------------------
    def asked(self, request: R) -> R | None:
        """``request`` asking for the teacher's top-k; None when there is nothing to add."""
        if self.refused:
            return None
        if isinstance(request, ChatCompletionRequest):
            if request.logprobs and (request.top_logprobs or 0) >= self.top_k:
                return None
            return request.model_copy(update={"logprobs": True, "top_logprobs": self.top_k})
        if request.logprobs is not None and request.logprobs >= self.top_k:
            return None
        return request.model_copy(update={"logprobs": self.top_k})

    def _is_refusal(self, exc: BackendRejected) -> bool:
        return exc.status_code in _REFUSAL_STATUSES

    def _remember_refusal(self, exc: BackendRejected) -> None:
        metrics.TEACHER_LOGPROBS_REFUSED.labels(backend=self.kind).inc()
        if not self.refused:
            self.refused = True
            log.warning(
                "teacher %s refused top_logprobs=%d (%s); asking it without logprobs from now on: "
                "its answers are logged for sequence-level distillation only",
                self.name,
                self.top_k,
                exc.message,
            )

    # -- calls ------------------------------------------------------------------------------------
    async def _call(self, request: R, send: Callable[[R], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        asked = self.asked(request)
        if asked is None:
            return await send(request)
        try:
            return await send(asked)
        except BackendRejected as exc:
            if not self._is_refusal(exc):
                raise
            answer = await send(request)  # its error, if any, is the request's own
            self._remember_refusal(exc)
            return answer

    async def _stream(self, request: R, open_stream: Callable[[R], ChunkStream]) -> ChunkStream:
        asked = self.asked(request)
        it = open_stream(asked or request)
        try:
            first = await anext(it, None)  # an upstream's 400 comes before its first chunk
        except BackendRejected as exc:
            if asked is None or not self._is_refusal(exc):
                raise
            it = open_stream(request)
            first = await anext(it, None)
            self._remember_refusal(exc)
        try:
            if first is not None:
                yield first
                async for chunk in it:
                    yield chunk
        finally:
            await it.aclose()

    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        return await self._call(request, lambda r: self.inner.chat(r, model=model))

    def chat_stream(self, request: ChatCompletionRequest, *, model: str | None = None) -> ChunkStream:
        return self._stream(request, lambda r: self.inner.chat_stream(r, model=model))

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        return await self._call(request, lambda r: self.inner.completion(r, model=model))

    def completion_stream(self, request: CompletionRequest, *, model: str | None = None) -> ChunkStream:
        return self._stream(request, lambda r: self.inner.completion_stream(r, model=model))

    # -- the rest is the teacher's own ------------------------------------------------------------
    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def health(self) -> bool:
        return await self.inner.health()

    def adapter_host(self) -> AdapterHost | None:
        return self.inner.adapter_host()


def asking_logprobs(teacher: Backend, top_k: int) -> Backend:
    """``teacher`` asked for ``top_k`` logprobs on every call; itself when ``top_k`` is 0."""
    return LogprobsAskingBackend(teacher, top_k) if top_k else teacher
