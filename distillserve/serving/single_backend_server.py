"""Serve one backend as a plain OpenAI-compatible server (no routing, no logging).

Used to run the testbed oracle teacher as its own process, the way a real teacher
(vLLM, DeepSeek's API) sits behind the gateway's OpenAI-compatible HTTP backend.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from distillserve.backends.factory import build_backend
from distillserve.config import BackendConfig
from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import APIError, ModelNotFound, api_error_body
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest
from distillserve.protocol.sse import DONE, encode_event
from distillserve.serving.app import error_response, json_response, parse_request, read_body

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

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> Response:
        return error_response(exc)

    async def serve(
        request: Request, model: type[ChatCompletionRequest] | type[CompletionRequest]
    ) -> Response:
        req = parse_request(await read_body(request, MAX_BODY), model)
        if req.model != backend.name:
            raise ModelNotFound(f"The model '{req.model}' does not exist.", param="model")
        chat = isinstance(req, ChatCompletionRequest)
        if not req.stream:
            body = await (backend.chat(req) if chat else backend.completion(req))  # type: ignore[arg-type]
            return json_response(body)
        it = backend.chat_stream(req) if chat else backend.completion_stream(req)  # type: ignore[arg-type]

        async def events() -> AsyncIterator[bytes]:
            try:
                async for chunk in it:
                    yield encode_event(chunk)
            except APIError as exc:
                yield encode_event(api_error_body(exc))
            yield DONE

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await serve(request, ChatCompletionRequest)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await serve(request, CompletionRequest)

    @app.get("/v1/models")
    async def models() -> Response:
        m = {"id": backend.name, "object": "model", "created": int(time.time()), "owned_by": backend.kind}
        return json_response({"object": "list", "data": [m]})

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    return app


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
