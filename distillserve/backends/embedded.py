"""The embedded backend: the in-process engine (``distillserve.engine``) behind the backend seam.

Chat requests go through the model's own chat template; completions take the raw
prompt text. ``model`` names an adapter loaded on the engine (``None`` or the
backend's own name = the base model). The engine's token events become ``token_stream``
pieces; that base builds the OpenAI-shaped responses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from distillserve.backends.token_stream import Event, Finish, Piece, TokenLogprob, TokenStreamBackend
from distillserve.config import EmbeddedBackendConfig
from distillserve.engine.engine import EmbeddedEngine, TokenEvent
from distillserve.engine.sampling import SamplingParams
from distillserve.models.prepared import resolve_model
from distillserve.protocol.backend import AdapterHost
from distillserve.protocol.errors import BackendUnavailable, InvalidRequest
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest, SamplingFields

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


def _piece(event: TokenEvent) -> Piece:
    # The end-of-sequence token is no part of the answer's text or logprobs.
    if event.eos or event.logprob is None:
        return Piece(event.text)
    return Piece(event.text, logprobs=(TokenLogprob(event.token, event.logprob, event.top_logprobs),))


@dataclass(frozen=True)
class EngineJob:
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None


class EmbeddedBackend(TokenStreamBackend[EngineJob]):
    kind = "embedded"

    def __init__(self, cfg: EmbeddedBackendConfig) -> None:
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

    def _require_engine(self) -> None:
        if not self.engine.alive:
            raise BackendUnavailable("the embedded engine is not running")

    async def chat_job(self, request: ChatCompletionRequest, model: str | None) -> EngineJob:
        self._require_engine()
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        try:
            enc = self.engine.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_dict=True
            )
        except Exception as exc:  # e.g. a template that rejects this role order
            raise InvalidRequest(
                f"the chat template rejected these messages: {exc}", param="messages"
            ) from exc
        params = _sampling(
            request, request.token_limit(DEFAULT_CHAT_MAX_TOKENS), request.logprobs, request.top_logprobs or 0
        )
        return EngineJob(list(enc["input_ids"]), params, self._adapter(model))

    async def completion_job(self, request: CompletionRequest, model: str | None) -> EngineJob:
        self._require_engine()
        ids = self.engine.tokenizer(request.prompt_str(), add_special_tokens=False)["input_ids"]
        params = _sampling(
            request,
            request.token_limit(DEFAULT_COMPLETION_MAX_TOKENS),
            request.logprobs is not None,
            request.logprobs or 0,
        )
        return EngineJob(list(ids), params, self._adapter(model))

    async def generate(self, job: EngineJob, *, stream: bool) -> AsyncIterator[Event]:
        last: TokenEvent | None = None
        async for event in self.engine.generate(job.prompt_ids, job.params, job.adapter):
            last = event
            yield _piece(event)
        assert last is not None  # the engine always ends with a finishing event
        yield Finish(last.finish_reason or "stop", last.prompt_tokens, last.completion_tokens)
