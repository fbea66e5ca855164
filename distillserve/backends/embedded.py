"""The embedded backend: the in-process engine (``distillserve.engine``) behind the backend seam.

Chat requests go through the model's own chat template; completions take the raw
prompt text. ``model`` names an adapter loaded on the engine (``None`` or the
backend's own name = the base model). Responses are OpenAI-shaped dicts from
``serving.protocol``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from distillserve.config import BackendConfig
from distillserve.engine.engine import EmbeddedEngine, TokenEvent
from distillserve.engine.sampling import SamplingParams
from distillserve.models.prepared import resolve_model
from distillserve.protocol.backend import AdapterHost, Backend
from distillserve.protocol.errors import BackendUnavailable, InvalidRequest
from distillserve.protocol.schema import (
    ChatCompletionRequest,
    CompletionRequest,
    SamplingFields,
    chat_chunk,
    chat_completion,
    new_id,
    text_chunk,
    text_completion,
    token_logprob,
    usage,
)

DEFAULT_CHAT_MAX_TOKENS = 256
DEFAULT_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


def _sampling(request: SamplingFields, max_tokens: int, logprobs: bool, top: int) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        seed=request.seed,
        stop=tuple(request.stop_list()),
        logprobs=logprobs,
        top_logprobs=top,
    )


def _chat_logprobs(events: list[TokenEvent]) -> dict[str, Any]:
    return {
        "content": [
            token_logprob(e.token, e.logprob or 0.0, e.top_logprobs)
            for e in events
            if not e.eos and e.logprob is not None
        ]
    }


def _completion_logprobs(events: list[TokenEvent], offset: int = 0) -> dict[str, Any]:
    """The legacy completions shape: parallel lists of tokens, logprobs, top maps, offsets."""
    kept = [e for e in events if not e.eos and e.logprob is not None]
    offsets, pos = [], offset
    for e in kept:
        offsets.append(pos)
        pos += len(e.token)
    return {
        "tokens": [e.token for e in kept],
        "token_logprobs": [e.logprob for e in kept],
        "top_logprobs": [dict(e.top_logprobs) for e in kept],
        "text_offset": offsets,
    }


class EmbeddedBackend(Backend):
    kind = "embedded"

    def __init__(self, cfg: BackendConfig) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.engine = EmbeddedEngine(
            cfg.model_path or "testbed-student",
            max_batch_size=cfg.max_batch_size,
            dtype=cfg.dtype,
            device=cfg.device,
            threads=cfg.threads,
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.engine.start)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.close)

    async def health(self) -> bool:
        return self.engine.alive

    # -- adapters (AdapterHost) ---------------------------------------------------------------

    def adapter_host(self) -> AdapterHost:
        return self

    async def served_base(self) -> str | None:
        """The directory the engine's model spec resolves to (an alias is prepared once)."""
        return str(await asyncio.to_thread(resolve_model, self.cfg.model_path or "testbed-student"))

    def max_lora_rank(self) -> int | None:
        return None

    def on_adapter_missing(self, listener: Callable[[str], None]) -> None:
        """The engine lives in this process: it cannot lose an adapter underneath the gateway."""

    async def load_adapter(self, name: str, path: str) -> None:
        await asyncio.to_thread(self.engine.load_adapter, name, path)

    async def unload_adapter(self, name: str) -> None:
        await self.engine.unload_adapter(name)

    async def list_adapters(self) -> list[str]:
        return [] if self.engine.adapters is None else self.engine.adapters.names

    # -- requests -----------------------------------------------------------------------------

    def _adapter(self, model: str | None) -> str | None:
        return None if model in (None, self.name, self.cfg.served_model) else model

    def _chat_ids(self, request: ChatCompletionRequest) -> list[int]:
        if not self.engine.alive:
            raise BackendUnavailable("the embedded engine is not running")
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        try:
            enc = self.engine.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_dict=True
            )
        except Exception as exc:  # e.g. a template that rejects this role order
            raise InvalidRequest(
                f"the chat template rejected these messages: {exc}", param="messages"
            ) from exc
        return list(enc["input_ids"])

    def _text_ids(self, request: CompletionRequest) -> list[int]:
        if not self.engine.alive:
            raise BackendUnavailable("the embedded engine is not running")
        return list(self.engine.tokenizer(request.prompt_str(), add_special_tokens=False)["input_ids"])

    def _chat_params(self, request: ChatCompletionRequest) -> SamplingParams:
        return _sampling(
            request, request.token_limit(DEFAULT_CHAT_MAX_TOKENS), request.logprobs, request.top_logprobs or 0
        )

    def _completion_params(self, request: CompletionRequest) -> SamplingParams:
        return _sampling(
            request,
            request.token_limit(DEFAULT_COMPLETION_MAX_TOKENS),
            request.logprobs is not None,
            request.logprobs or 0,
        )

    async def _collect(self, ids: list[int], params: SamplingParams, adapter: str | None) -> list[TokenEvent]:
        return [e async for e in self.engine.generate(ids, params, adapter)]

    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        ids = self._chat_ids(request)
        events = await self._collect(ids, self._chat_params(request), self._adapter(model))
        last = events[-1]
        return chat_completion(
            id=new_id("chatcmpl"),
            model=model or self.name,
            content="".join(e.text for e in events),
            finish_reason=last.finish_reason or "stop",
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.completion_tokens,
            logprobs=_chat_logprobs(events) if request.logprobs else None,
        )

    async def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        ids = self._chat_ids(request)
        params = self._chat_params(request)
        cid, created, name = new_id("chatcmpl"), int(time.time()), model or self.name
        yield chat_chunk(id=cid, model=name, created=created, delta={"role": "assistant", "content": ""})
        pending: list[TokenEvent] = []  # tokens whose text is still held back (stop strings, UTF-8)
        last: TokenEvent | None = None
        async for ev in self.engine.generate(ids, params, self._adapter(model)):
            last = ev
            if not ev.eos:
                pending.append(ev)
            if ev.text:
                lp = _chat_logprobs(pending) if request.logprobs else None
                yield chat_chunk(id=cid, model=name, created=created, delta={"content": ev.text}, logprobs=lp)
                pending = []
        assert last is not None
        yield chat_chunk(id=cid, model=name, created=created, delta={}, finish_reason=last.finish_reason)
        if request.stream_options and request.stream_options.include_usage:
            yield chat_chunk(
                id=cid, model=name, created=created, usage_=usage(last.prompt_tokens, last.completion_tokens)
            )

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        ids = self._text_ids(request)
        events = await self._collect(ids, self._completion_params(request), self._adapter(model))
        last = events[-1]
        text = "".join(e.text for e in events)
        prefix = request.prompt_str() if request.echo else ""
        return text_completion(
            id=new_id("cmpl"),
            model=model or self.name,
            text=prefix + text,
            finish_reason=last.finish_reason or "stop",
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.completion_tokens,
            logprobs=_completion_logprobs(events, len(prefix)) if request.logprobs is not None else None,
        )

    async def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        ids = self._text_ids(request)
        params = self._completion_params(request)
        cid, created, name = new_id("cmpl"), int(time.time()), model or self.name
        last: TokenEvent | None = None
        pending: list[TokenEvent] = []
        offset = 0
        async for ev in self.engine.generate(ids, params, self._adapter(model)):
            last = ev
            if not ev.eos:
                pending.append(ev)
            if ev.text:
                chunk = text_chunk(id=cid, model=name, created=created, text=ev.text)
                if request.logprobs is not None:
                    chunk["choices"][0]["logprobs"] = _completion_logprobs(pending, offset)
                offset += len(ev.text)
                pending = []
                yield chunk
        assert last is not None
        yield text_chunk(id=cid, model=name, created=created, text="", finish_reason=last.finish_reason)
        if request.stream_options and request.stream_options.include_usage:
            yield text_chunk(
                id=cid,
                model=name,
                created=created,
                text=None,
                usage_=usage(last.prompt_tokens, last.completion_tokens),
            )
