"""A scripted backend for fast unit tests of the gateway's execution strategies.

It is a fake on purpose: it answers with chosen token log-probabilities and fails on demand
(down before the first chunk, or mid-stream), which no real engine does reliably. The
end-to-end tests (``tests/router/test_cascade.py``, ``tests/serving/test_gateway.py``) cover
the same paths against the real testbed and embedded backends.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import BackendUnavailable
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest


@dataclass
class Script:
    tokens: list[str] = field(default_factory=lambda: ["ok"])
    logprob: float = -0.01
    #: "none", "down" (before any chunk), "mid_stream" (after the first chunk)
    fault: str = "none"


class ScriptedBackend(Backend):
    def __init__(self, name: str, kind: str = "scripted", script: Script | None = None) -> None:
        self.name = name
        self.kind = kind
        self.script = script or Script()
        self.calls: list[dict[str, Any]] = []
        self.closed_streams = 0

    def _record(
        self, request: ChatCompletionRequest | CompletionRequest, model: str | None, stream: bool
    ) -> None:
        self.calls.append({"model": model, "stream": stream, "logprobs": request.logprobs})
        if self.script.fault == "down":
            raise BackendUnavailable(f"{self.name} is down")

    def _logprobs(self, token: str, wanted: bool) -> dict[str, Any] | None:
        if not wanted:
            return None
        return {"content": [{"token": token, "logprob": self.script.logprob, "top_logprobs": []}]}

    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        self._record(request, model, False)
        text = "".join(self.script.tokens)
        lp = None
        if request.logprobs:
            lp = {
                "content": [
                    {"token": t, "logprob": self.script.logprob, "top_logprobs": []}
                    for t in self.script.tokens
                ]
            }
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model or self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": lp,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": len(self.script.tokens),
                "total_tokens": 3 + len(self.script.tokens),
            },
        }

    async def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        self._record(request, model, True)
        try:
            for i, token in enumerate(self.script.tokens):
                if i == 1 and self.script.fault == "mid_stream":
                    raise BackendUnavailable(f"{self.name} died mid-stream")
                last = i == len(self.script.tokens) - 1
                yield {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model or self.name,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": token},
                            "logprobs": self._logprobs(token, bool(request.logprobs)),
                            "finish_reason": "stop" if last else None,
                        }
                    ],
                }
        finally:
            self.closed_streams += 1

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        raise NotImplementedError("chat only")

    def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        raise NotImplementedError("chat only")

    async def health(self) -> bool:
        return self.script.fault != "down"
