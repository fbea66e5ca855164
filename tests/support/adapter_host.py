"""An in-memory student engine that serves LoRA adapters by name (a ``Backend`` and an
``AdapterHost``), for unit tests of the hot-swap protocol without a model or a server.

Failures are switched on per test: ``refuse_load`` (the engine refuses to load a name),
``mute`` (a loaded name does not answer), ``down`` (the engine cannot be reached).
``restart()`` drops every adapter, as vLLM does when it comes back. ``calls`` records
loads and unloads in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from distillserve.protocol.backend import AdapterHost, Backend
from distillserve.protocol.errors import AdapterError, AdapterNotLoaded, BackendUnavailable
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest


class FakeAdapterHost(Backend):
    name = "student"
    kind = "fake"

    def __init__(self) -> None:
        self.loaded: dict[str, str] = {}  # name -> path
        self.calls: list[tuple[str, str]] = []  # ("load" | "unload", name)
        self.refuse_load: set[str] = set()
        self.mute: set[str] = set()
        self.down = False

    def restart(self) -> None:
        self.loaded.clear()

    def _reachable(self) -> None:
        if self.down:
            raise BackendUnavailable("student engine unreachable")

    # -- AdapterHost ------------------------------------------------------------------------------
    def adapter_host(self) -> AdapterHost:
        return self

    async def served_base(self) -> str | None:
        return None

    def max_lora_rank(self) -> int | None:
        return None

    def on_adapter_missing(self, listener: Callable[[str], None]) -> None:
        self.missing_listener = listener

    async def load_adapter(self, name: str, path: str) -> None:
        self._reachable()
        if name in self.refuse_load:
            raise AdapterError(f"engine refused {name}")
        self.calls.append(("load", name))
        self.loaded[name] = path

    async def unload_adapter(self, name: str) -> None:
        self._reachable()
        self.calls.append(("unload", name))
        self.loaded.pop(name, None)

    async def list_adapters(self) -> list[str]:
        self._reachable()
        return list(self.loaded)

    # -- Backend ----------------------------------------------------------------------------------
    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        self._reachable()
        if model is not None and model not in self.loaded:
            raise AdapterNotLoaded(f"adapter {model} is not loaded")
        if model in self.mute:
            raise BackendUnavailable(f"{model} crashed the engine")
        return {"object": "chat.completion", "model": model or self.name, "choices": []}

    async def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        yield await self.chat(request, model=model)

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    async def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError
        yield {}

    async def health(self) -> bool:
        return not self.down
