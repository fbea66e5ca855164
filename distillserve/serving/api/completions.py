"""``POST /v1/chat/completions`` and ``/v1/completions`` through the gateway: check the key, parse
the body (size-limited), apply the key's policy and limits (``serving.keys``), route, then answer
with one JSON body or an SSE stream, and settle the key's limits with the answer's usage. Every request is
counted in ``distillserve_requests_total`` and its duration histogram; one rejected before routing
(bad key, bad body, unknown model) under route and backend ``"none"``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from distillserve.monitoring import metrics
from distillserve.protocol.errors import APIError, api_error_body
from distillserve.protocol.http import json_response, parse_request, read_body
from distillserve.protocol.openapi import (
    API_KEY_SCHEME,
    COMPLETION_ERRORS,
    bearer_security,
    error_responses,
    raw_json_body,
    streamed_answer,
)
from distillserve.protocol.responses import ChatCompletion, ChatCompletionChunk, TextCompletion
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest
from distillserve.protocol.sse import DONE, encode_event
from distillserve.serving.api.auth import APIKeyCheck
from distillserve.serving.gateway import Gateway, RoutePlan
from distillserve.serving.keys.budget import ServedTokens
from distillserve.serving.keys.call_context import LOG_HEADER, current_call
from distillserve.serving.keys.enforcement import KeyEnforcement
from distillserve.serving.keys.limiter import Admission
from distillserve.serving.keys.refusals import KeyLimitError
from distillserve.serving.sse_response import SSEResponse

Endpoint = Literal["chat", "completions"]
OpenAIRequest = ChatCompletionRequest | CompletionRequest
RequestModel = type[ChatCompletionRequest] | type[CompletionRequest]
# Proxies (nginx) must pass events on as they come, and nobody may cache a stream.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# The bodies these endpoints parse themselves; ``create_app`` puts their schemas in the document.
REQUEST_MODELS = (ChatCompletionRequest, CompletionRequest)
ROUTE_NOTE = (
    "`model: auto` lets the router choose student or teacher; the answer's `x-distillserve-route` "
    "header says which served it."
)
CHAT_EXAMPLES = {
    "routed": {"model": "auto", "messages": [{"role": "user", "content": "copy: pillow"}], "max_tokens": 16},
    "streamed": {
        "model": "auto",
        "messages": [{"role": "user", "content": "upper: garden"}],
        "max_tokens": 16,
        "stream": True,
        "stream_options": {"include_usage": True},
    },
}
TEXT_EXAMPLES = {"routed": {"model": "auto", "prompt": "copy: window", "max_tokens": 16}}


def completions_router(gateway: Gateway, authorize: APIKeyCheck, keys: KeyEnforcement) -> APIRouter:
    endpoint = CompletionsEndpoint(gateway, authorize, keys)
    router = APIRouter(tags=["openai"])
    errors = error_responses(*COMPLETION_ERRORS)

    @router.post(
        "/v1/chat/completions",
        summary="Create a chat completion",
        description=ROUTE_NOTE,
        responses={
            200: streamed_answer(ChatCompletion, ChatCompletionChunk, "The answer, or its SSE stream."),
            **errors,
        },
        openapi_extra={
            **raw_json_body(ChatCompletionRequest, examples=CHAT_EXAMPLES),
            **bearer_security(API_KEY_SCHEME),
        },
    )
    async def chat_completions(request: Request) -> Response:
        return await endpoint.serve(request, ChatCompletionRequest)

    @router.post(
        "/v1/completions",
        summary="Create a text completion",
        description=ROUTE_NOTE,
        responses={
            200: streamed_answer(TextCompletion, TextCompletion, "The answer, or its SSE stream."),
            **errors,
        },
        openapi_extra={
            **raw_json_body(CompletionRequest, examples=TEXT_EXAMPLES),
            **bearer_security(API_KEY_SCHEME),
        },
    )
    async def completions(request: Request) -> Response:
        return await endpoint.serve(request, CompletionRequest)

    return router


class CompletionsEndpoint:
    """Serves one completion request of either kind; the two differ only in the body model."""

    def __init__(self, gateway: Gateway, authorize: APIKeyCheck, keys: KeyEnforcement) -> None:
        self.gateway = gateway
        self.authorize = authorize
        self.keys = keys
        self.max_body_bytes = gateway.settings.server.max_body_bytes

    async def serve(self, request: Request, model: RequestModel) -> Response:
        started = time.perf_counter()
        endpoint: Endpoint = "chat" if model is ChatCompletionRequest else "completions"
        try:
            req, plan, admission = await self._plan(request, model)
        except KeyLimitError as exc:  # a 429 with its x-ratelimit-* / Retry-After headers
            _observe_rejected(endpoint, str(exc.status_code), started)
            return json_response(api_error_body(exc), exc.status_code, headers=exc.headers)
        except APIError as exc:  # rejected before routing: counted under route "none"
            _observe_rejected(endpoint, str(exc.status_code), started)
            raise
        if req.stream:
            return await self._stream(req, plan, admission, endpoint, started)
        return await self._complete(req, plan, admission, endpoint, started)

    async def _plan(
        self, request: Request, model: RequestModel
    ) -> tuple[OpenAIRequest, RoutePlan, Admission]:
        caller = self.authorize(request)
        req = parse_request(await read_body(request, self.max_body_bytes), model)
        forced = request.headers.get(self.gateway.router.cfg.force_header)
        req = self.keys.checked(caller, req, forced)
        admission = await self.keys.admit(caller, req)
        try:
            plan = await self.gateway.plan(req, forced=forced, api_key=caller.token)
            plan = self.keys.restricted(caller, plan)
        except APIError:
            await admission.settle(ServedTokens(0, 0))  # nothing served: the reservation goes back
            raise
        self.keys.enter(caller, request.headers.get(LOG_HEADER))
        return req, plan, admission

    async def _complete(
        self, req: OpenAIRequest, plan: RoutePlan, admission: Admission, endpoint: Endpoint, started: float
    ) -> Response:
        metrics.REQUESTS_IN_FLIGHT.labels(route=plan.route).inc()
        status, served, used = "200", plan, ServedTokens(0, 0)  # a failure charges nothing
        try:
            body, served = await self.gateway.complete(req, plan)
            used = self.keys.served(admission, body.get("usage"), served.public_model, served.route)
            return json_response(body, headers={**served.headers(), **admission.headers()})
        except APIError as exc:
            status = str(exc.status_code)
            raise
        finally:
            metrics.REQUESTS_IN_FLIGHT.labels(route=plan.route).dec()
            _observe(endpoint, served, status, started)
            await admission.settle(used)

    async def _stream(
        self, req: OpenAIRequest, plan: RoutePlan, admission: Admission, endpoint: Endpoint, started: float
    ) -> Response:
        # The first chunk is fetched before the response starts, so a dead backend still gets
        # a proper error status (or a fallback) rather than a 200 with an error inside.
        try:
            it, first, served = await self.gateway.open_stream(req, plan)
        except APIError as exc:
            _observe(endpoint, plan, str(exc.status_code), started)
            await admission.settle(ServedTokens(0, 0))
            raise
        return SSEResponse(
            self._events(req, served, it, first, endpoint, started, admission),
            headers={**served.headers(), **admission.headers(), **STREAM_HEADERS},
        )

    async def _events(
        self,
        req: OpenAIRequest,
        served: RoutePlan,
        it: AsyncIterator[dict[str, Any]],
        first: dict[str, Any] | None,
        endpoint: Endpoint,
        started: float,
        admission: Admission,
    ) -> AsyncGenerator[bytes, None]:
        status = "200"
        metrics.REQUESTS_IN_FLIGHT.labels(route=served.route).inc()
        try:
            async for chunk in self.gateway.relay(req, served, it, first, started):
                yield encode_event(chunk)
            yield DONE
        except APIError as exc:
            # Headers are gone already: report the failure in-band, as OpenAI and vLLM do.
            status = str(exc.status_code)
            yield encode_event(api_error_body(exc))
            yield DONE
        except (asyncio.CancelledError, GeneratorExit):
            status = "499"  # client closed the connection; relay's finally stopped the backend
            raise
        finally:
            metrics.REQUESTS_IN_FLIGHT.labels(route=served.route).dec()
            _observe(endpoint, served, status, started)
            call = current_call()
            usage = call.usage if call is not None else None
            used = self.keys.served(admission, usage, served.public_model, served.route)
            self.keys.settle_later(admission, used)


def _observe_rejected(endpoint: Endpoint, status: str, started: float) -> None:
    _count({"endpoint": endpoint, "route": "none", "backend": "none", "status": status}, started)


def _observe(endpoint: Endpoint, plan: RoutePlan, status: str, started: float) -> None:
    _count(
        {"endpoint": endpoint, "route": plan.route, "backend": plan.backend.kind, "status": status},
        started,
    )


def _count(labels: dict[str, str], started: float) -> None:
    metrics.REQUESTS.labels(**labels).inc()
    metrics.REQUEST_DURATION.labels(**labels).observe(time.perf_counter() - started)
