"""The backend seam: one small interface for every model endpoint.

A backend answers OpenAI-shaped requests with OpenAI-shaped dicts (a completion, or an
async generator of chunks). Failures are raised as ``protocol.errors`` exceptions:
``BackendUnavailable`` (503), ``BackendTimeout`` (504), ``BackendRejected`` (the upstream's
own 4xx). Optional capabilities are declared, never probed: a backend that serves LoRA
adapters returns its ``AdapterHost`` from ``adapter_host()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest

#: A streamed answer: OpenAI chunk dicts; closing it (``aclose``) stops the generation.
ChunkStream = AsyncGenerator[dict[str, Any], None]


@dataclass(frozen=True)
class AdapterRef:
    """A LoRA adapter version as the engine knows it: its served name and its PEFT directory."""

    name: str
    path: str


class AdapterHost(Protocol):
    """The adapter side of a backend that serves LoRA adapters by name (vLLM, the embedded engine)."""

    async def load_adapter(self, name: str, path: str) -> None:
        """Load the PEFT adapter at ``path`` under ``name``; raise ``AdapterError`` if refused."""
        ...

    async def unload_adapter(self, name: str) -> None:
        """Unload ``name``; requests already running on it finish first."""
        ...

    async def list_adapters(self) -> list[str]:
        """Names of the adapters loaded now."""
        ...

    async def served_base(self) -> str | None:
        """The base model the engine serves (a directory or hub id); None when it cannot say."""
        ...

    def max_lora_rank(self) -> int | None:
        """The highest LoRA rank the engine accepts; None when it has no limit."""
        ...

    def on_adapter_missing(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(name)`` when a request finds the engine without an adapter it should
        hold (it restarted underneath the gateway). Engines that cannot lose adapters ignore it."""
        ...


class Backend(ABC):
    """A model endpoint. ``model`` arguments override the upstream model name (e.g. an adapter)."""

    #: The name clients use to pin this backend.
    name: str
    #: Short implementation name for metrics labels ("embedded", "openai", "vllm", "triton", "testbed").
    kind: str
    #: Features it serves beyond text (``schema.FEATURES``), declared in its config: requests needing
    #: others are routed elsewhere or refused (``features.refuse_unsupported``), never half-served.
    supports: frozenset[str] = frozenset()

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or load weights; called once before serving."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release everything ``start`` acquired."""

    def adapter_host(self) -> AdapterHost | None:
        """This backend's LoRA adapter side, when it serves adapters (declared by overriding)."""
        return None

    @abstractmethod
    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        """A ``chat.completion`` dict."""

    @abstractmethod
    def chat_stream(self, request: ChatCompletionRequest, *, model: str | None = None) -> ChunkStream:
        """``chat.completion.chunk`` dicts, always ending with a ``choices: []`` chunk that carries
        ``usage`` (the gateway counts tokens from it; callers drop it unless the client asked)."""

    @abstractmethod
    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        """A ``text_completion`` dict."""

    @abstractmethod
    def completion_stream(self, request: CompletionRequest, *, model: str | None = None) -> ChunkStream:
        """``text_completion`` chunk dicts."""

    @abstractmethod
    async def health(self) -> bool:
        """True when the backend can answer now."""
