"""Serve one backend as a plain OpenAI-compatible server (no routing, no logging).

Used to run the testbed oracle teacher as its own process, the way a real teacher
(vLLM, DeepSeek's API) sits behind the gateway's OpenAI-compatible HTTP backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from distillserve.backends.factory import build_backend
from distillserve.config import BackendConfig
from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import APIError, ModelNotFound, api_error_body
from distillserve.protocol.http import json_response, parse_request, read_body
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest
from distillserve.protocol.sse import DONE, encode_event
from distillserve.serving.api.errors import add_api_error_handler
from distillserve.serving.api.health import liveness_router
from distillserve.serving.api.models import models_router

MAX_BODY = 10_000_000


def create_single_app(backend: Backend) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.aclose()

    app = FastAPI(title=f"{backend.name} ({backend.kind})", lifespan=lifespan, docs_url=None, redoc_url=None)
    add_api_error_handler(app)
    app.include_router(single_completions_router(backend))
    app.include_router(models_router(lambda: [backend.name], owned_by=backend.kind))
    app.include_router(liveness_router())
    return app


def single_completions_router(backend: Backend) -> APIRouter:
    """Both completion endpoints, straight to ``backend``; only its own name is a valid model."""
    router = APIRouter()

    @router.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await _serve(backend, request, ChatCompletionRequest)

    @router.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _serve(backend, request, CompletionRequest)

    return router


async def _serve(
    backend: Backend, request: Request, model: type[ChatCompletionRequest] | type[CompletionRequest]
) -> Response:
    req = parse_request(await read_body(request, MAX_BODY), model)
    if req.model != backend.name:
        raise ModelNotFound(f"The model '{req.model}' does not exist.", param="model")
    chat = isinstance(req, ChatCompletionRequest)
    if not req.stream:
        body = await (backend.chat(req) if chat else backend.completion(req))  # type: ignore[arg-type]
        return json_response(body)
    it = backend.chat_stream(req) if chat else backend.completion_stream(req)  # type: ignore[arg-type]
    want_usage = bool(req.stream_options and req.stream_options.include_usage)
    return StreamingResponse(sse_events(it, want_usage), media_type="text/event-stream")


async def sse_events(
    chunks: AsyncIterator[dict[str, Any]], want_usage: bool, model: str | None = None
) -> AsyncIterator[bytes]:
    """SSE framing; a failure mid-stream is reported in-band, then ``[DONE]``. Backends always end
    with the usage chunk (``choices: []``); it goes out only when the client asked for it.
    ``model``: the name each chunk answers under, where it is not the backend's own."""
    try:
        async for chunk in chunks:
            if chunk.get("choices") or want_usage:
                yield encode_event(chunk if model is None else {**chunk, "model": model})
    except APIError as exc:
        yield encode_event(api_error_body(exc))
    yield DONE


def run_single(cfg: BackendConfig, *, host: str, port: int) -> None:
    uvicorn.run(
        create_single_app(build_backend(cfg)),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
