"""Triton Inference Server, speaking the tensor interface of Triton's vLLM backend.

That interface is what teams deploy for LLMs on Triton (``vllm_backend``'s ``model.py``):
a decoupled model with inputs ``text_input`` (BYTES), ``stream`` (BOOL),
``sampling_parameters`` (BYTES, vLLM ``SamplingParams`` as JSON, ``lora_name`` for an
adapter), ``exclude_input_in_output`` (BOOL) and the optional ``return_finish_reason`` /
``return_num_input_tokens`` / ``return_num_output_tokens`` (BOOL), and outputs
``text_output`` (the new text of each streamed response, the whole text otherwise),
``finish_reason``, ``num_input_tokens``, ``num_output_tokens``. Tensor names can be
renamed in config (``triton_tensor_names``) for deployments that differ.

Tokens come over gRPC (``ModelStreamInfer``, one bidirectional stream per request; a
decoupled model answers nothing else), with Triton's empty final response turned on so the
end of a stream is explicit. Health and the model's declared inputs come over HTTP.
Optional inputs are sent only when the model declares them, so older vLLM-backend models
work too. Chat requests are rendered into one prompt here (``chat_prompt``), since the
backend takes raw text.

Failures map to ``serving.errors``: server unreachable or model not loaded → 503,
deadline → 504, errors the server attributes to the request (bad argument, unknown
adapter) → their 4xx, relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
import numpy as np
import tritonclient.http.aio as triton_http
from tritonclient.grpc import InferResult, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from distillserve.backends.chat_prompt import ChatPrompter
from distillserve.backends.token_stream import Event, Finish, Piece, TokenStreamBackend
from distillserve.backends.triton_tensors import VLLM_TENSOR_NAMES, read_error_mark
from distillserve.config import TritonBackendConfig
from distillserve.protocol.errors import APIError, BackendRejected, BackendTimeout, BackendUnavailable
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest, SamplingFields, new_id

DEFAULT_COMPLETION_MAX_TOKENS = 16  # vLLM's and OpenAI's default for /v1/completions


@dataclass(frozen=True)
class TritonJob:
    prompt: str
    params: dict[str, Any]  # vLLM SamplingParams as JSON, ``lora_name`` for an adapter


@dataclass
class TritonResponse:
    """What one Triton response adds to the answer."""

    text: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None


def _bytes_tensor(value: bytes) -> bytes:
    # Triton's BYTES wire format: each element as a little-endian uint32 length, then the bytes.
    return struct.pack("<I", len(value)) + value


def _first(arr: np.ndarray | None) -> Any:
    if arr is None or arr.size == 0:
        return None
    return arr.reshape(-1)[0]


def _text(arr: np.ndarray | None) -> str:
    if arr is None:
        return ""
    return "".join(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in arr.flat)


def _finish(raw: Any) -> str | None:
    if raw is None:
        return None
    value = raw.decode() if isinstance(raw, bytes) else str(raw)
    if value in ("", "None", "null"):
        return None
    return "length" if value == "length" else "stop"


class TritonBackend(TokenStreamBackend[TritonJob]):
    kind = "triton"
    reports_logprobs = False  # the vLLM backend's tensor interface has no logprobs output

    def __init__(self, cfg: TritonBackendConfig) -> None:
        if not cfg.url:
            raise ValueError(
                f"backend {cfg.name!r}: 'url' (Triton's HTTP endpoint) is required for kind 'triton'"
            )
        unknown = set(cfg.triton_tensor_names) - set(VLLM_TENSOR_NAMES)
        if unknown:
            raise ValueError(
                f"backend {cfg.name!r}: unknown tensor(s) in triton_tensor_names: {sorted(unknown)}; "
                f"known: {sorted(VLLM_TENSOR_NAMES)}"
            )
        self.cfg = cfg
        self.name = cfg.name
        self.model_name = cfg.triton_model or cfg.served_model
        url = urlsplit(cfg.url if "://" in cfg.url else f"http://{cfg.url}")
        if not url.hostname:
            raise ValueError(f"backend {cfg.name!r}: cannot read a host from url {cfg.url!r}")
        self._http_ssl = url.scheme == "https"
        self._http_url = f"{url.hostname}:{url.port or (443 if self._http_ssl else 80)}"
        self._grpc_url = cfg.triton_grpc_url or f"{url.hostname}:8001"
        self.names = {**VLLM_TENSOR_NAMES, **cfg.triton_tensor_names}
        self._channel: grpc.aio.Channel | None = None
        self._stub: service_pb2_grpc.GRPCInferenceServiceStub | None = None
        self._inputs: dict[str, list[int]] | None = None  # declared input name -> shape
        self._prompter: ChatPrompter | None = None
        self._prompter_loaded = False

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._connect()
        await self._load_prompter()

    async def _connect(self) -> None:
        # Created inside the running loop, as grpc.aio and aiohttp require.
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._grpc_url)
            self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)

    def _http_client(self) -> triton_http.InferenceServerClient:
        """A client for one HTTP call (health, metadata: rare). No idle keep-alive connection is
        left open: tritonserver waits for open HTTP connections (up to its exit timeout) when it stops."""
        return triton_http.InferenceServerClient(
            self._http_url, ssl=self._http_ssl, conn_limit=1, conn_timeout=self.cfg.connect_timeout_s
        )

    async def _load_prompter(self) -> None:
        if not self._prompter_loaded:
            self._prompter = await asyncio.to_thread(
                ChatPrompter.load, self.cfg.chat_template, self.cfg.model_path
            )
            self._prompter_loaded = True

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def health(self) -> bool:
        try:
            async with self._http_client() as http:
                return bool(
                    await asyncio.wait_for(http.is_model_ready(self.model_name), self.cfg.connect_timeout_s)
                )
        except Exception:  # unreachable, timed out, or an error status: not healthy
            return False

    async def _declared_inputs(self) -> dict[str, list[int]]:
        """The model's inputs (HTTP metadata), fetched once; unreachable or unknown model → 503."""
        if self._inputs is not None:
            return self._inputs
        await self._connect()
        try:
            async with self._http_client() as http:
                meta = await asyncio.wait_for(
                    http.get_model_metadata(self.model_name), self.cfg.connect_timeout_s
                )
        except TimeoutError as exc:
            raise BackendUnavailable(f"{self.name}: Triton at {self._http_url} did not answer") from exc
        except InferenceServerException as exc:
            raise BackendUnavailable(
                f"{self.name}: Triton model '{self.model_name}' is not available: {exc.message()}"
            ) from exc
        except Exception as exc:  # aiohttp's connection errors
            raise BackendUnavailable(
                f"{self.name}: Triton at {self._http_url} unreachable ({type(exc).__name__}: {exc})"
            ) from exc
        self._inputs = {i["name"]: [int(d) for d in i["shape"]] for i in meta.get("inputs", [])}
        if self.names["text_input"] not in self._inputs:
            raise BackendUnavailable(
                f"{self.name}: Triton model '{self.model_name}' has no input '{self.names['text_input']}' "
                f"(inputs: {sorted(self._inputs)}); set triton_tensor_names"
            )
        return self._inputs

    # -- request building -------------------------------------------------------------------------
    def _sampling(self, request: SamplingFields, max_tokens: int, model: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": max_tokens}
        for field in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(request, field)
            if value is not None:
                params[field] = value
        if request.stop:
            params["stop"] = request.stop_list()
        if model and model not in (self.name, self.model_name, self.cfg.served_model):
            params["lora_name"] = model  # the vLLM backend serves adapters by name
        return params

    def _infer_request(
        self, prompt: str, params: dict[str, Any], *, stream: bool, inputs: dict[str, list[int]]
    ) -> service_pb2.ModelInferRequest:
        req = service_pb2.ModelInferRequest(model_name=self.model_name, id=new_id("ds"))
        # The server's final response flag makes the end of a decoupled stream explicit.
        req.parameters["triton_enable_empty_final_response"].bool_param = True

        def add(key: str, datatype: str, content: bytes) -> None:
            name = self.names[key]
            # A batching model declares a leading -1 dimension: send a batch of one.
            shape = [1] * max(1, len(inputs.get(name, [1])))
            req.inputs.add(name=name, datatype=datatype, shape=shape)
            req.raw_input_contents.append(content)

        add("text_input", "BYTES", _bytes_tensor(prompt.encode()))
        optional = {
            "stream": stream,
            "exclude_input_in_output": True,
            "return_finish_reason": True,
            "return_num_input_tokens": True,
            "return_num_output_tokens": True,
        }
        for key, value in optional.items():
            if self.names[key] in inputs:
                add(key, "BOOL", np.array([value], dtype=bool).tobytes())
        if self.names["sampling_parameters"] in inputs:
            add("sampling_parameters", "BYTES", _bytes_tensor(json.dumps(params).encode()))
        return req

    # -- transport --------------------------------------------------------------------------------
    def _rpc_failure(self, exc: grpc.aio.AioRpcError) -> APIError:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return BackendTimeout(f"{self.name}: Triton timed out")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return BackendRejected(f"{self.name}: {details}", status_code=400)
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return BackendUnavailable(f"{self.name}: Triton refused the gateway's credentials: {details}")
        return BackendUnavailable(
            f"{self.name}: Triton at {self._grpc_url} unavailable ({code.name}: {details})"
        )

    def _inband_failure(self, message: str) -> APIError:
        marked = read_error_mark(message)
        if marked:
            status, code, text = marked
            if status == 504:
                return BackendTimeout(f"{self.name}: {text}")
            if status >= 500:
                return BackendUnavailable(f"{self.name}: {text}")
            return BackendRejected(f"{self.name}: {text}", status_code=status, code=code)
        if "LoRA" in message and "not supported" in message:
            # The vLLM backend's answer to an adapter it does not have.
            return BackendRejected(f"{self.name}: {message}", status_code=404, code="model_not_found")
        if "unknown model" in message or "is not ready" in message:
            return BackendUnavailable(
                f"{self.name}: Triton model '{self.model_name}' is not available: {message}"
            )
        return BackendUnavailable(f"{self.name}: Triton error: {message}")

    async def _responses(
        self, prompt: str, params: dict[str, Any], *, stream: bool
    ) -> AsyncIterator[TritonResponse]:
        inputs = await self._declared_inputs()
        request = self._infer_request(prompt, params, stream=stream, inputs=inputs)
        assert self._stub is not None

        async def one_request() -> AsyncIterator[service_pb2.ModelInferRequest]:
            yield request

        call = self._stub.ModelStreamInfer(one_request())
        final = closed = False
        try:
            while not final:
                try:
                    response = await asyncio.wait_for(call.read(), self.cfg.timeout_s)
                except TimeoutError as exc:
                    raise BackendTimeout(f"{self.name}: Triton timed out") from exc
                except grpc.aio.AioRpcError as exc:
                    raise self._rpc_failure(exc) from exc
                if response is grpc.aio.EOF:
                    raise BackendUnavailable(
                        f"{self.name}: Triton closed the stream before the final response"
                    )
                if response.error_message:
                    raise self._inband_failure(response.error_message)
                infer = response.infer_response
                final = infer.parameters["triton_final_response"].bool_param
                if not infer.outputs:  # the empty final response
                    continue
                result = InferResult(infer)
                yield TritonResponse(
                    text=_text(result.as_numpy(self.names["text_output"])),
                    finish_reason=_finish(_first(result.as_numpy(self.names["finish_reason"]))),
                    input_tokens=_int(_first(result.as_numpy(self.names["num_input_tokens"]))),
                    output_tokens=_int(_sum(result.as_numpy(self.names["num_output_tokens"]))),
                )
            # Let the server close the stream (our side is already half-closed): cancelling a
            # finished stream instead leaves Triton holding the model at shutdown until its exit timeout.
            with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
                closed = await asyncio.wait_for(call.read(), self.cfg.connect_timeout_s) is grpc.aio.EOF
        finally:
            if not closed:
                call.cancel()  # the client left early, or an error: stop the server's work

    # -- answers ----------------------------------------------------------------------------------
    async def chat_job(self, request: ChatCompletionRequest, model: str | None) -> TritonJob:
        await self._load_prompter()
        if self._prompter is None:
            raise BackendUnavailable(
                f"{self.name}: chat needs a chat template: set 'chat_template' or 'model_path' (a tokenizer)"
            )
        prompt = self._prompter.render(request)
        return TritonJob(
            prompt, self._sampling(request, request.token_limit(self.cfg.triton_default_max_tokens), model)
        )

    async def completion_job(self, request: CompletionRequest, model: str | None) -> TritonJob:
        max_tokens = request.token_limit(DEFAULT_COMPLETION_MAX_TOKENS)
        return TritonJob(request.prompt_str(), self._sampling(request, max_tokens, model))

    def _count(self, text: str, reported: int | None) -> int:
        """The server's count, else the tokenizer's (when there is one), else 0."""
        if reported is not None:
            return reported
        counted = self._prompter.count_tokens(text) if self._prompter else None
        return counted or 0

    async def generate(self, job: TritonJob, *, stream: bool) -> AsyncIterator[Event]:
        parts: list[str] = []
        finish, n_in, n_out = None, None, None
        # aclosing: a client that leaves cancels the gRPC call now, not when the generator is collected.
        async with contextlib.aclosing(self._responses(job.prompt, job.params, stream=stream)) as responses:
            async for response in responses:
                parts.append(response.text)
                finish = response.finish_reason or finish
                n_in = response.input_tokens if response.input_tokens is not None else n_in
                n_out = _add(n_out, response.output_tokens)
                if response.text:
                    yield Piece(response.text)
        completion_tokens = self._count("".join(parts), n_out)
        if finish is None:
            # Servers that do not report a finish reason: a full token budget means it was cut off.
            finish = "length" if completion_tokens >= job.params["max_tokens"] else "stop"
        yield Finish(finish, self._count(job.prompt, n_in), completion_tokens)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _sum(arr: np.ndarray | None) -> int | None:
    return None if arr is None or arr.size == 0 else int(arr.sum())


def _add(total: int | None, n: int | None) -> int | None:
    if n is None:
        return total
    return n if total is None else total + n
