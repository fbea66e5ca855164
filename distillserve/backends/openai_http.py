"""Any OpenAI-compatible HTTP endpoint (vLLM, SGLang, DeepSeek's API, another gateway).

Pooled aiohttp connections (its client costs about a third less CPU per request than
httpx's, which matters for a proxy); requests pass through with only ``model`` rewritten,
so fields we don't model reach the upstream untouched; streams are relayed chunk by chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from distillserve.backends.upstream_answer import checked_events, parse_answer
from distillserve.config import OpenAIBackendConfig
from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BadUpstreamResponse,
)
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest, SamplingFields


class OpenAIHTTPBackend(Backend):
    kind = "openai"

    def __init__(self, cfg: OpenAIBackendConfig) -> None:
        if not cfg.url:
            raise ValueError(f"backend {cfg.name!r}: 'url' is required for kind {cfg.kind!r}")
        self.cfg = cfg
        self.name = cfg.name
        self.base_url = cfg.url.rstrip("/")
        self.supports = cfg.capabilities
        headers = {"Content-Type": "application/json"}
        if cfg.api_key is not None:
            headers["Authorization"] = f"Bearer {cfg.api_key.get_secret_value()}"
        self._headers = headers
        # sock_read = longest silence allowed between two reads, so a stalled stream times out too.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=cfg.connect_timeout_s, sock_read=cfg.timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created lazily inside the running loop, as aiohttp requires.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self.cfg.max_connections, ttl_dns_cache=300),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                read_bufsize=1 << 20,  # room for long SSE lines (a chunk with many logprobs)
            )
        return self._session

    async def start(self) -> None:
        _ = self.session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- request building -------------------------------------------------------------------------
    def _body(self, request: SamplingFields, model: str | None, stream: bool) -> bytes:
        # What the client sent, as sent (its explicit nulls too, e.g. an assistant turn's
        # ``content: null`` beside its ``tool_calls``): tools, tool_choice, tool turns,
        # response_format and image parts are typed for validation only, never rewritten.
        body = request.model_dump(exclude_unset=True)
        body["model"] = model or self.cfg.served_model
        body["stream"] = stream
        if stream:
            # Always ask for usage so the gateway can count tokens; the gateway drops the
            # usage chunk again if the client did not ask for it.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
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

    def _failure(self, exc: BaseException) -> Exception:
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return BackendTimeout(f"{self.name}: upstream timed out")
        if isinstance(exc, aiohttp.ClientPayloadError):  # the connection closed mid-body
            return BadUpstreamResponse(f"{self.name}: upstream answer truncated ({exc})")
        return BackendUnavailable(f"{self.name}: upstream unreachable ({type(exc).__name__}: {exc})")

    async def _post(self, path: str, body: bytes) -> dict[str, Any]:
        try:
            async with self.session.post(self.base_url + path, data=body) as r:
                content = await r.read()
                status = r.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._failure(exc) from exc
        if status != 200:
            self._raise_for(status, content)
        return parse_answer(self.name, content)

    async def _stream(self, path: str, body: bytes) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self.session.post(self.base_url + path, data=body) as r:
                if r.status != 200:
                    self._raise_for(r.status, await r.read())
                async for event in checked_events(self.name, r.content):
                    if "error" in event and "choices" not in event:
                        raise BackendUnavailable(f"{self.name}: upstream failed mid-stream: {event['error']}")
                    yield event
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._failure(exc) from exc

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
            timeout = aiohttp.ClientTimeout(total=self.cfg.connect_timeout_s)
            async with self.session.get(self.base_url + "/models", timeout=timeout) as r:
                return r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def list_models(self) -> list[dict[str, Any]]:
        """The upstream's /v1/models entries."""
        try:
            async with self.session.get(self.base_url + "/models") as r:
                content, status = await r.read(), r.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._failure(exc) from exc
        if status != 200:
            self._raise_for(status, content)
        return list(orjson.loads(content).get("data", []))
