"""vLLM as the student: one or several vLLM servers, each addressed on its own.

Requests go round-robin over the replicas (``vllm_replica`` speaks to one server). Adapter
operations reach every replica: ``load_adapter`` loads the version on each and probes each
(one token from that very server), so a swap switches only once every replica answers with
the new version; if one refuses, the replicas this call loaded unload it again and the swap
is refused. ``list_adapters`` names what *every* replica holds, so an engine that restarted
underneath us (or a replica scaled out later) gets the live adapter at the next check.

A request for an adapter a replica no longer holds gets vLLM's 404; we raise
``AdapterNotLoaded`` (a 503, so ``model: auto`` fails over) and call ``on_adapter_missing``
so the gateway reloads it at once instead of at its next check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from distillserve.backends.vllm_engine_args import VLLMEngineArgs
from distillserve.backends.vllm_replica import VLLMReplica
from distillserve.backends.vllm_replicas import VLLMReplicas
from distillserve.config import VLLMBackendConfig
from distillserve.protocol.backend import AdapterHost, Backend
from distillserve.protocol.errors import AdapterNotLoaded, APIError, BackendRejected
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest

log = logging.getLogger(__name__)


class VLLMBackend(Backend):
    """An ``AdapterHost``: serves the base model and LoRA adapters by name, on every replica."""

    kind = "vllm"

    def __init__(self, cfg: VLLMBackendConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.replicas = VLLMReplicas(cfg)
        #: Called with the adapter's name when vLLM says it does not have it.
        self._adapter_missing: Callable[[str], None] | None = None
        self._max_lora_rank = VLLMEngineArgs.of(cfg).max_lora_rank

    async def start(self) -> None:
        for replica in self.replicas.all:
            await replica.start()

    async def aclose(self) -> None:
        await self.replicas.aclose()

    async def health(self) -> bool:
        """Up while any replica answers: requests on a dead one fail over like any 503."""
        return any(await asyncio.gather(*(r.health() for r in self.replicas.all)))

    async def list_models(self) -> list[dict[str, Any]]:
        return await self.replicas.all[0].list_models()

    # -- the AdapterHost capability -------------------------------------------------------------
    def adapter_host(self) -> AdapterHost:
        return self

    def max_lora_rank(self) -> int | None:
        return self._max_lora_rank

    def on_adapter_missing(self, listener: Callable[[str], None]) -> None:
        self._adapter_missing = listener

    async def load_adapter(self, name: str, path: str) -> None:
        """Load ``name`` on every replica and probe each; all or none (those this call loaded
        are unloaded again when any replica refuses)."""
        replicas = await self.replicas.refresh()
        loaded: list[VLLMReplica] = []

        async def load_and_probe(replica: VLLMReplica) -> None:
            if await replica.ensure_adapter(name, path):
                loaded.append(replica)
            await replica.probe(name)

        results = await asyncio.gather(*(load_and_probe(r) for r in replicas), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for replica in loaded:
                await _unload_quietly(replica, name)
            raise failures[0]

    async def unload_adapter(self, name: str) -> None:
        replicas = await self.replicas.refresh()
        results = await asyncio.gather(*(r.unload_adapter(name) for r in replicas), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def list_adapters(self) -> list[str]:
        """Adapters every replica holds (one missing anywhere counts as missing)."""
        replicas = await self.replicas.refresh()
        held = await asyncio.gather(*(r.list_adapters() for r in replicas))
        common = set(held[0]).intersection(*held[1:])
        return [n for n in held[0] if n in common]

    async def adapter_paths(self) -> dict[str, str]:
        return await self.replicas.all[0].adapter_paths()

    async def served_base(self) -> str | None:
        return await self.replicas.all[0].served_base()

    # -- requests: round-robin, and detect a lost adapter ---------------------------------------
    def _lost(self, exc: APIError, model: str | None) -> APIError:
        if not (isinstance(exc, BackendRejected) and exc.status_code == 404):
            return exc
        if model is None or model == self.cfg.served_model:
            return exc
        if self._adapter_missing is not None:
            self._adapter_missing(model)
        return AdapterNotLoaded(
            f"{self.name}: the engine does not hold adapter {model!r} (restarted?); reloading it"
        )

    async def _guard(self, call: Awaitable[dict[str, Any]], model: str | None) -> dict[str, Any]:
        try:
            return await call
        except APIError as exc:
            lost = self._lost(exc, model)
            if lost is exc:
                raise
            raise lost from exc

    async def _guard_stream(
        self, it: AsyncIterator[dict[str, Any]], model: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async for chunk in it:
                yield chunk
        except APIError as exc:
            lost = self._lost(exc, model)
            if lost is exc:
                raise
            raise lost from exc
        finally:
            await it.aclose()  # type: ignore[attr-defined]

    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        return await self._guard(self.replicas.next().chat(request, model=model), model)

    def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return self._guard_stream(self.replicas.next().chat_stream(request, model=model), model)

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        return await self._guard(self.replicas.next().completion(request, model=model), model)

    def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return self._guard_stream(self.replicas.next().completion_stream(request, model=model), model)


async def _unload_quietly(replica: VLLMReplica, name: str) -> None:
    try:
        await replica.unload_adapter(name)
    except APIError as exc:
        log.warning("could not unload adapter %s from %s: %s", name, replica.base_url, exc.message)
