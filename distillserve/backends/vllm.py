"""vLLM as the student: its OpenAI-compatible API plus its runtime LoRA API.

- ``POST /v1/load_lora_adapter {"lora_name", "lora_path", "load_inplace"}`` answers 200 with a
  *plain-text* body; refusals come back as JSON errors: 400 (name already loaded), 404 (no
  adapter at that path), 500 (rank above ``--max-lora-rank``, shapes of another base, a
  corrupt file; the engine keeps running). All become ``AdapterError`` with vLLM's reason.
- ``POST /v1/unload_lora_adapter {"lora_name"}``: requests already running on it finish.
- ``GET /v1/models`` lists the base (``parent: null``, ``root`` = the ``--model`` path) and
  every loaded adapter (``parent`` = the base, ``root`` = its path).

A request for an adapter the engine no longer holds (vLLM restarted underneath us) gets a 404
from vLLM; we raise ``AdapterNotLoaded`` (a 503, so ``model: auto`` fails over) and call
``on_adapter_missing`` so the gateway reloads it at once instead of at its next health check.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from distillserve.backends.openai_http import OpenAIHTTPBackend
from distillserve.backends.vllm_engine_args import VLLMEngineArgs
from distillserve.config import VLLMBackendConfig
from distillserve.protocol.backend import AdapterHost
from distillserve.protocol.errors import AdapterError, AdapterNotLoaded, APIError, BackendRejected
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest

log = logging.getLogger(__name__)


class VLLMBackend(OpenAIHTTPBackend):
    """An ``AdapterHost``: serves the base model and LoRA adapters by name."""

    kind = "vllm"

    def __init__(self, cfg: VLLMBackendConfig) -> None:
        super().__init__(cfg)
        #: Called with the adapter's name when vLLM says it does not have it.
        self._adapter_missing: Callable[[str], None] | None = None
        self._max_lora_rank = VLLMEngineArgs.of(cfg).max_lora_rank

    # -- the AdapterHost capability -------------------------------------------------------------
    def adapter_host(self) -> AdapterHost:
        return self

    def max_lora_rank(self) -> int | None:
        return self._max_lora_rank

    def on_adapter_missing(self, listener: Callable[[str], None]) -> None:
        self._adapter_missing = listener

    # -- requests: detect a lost adapter -----------------------------------------------------------
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
        return await self._guard(super().chat(request, model=model), model)

    def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return self._guard_stream(super().chat_stream(request, model=model), model)

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        return await self._guard(super().completion(request, model=model), model)

    def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return self._guard_stream(super().completion_stream(request, model=model), model)

    # -- LoRA admin ---------------------------------------------------------------------------------
    async def _lora_call(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        try:
            async with self.session.post(self.base_url + path, data=orjson.dumps(body)) as r:
                return r.status, (await r.read()).decode(errors="replace")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._failure(exc) from exc

    @staticmethod
    def _reason(text: str) -> str:
        try:
            err = orjson.loads(text)
            msg = err.get("error", err).get("message") if isinstance(err, dict) else None
            if isinstance(msg, str):
                return msg
        except (orjson.JSONDecodeError, AttributeError):
            pass
        return text.strip()[:1000]

    async def load_adapter(self, name: str, path: str) -> None:
        # vLLM resolves the path in its own working directory: send it absolute.
        body = {"lora_name": name, "lora_path": os.path.abspath(path), "load_inplace": False}
        status, text = await self._lora_call("/load_lora_adapter", body)
        if status != 200:
            raise AdapterError(
                f"vLLM refused adapter {name!r} from {path} (HTTP {status}): {self._reason(text)}"
            )
        log.info("vLLM loaded adapter %s from %s: %s", name, path, text.strip())

    async def unload_adapter(self, name: str) -> None:
        status, text = await self._lora_call("/unload_lora_adapter", {"lora_name": name})
        if status == 404:
            log.info("vLLM did not hold adapter %s any more; nothing to unload", name)
        elif status != 200:
            raise AdapterError(
                f"vLLM could not unload adapter {name!r} (HTTP {status}): {self._reason(text)}"
            )

    async def adapter_paths(self) -> dict[str, str]:
        """Loaded adapters: name -> path, from ``/v1/models``."""
        return {m["id"]: str(m.get("root") or "") for m in await self.list_models() if m.get("parent")}

    async def list_adapters(self) -> list[str]:
        return list(await self.adapter_paths())

    async def served_base(self) -> str | None:
        """The base model vLLM serves (its ``--model`` path or hub id)."""
        for m in await self.list_models():
            if not m.get("parent"):
                return str(m.get("root") or m["id"])
        return None
