"""HTTP layer of the gateway: OpenAI endpoints, auth, body limits, errors, health, metrics.

Bodies are parsed by hand (``protocol.http``) rather than through FastAPI's dependency machinery.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from distillserve.monitoring import metrics
from distillserve.protocol.errors import APIError, Unauthorized, api_error_body, error_body
from distillserve.protocol.http import bearer_token, error_response, json_response, parse_request, read_body
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest
from distillserve.protocol.sse import DONE, encode_event
from distillserve.serving.gateway import Gateway, RoutePlan

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def create_app(
    gateway: Gateway,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    extra_routers: list[Any] | None = None,
) -> FastAPI:
    settings = gateway.settings.server
    keys = [k.get_secret_value() for k in settings.api_keys]
    app = FastAPI(title="distillserve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gateway

    def authorize(request: Request) -> str | None:
        token = bearer_token(request)
        if keys:
            if token is None:
                raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
            if not any(hmac.compare_digest(token, k) for k in keys):
                raise Unauthorized("Incorrect API key provided.")
        return token

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return json_response(error_body(str(exc), "invalid_request_error"), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return json_response(error_body(str(exc.detail), kind), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        return json_response(error_body("The server had an error while processing your request."), 500)

    async def serve(
        request: Request, model: type[ChatCompletionRequest] | type[CompletionRequest]
    ) -> Response:
        started = time.perf_counter()
        endpoint = "chat" if model is ChatCompletionRequest else "completions"
        try:
            api_key = authorize(request)
            req = parse_request(await read_body(request, settings.max_body_bytes), model)
            forced = request.headers.get(gateway.router.cfg.force_header)
            plan = await gateway.plan(req, forced=forced, api_key=api_key)
        except APIError as exc:  # rejected before routing: counted under route "none"
            _observe_rejected(endpoint, str(exc.status_code), started)
            raise
        if req.stream:
            return await _stream(req, plan, endpoint, started)
        metrics.REQUESTS_IN_FLIGHT.labels(route=plan.route).inc()
        status, served = "200", plan
        try:
            body, served = await gateway.complete(req, plan)
            return json_response(body, headers=served.headers())
        except APIError as exc:
            status = str(exc.status_code)
            raise
        finally:
            metrics.REQUESTS_IN_FLIGHT.labels(route=plan.route).dec()
            _observe(endpoint, served, status, started)

    async def _stream(
        req: ChatCompletionRequest | CompletionRequest, plan: RoutePlan, endpoint: str, started: float
    ) -> Response:
        try:
            it, first, served = await gateway.open_stream(req, plan)
        except APIError as exc:
            _observe(endpoint, plan, str(exc.status_code), started)
            raise

        async def events() -> AsyncIterator[bytes]:
            status = "200"
            metrics.REQUESTS_IN_FLIGHT.labels(route=served.route).inc()
            try:
                async for chunk in gateway.relay(req, served, it, first, started):
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

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={**served.headers(), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await serve(request, ChatCompletionRequest)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await serve(request, CompletionRequest)

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        authorize(request)
        now = int(time.time())
        data = [
            {"id": m, "object": "model", "created": now, "owned_by": "distillserve"}
            for m in gateway.model_ids()
        ]
        return json_response({"object": "list", "data": data})

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        student_ok, teacher_ok = await asyncio.gather(
            _healthy(gateway.student.health()), _healthy(gateway.teacher.health())
        )
        ready = student_ok or teacher_ok
        body = {
            "status": "ready" if student_ok and teacher_ok else ("degraded" if ready else "unavailable"),
            "student": student_ok,
            "teacher": teacher_ok,
            "live_adapter": gateway.target.live,
        }
        return json_response(body, 200 if ready else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in extra_routers or []:
        app.include_router(router)
    return app


async def _healthy(check: Any) -> bool:
    try:
        return bool(await asyncio.wait_for(check, 5.0))
    except Exception:
        return False


def _observe_rejected(endpoint: str, status: str, started: float) -> None:
    labels = {"endpoint": endpoint, "route": "none", "backend": "none", "status": status}
    metrics.REQUESTS.labels(**labels).inc()
    metrics.REQUEST_DURATION.labels(**labels).observe(time.perf_counter() - started)


def _observe(endpoint: str, plan: RoutePlan, status: str, started: float) -> None:
    labels = {"endpoint": endpoint, "route": plan.route, "backend": plan.backend.kind, "status": status}
    metrics.REQUESTS.labels(**labels).inc()
    metrics.REQUEST_DURATION.labels(**labels).observe(time.perf_counter() - started)
