"""Any OpenAI-compatible HTTP endpoint (vLLM, SGLang, DeepSeek's API, another gateway).

Pooled async httpx connections; requests pass through with only ``model`` rewritten,
so fields we don't model reach the upstream untouched; streams are relayed chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from distillserve.config import BackendConfig
from distillserve.serving.backends.base import Backend
from distillserve.serving.errors import BackendRejected, BackendTimeout, BackendUnavailable
from distillserve.serving.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields
from distillserve.serving.sse import iter_events


class OpenAIHTTPBackend(Backend):
    kind = "openai"

    def __init__(self, cfg: BackendConfig, client: httpx.AsyncClient | None = None) -> None:
        if not cfg.url:
            raise ValueError(f"backend {cfg.name!r}: 'url' is required for kind {cfg.kind!r}")
        self.cfg = cfg
        self.name = cfg.name
        self.base_url = cfg.url.rstrip("/")
        headers = {"Content-Type": "application/json"}
        if cfg.api_key is not None:
            headers["Authorization"] = f"Bearer {cfg.api_key.get_secret_value()}"
        # read timeout = longest silence allowed between two bytes; a stream that stalls times out too.
        self._timeout = httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s)
        self._client = client or httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=self._timeout,
            limits=httpx.Limits(
                max_connections=cfg.max_connections, max_keepalive_connections=cfg.max_connections
            ),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- request building -------------------------------------------------------------------------
    def _body(self, request: SamplingFields, model: str | None, stream: bool) -> bytes:
        body = request.model_dump(exclude_none=True, exclude_unset=True)
        body["model"] = model or self.cfg.served_model
        body["stream"] = stream
        if stream:
            # Always ask for usage so the gateway can count tokens; the gateway drops the
            # usage chunk again if the client did not ask for it.
            body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        else:
            body.pop("stream_options", None)
        return orjson.dumps(body)

    # -- transport --------------------------------------------------------------------------------
    def _raise_for(self, status: int, content: bytes) -> None:
        message = content.decode(errors="replace")[:2000]
        param = code = None
        try:
            err = orjson.loads(content)
            if isinstance(err, dict):
                e = err.get("error", err)
                if isinstance(e, dict):
                    message = str(e.get("message", message))
                    param, code = e.get("param"), e.get("code")
                elif isinstance(err.get("message"), str):
                    message = err["message"]
        except orjson.JSONDecodeError:
            pass
        if status >= 500:
            raise BackendUnavailable(f"{self.name}: upstream error {status}: {message}")
        raise BackendRejected(
            f"{self.name}: {message}", status_code=status, param=param, code=str(code) if code else None
        )

    async def _post(self, path: str, body: bytes) -> dict[str, Any]:
        try:
            r = await self._client.post(path, content=body)
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"{self.name}: upstream timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"{self.name}: upstream unreachable ({type(exc).__name__})") from exc
        if r.status_code != 200:
            self._raise_for(r.status_code, r.content)
        return orjson.loads(r.content)

    async def _stream(self, path: str, body: bytes) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self._client.stream("POST", path, content=body) as r:
                if r.status_code != 200:
                    self._raise_for(r.status_code, await r.aread())
                async for event in iter_events(r.aiter_lines()):
                    if "error" in event and "choices" not in event:
                        err = event["error"]
                        raise BackendUnavailable(f"{self.name}: upstream failed mid-stream: {err}")
                    yield event
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"{self.name}: upstream timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"{self.name}: upstream unreachable ({type(exc).__name__})") from exc

    # -- Backend ----------------------------------------------------------------------------------
    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        return await self._post("/chat/completions", self._body(request, model, stream=False))

    def chat_stream(
        self, request: ChatCompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return self._stream("/chat/completions", self._body(request, model, stream=True))

    async def completion(self, request: CompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        return await self._post("/completions", self._body(request, model, stream=False))

    def completion_stream(
        self, request: CompletionRequest, *, model: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        return self._stream("/completions", self._body(request, model, stream=True))

    async def health(self) -> bool:
        try:
            r = await self._client.get("/models", timeout=self.cfg.connect_timeout_s)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    async def list_models(self) -> list[str]:
        r = await self._client.get("/models")
        r.raise_for_status()
        return [m["id"] for m in r.json().get("data", [])]
