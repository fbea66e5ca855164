"""Serve any distillserve backend from a real Triton Inference Server, as Triton's vLLM backend would.

PyTriton (PyPI ``nvidia-pytriton``) ships a real ``tritonserver`` whose Python backend hands
requests to a callable in this process. Each bound backend becomes a decoupled (streaming)
model with the vLLM backend's tensor interface (``triton_protocol``): so a team without
Triton's vLLM backend (CPU machines, CI, the embedded engine) runs the same gateway path
as one with it, and the gateway's Triton backend is tested against a real server.

Semantics follow ``vllm_backend``: ``text_input`` is a raw prompt; ``sampling_parameters``
is vLLM ``SamplingParams`` JSON (``max_tokens`` defaults to 16, ``lora_name`` picks an
adapter); streamed responses carry new text only; without ``exclude_input_in_output`` a
blocking answer starts with the prompt; finish reason and token counts only when asked.

Process notes: run it from ``.venv-triton`` (numpy<2 for the stub, see
``prepare_stub_environment``); SIGTERM raises KeyboardInterrupt so PyTriton stops
tritonserver and its stubs and removes its workspace, instead of orphaning them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from distillserve.backends.factory import build_backend
from distillserve.backends.triton_tensors import mark_error
from distillserve.config import BackendConfig
from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import APIError
from distillserve.protocol.schema import CompletionRequest

log = logging.getLogger(__name__)

# OpenAI completion fields that vLLM's SamplingParams also has, under the same meaning.
_OPENAI_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


class RequestError(Exception):
    """A request Triton should fail, with the status the gateway should relay."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(mark_error(status, code, message))


def _flag(request: Mapping[str, np.ndarray], name: str) -> bool | None:
    value = request.get(name) if hasattr(request, "get") else None
    if value is None or value.size == 0:
        return None
    return bool(value.reshape(-1)[0])


def _string(value: np.ndarray) -> str:
    raw = value.reshape(-1)[0]
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def _bytes_out(text: str) -> np.ndarray:
    return np.array([text.encode("utf-8")], dtype=object)


class BackendModel:
    """The inference callable of one Triton model: a distillserve backend behind the vLLM interface.

    PyTriton runs async generators on its own event loop, so requests are served
    concurrently; the backend is started on that loop at the first request.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    async def _ensure_started(self) -> None:
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                await self.backend.start()
                self._started = True

    async def __call__(self, requests: list[Any]) -> AsyncIterator[list[dict[str, np.ndarray]]]:
        await self._ensure_started()
        answers = [self._answer(r.data if hasattr(r, "data") else r) for r in requests]
        # A decoupled batch shares one response stream: step all answers together; one that
        # has finished contributes an empty text.
        done = [False] * len(answers)
        while not all(done):
            step: list[dict[str, np.ndarray]] = []
            for i, answer in enumerate(answers):
                response = None if done[i] else await anext(answer, None)
                if response is None:
                    done[i] = True
                    response = {"text_output": _bytes_out("")}
                step.append(response)
            if not all(done):
                yield step

    def _completion_request(
        self, request: Mapping[str, np.ndarray], stream: bool
    ) -> tuple[CompletionRequest, str | None]:
        params: dict[str, Any] = {}
        raw = request.get("sampling_parameters")
        if raw is not None and raw.size:
            try:
                params = json.loads(_string(raw))
            except ValueError as exc:
                raise RequestError(
                    400, f"sampling_parameters is not valid JSON: {exc}", "invalid_json"
                ) from None
            if not isinstance(params, dict):
                raise RequestError(400, "sampling_parameters must be a JSON object", "invalid_value")
        lora = params.pop("lora_name", None)
        body = {k: v for k, v in params.items() if v is not None}
        body.setdefault("max_tokens", 16)  # vLLM's SamplingParams default
        try:
            req = CompletionRequest(
                model=self.backend.name,
                prompt=_string(request["text_input"]),
                stream=stream,
                stream_options={"include_usage": True} if stream else None,
                **body,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RequestError(400, f"sampling_parameters.{where}: {first['msg']}", "invalid_value") from None
        return req, lora

    async def _answer(self, request: Mapping[str, np.ndarray]) -> AsyncIterator[dict[str, np.ndarray]]:
        if "text_input" not in request:
            raise RequestError(400, "input 'text_input' is required", "missing_input")
        stream = bool(_flag(request, "stream"))
        exclude = _flag(request, "exclude_input_in_output")
        prepend = not exclude if exclude is not None else not stream
        if prepend and stream:
            raise RequestError(400, "When streaming, `exclude_input_in_output` = False is not allowed.")
        wanted = {
            name: bool(_flag(request, f"return_{name}"))
            for name in ("finish_reason", "num_input_tokens", "num_output_tokens")
        }
        req, lora = self._completion_request(request, stream)

        def response(text: str, finish: str | None, n_in: int, n_out: int) -> dict[str, np.ndarray]:
            out = {"text_output": _bytes_out(text)}
            if wanted["finish_reason"]:
                out["finish_reason"] = _bytes_out(str(finish))
            if wanted["num_input_tokens"]:
                out["num_input_tokens"] = np.array([n_in], dtype=np.uint32)
            if wanted["num_output_tokens"]:
                out["num_output_tokens"] = np.array([n_out], dtype=np.uint32)
            return out

        try:
            if not stream:
                body = await self.backend.completion(req, model=lora)
                choice, u = body["choices"][0], body.get("usage") or {}
                text = (req.prompt_str() if prepend else "") + (choice.get("text") or "")
                yield response(
                    text,
                    choice.get("finish_reason"),
                    u.get("prompt_tokens", 0),
                    u.get("completion_tokens", 0),
                )
                return
            finish, u = None, {}
            async for chunk in self.backend.completion_stream(req, model=lora):
                if chunk.get("usage"):
                    u = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    finish = choice.get("finish_reason") or finish
                    if choice.get("text"):
                        yield response(choice["text"], None, u.get("prompt_tokens", 0), 0)
            # The last response carries what is only known at the end.
            yield response("", finish or "stop", u.get("prompt_tokens", 0), u.get("completion_tokens", 0))
        except APIError as exc:
            raise RequestError(exc.status_code, exc.message, exc.code) from None


def _tensors() -> tuple[list[Any], list[Any]]:
    from pytriton.model_config import Tensor

    flags = ("stream", "exclude_input_in_output", "return_finish_reason", "return_num_input_tokens")
    inputs = [
        Tensor(name="text_input", dtype=bytes, shape=(1,)),
        Tensor(name="sampling_parameters", dtype=bytes, shape=(1,), optional=True),
        *(Tensor(name=n, dtype=np.bool_, shape=(1,), optional=True) for n in flags),
        Tensor(name="return_num_output_tokens", dtype=np.bool_, shape=(1,), optional=True),
    ]
    outputs = [
        Tensor(name="text_output", dtype=bytes, shape=(-1,)),
        Tensor(name="finish_reason", dtype=bytes, shape=(-1,)),
        Tensor(name="num_input_tokens", dtype=np.uint32, shape=(1,)),
        Tensor(name="num_output_tokens", dtype=np.uint32, shape=(-1,)),
    ]
    return inputs, outputs


def prepare_stub_environment() -> None:
    """Make tritonserver's Python backend stub run on this interpreter and this venv.

    The stub embeds Python: it loads whichever ``libpython`` the loader finds (the system's
    3.11 is another patch release, and then the bound models fail while the server says
    ready), and finds its packages through the ``python`` first on ``PATH``. And it reads
    numpy's C structs as numpy 1.x lays them out, so it needs numpy<2: hence the separate
    ``.venv-triton`` that ``scripts/setup.sh`` makes.
    """
    if int(np.__version__.split(".")[0]) >= 2:
        raise RuntimeError(
            f"tritonserver's Python backend needs numpy<2, this interpreter has {np.__version__}: "
            "run `.venv-triton/bin/python -m distillserve triton-serve` (made by scripts/setup.sh)"
        )
    lib = Path(sys.base_prefix) / "lib"
    if any(lib.glob(f"libpython{sys.version_info.major}.{sys.version_info.minor}*.so*")):
        _prepend_env("LD_LIBRARY_PATH", str(lib))
    _prepend_env("PATH", str(Path(sys.executable).parent))


def _prepend_env(name: str, entry: str) -> None:
    current = os.environ.get(name, "")
    if current.split(os.pathsep)[:1] != [entry]:
        os.environ[name] = os.pathsep.join(p for p in (entry, current) if p)


def _raise_keyboard_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def serve_backends(
    models: Mapping[str, BackendConfig],
    *,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    workspace: str | Path | None = None,
) -> None:
    """Run tritonserver with one decoupled vLLM-interface model per backend; block until SIGTERM/SIGINT."""
    if not models:
        raise ValueError("no models to serve")
    prepare_stub_environment()
    from pytriton.model_config import ModelConfig
    from pytriton.triton import Triton, TritonConfig

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    config = TritonConfig(
        http_address=host,
        http_port=http_port,
        grpc_address=host,
        grpc_port=grpc_port,
        metrics_address=host,
        metrics_port=metrics_port,
        allow_gpu_metrics=False,
    )
    inputs, outputs = _tensors()
    with Triton(config=config, workspace=str(workspace) if workspace else None) as triton:
        for model_name, cfg in models.items():
            triton.bind(
                model_name=model_name,
                infer_func=BackendModel(build_backend(cfg)),
                inputs=inputs,
                outputs=outputs,
                # No Triton batching (the backend batches itself, as vLLM does), streaming responses.
                config=ModelConfig(batching=False, decoupled=True),
                strict=False,
            )
            log.info("Triton model %r serves backend %r (%s)", model_name, cfg.name, cfg.kind)
        log.info(
            "tritonserver on http://%s:%d (gRPC %d, metrics %d)", host, http_port, grpc_port, metrics_port
        )
        triton.serve()
