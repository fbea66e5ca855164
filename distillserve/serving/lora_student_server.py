"""An embedded student served on vLLM's wire: its OpenAI API plus its runtime LoRA API.

For machines without a GPU that run several student replicas (and for the fleet tests): the
gateway's vLLM backend addresses each such server exactly as it addresses a vLLM server.
The shapes follow vLLM's (``vllm/entrypoints/openai/api_server.py``, 0.32):

- ``POST /v1/load_lora_adapter {"lora_name", "lora_path"}``: 200 with a plain-text body; 400
  when the name is loaded already; 404 when there is no adapter at the path.
- ``POST /v1/unload_lora_adapter {"lora_name"}``: 200 plain text; 404 when not loaded.
- ``GET /v1/models``: the base (``parent: null``, ``root`` = its directory) and every adapter
  (``parent`` = the base's name, ``root`` = its path).
- completions with ``model`` = the base's name or an adapter's; another name is a 404.

    python -m distillserve.serving.lora_student_server --port P --model-path DIR [--name student]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

from distillserve.backends.embedded import EmbeddedBackend
from distillserve.config import EmbeddedBackendConfig
from distillserve.protocol.errors import AdapterError, APIError, ModelNotFound
from distillserve.protocol.http import json_response, parse_request, read_body
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest
from distillserve.serving.api.errors import add_api_error_handler
from distillserve.serving.api.health import liveness_router
from distillserve.serving.single_backend_server import sse_events

MAX_BODY = 10_000_000


class LoadLoRA(BaseModel):
    lora_name: str
    lora_path: str
    load_inplace: bool = False


class UnloadLoRA(BaseModel):
    lora_name: str


class AdapterNotHere(APIError):
    status_code = 404
    type = "NotFoundError"


class LoRAStudent:
    """The embedded backend and the paths of the adapters it holds (``/v1/models`` lists them)."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self.backend = backend
        self.paths: dict[str, str] = {}

    async def model_for(self, model: str) -> str | None:
        """The adapter a request names (None: the base); 404 for a name this server lacks."""
        if model == self.backend.name:
            return None
        if model not in await self.backend.list_adapters():
            raise ModelNotFound(f"The model `{model}` does not exist.", param="model")
        return model

    async def load(self, body: LoadLoRA) -> str:
        if body.lora_name in await self.backend.list_adapters() and not body.load_inplace:
            raise AdapterError(f"The lora adapter '{body.lora_name}' has already been loaded.")
        if not Path(body.lora_path).exists():
            raise AdapterNotHere(f"No adapter found for {body.lora_path}")
        await self.backend.load_adapter(body.lora_name, body.lora_path)
        self.paths[body.lora_name] = body.lora_path
        return f"Success: LoRA adapter '{body.lora_name}' added successfully."

    async def unload(self, body: UnloadLoRA) -> str:
        if body.lora_name not in await self.backend.list_adapters():
            raise AdapterNotHere(f"The lora adapter '{body.lora_name}' cannot be found.")
        await self.backend.unload_adapter(body.lora_name)
        self.paths.pop(body.lora_name, None)
        return f"Success: LoRA adapter '{body.lora_name}' removed successfully."

    async def models(self) -> list[dict[str, Any]]:
        now, name = int(time.time()), self.backend.name
        base = {"id": name, "object": "model", "created": now, "owned_by": "vllm", "parent": None}
        base["root"] = await self.backend.served_base()
        out = [base]
        for adapter in await self.backend.list_adapters():
            root = self.paths.get(adapter, "")
            out.append({"id": adapter, "object": "model", "created": now, "owned_by": "vllm"})
            out[-1].update(root=root, parent=name)
        return out


def create_lora_student_app(backend: EmbeddedBackend) -> FastAPI:
    student = LoRAStudent(backend)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.aclose()

    app = FastAPI(title=f"{backend.name} (embedded, vLLM wire)", lifespan=lifespan, docs_url=None)
    add_api_error_handler(app)
    app.include_router(_lora_router(student))
    app.include_router(_completions_router(student))
    app.include_router(liveness_router())
    return app


def _lora_router(student: LoRAStudent) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/load_lora_adapter")
    async def load(request: Request) -> Response:
        body = parse_request(await read_body(request, MAX_BODY), LoadLoRA)
        return PlainTextResponse(await student.load(body))

    @router.post("/unload_lora_adapter")
    async def unload(request: Request) -> Response:
        body = parse_request(await read_body(request, MAX_BODY), UnloadLoRA)
        return PlainTextResponse(await student.unload(body))

    @router.get("/models")
    async def models() -> Response:
        return json_response({"object": "list", "data": await student.models()})

    return router


def _completions_router(student: LoRAStudent) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/chat/completions")
    async def chat(request: Request) -> Response:
        return await _serve(student, request, ChatCompletionRequest)

    @router.post("/completions")
    async def completions(request: Request) -> Response:
        return await _serve(student, request, CompletionRequest)

    return router


async def _serve(
    student: LoRAStudent, request: Request, kind: type[ChatCompletionRequest] | type[CompletionRequest]
) -> Response:
    req = parse_request(await read_body(request, MAX_BODY), kind)
    adapter = await student.model_for(req.model)
    backend, chat = student.backend, isinstance(req, ChatCompletionRequest)
    if not req.stream:
        answer = await (backend.chat(req, model=adapter) if chat else backend.completion(req, model=adapter))  # type: ignore[arg-type]
        return json_response({**answer, "model": req.model})
    it = backend.chat_stream(req, model=adapter) if chat else backend.completion_stream(req, model=adapter)  # type: ignore[arg-type]
    want_usage = bool(req.stream_options and req.stream_options.include_usage)
    return StreamingResponse(sse_events(it, want_usage, req.model), media_type="text/event-stream")


def main() -> None:
    ap = argparse.ArgumentParser(description="An embedded student on vLLM's OpenAI + LoRA wire.")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--model-path", required=True)
    ap.add_argument("--name", default="student")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    cfg = EmbeddedBackendConfig(name=args.name, model_path=args.model_path, threads=args.threads)
    uvicorn.run(
        create_lora_student_app(EmbeddedBackend(cfg)), host=args.host, port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
