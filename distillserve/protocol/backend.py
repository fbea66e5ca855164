"""The backend seam: one small interface for every model endpoint.

A backend answers OpenAI-shaped requests with OpenAI-shaped dicts (a completion, or
an async iterator of chunks). Failures are raised as ``serving.errors`` exceptions:
``BackendUnavailable`` (503), ``BackendTimeout`` (504), ``BackendRejected`` (the
upstream's own 4xx). Backends that serve LoRA adapters also implement ``AdapterHost``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest


class Backend(ABC):
    """A model endpoint. ``model`` arguments override the upstream model name (e.g. an adapter)."""

    #: The name clients use to pin this backend.
    name: str
    #: Short implementation name for metrics labels ("embedded", "openai", "vllm", "triton", "testbed").
    kind: str

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or load weights; called once before serving."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release everything ``start`` acquired."""

    @abstractmethod
    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        """A ``chat.completion`` dict."""

    @abstractmethod
    def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """``chat.completion.chunk`` dicts; the last one carries ``usage`` when asked for."""

    @abstractmethod
    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        """A ``text_completion`` dict."""

    @abstractmethod
    def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """``text_completion`` chunk dicts."""

    @abstractmethod
    async def health(self) -> bool:
        """True when the backend can answer now."""


@runtime_checkable
class AdapterHost(Protocol):
    """A backend that serves LoRA adapters by name (vLLM, the embedded engine)."""

    async def load_adapter(self, name: str, path: str) -> None:
        """Load the PEFT adapter at ``path`` under ``name``; raise ``AdapterError`` if refused."""

    async def unload_adapter(self, name: str) -> None:
        """Unload ``name``; requests already running on it finish first."""

    async def list_adapters(self) -> list[str]:
        """Names of the adapters loaded now."""
