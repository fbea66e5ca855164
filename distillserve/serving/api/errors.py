"""Exception handlers: every failure leaves the server as an OpenAI-shaped error body
(``protocol.errors.error_body``) with the right status, never as FastAPI's ``{"detail": ...}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from distillserve.protocol.errors import APIError, error_body
from distillserve.protocol.http import error_response, json_response

log = logging.getLogger(__name__)


# Handlers take the exact exception type they are registered for (Starlette dispatches on it).
async def api_error(_: Request, exc: APIError) -> Response:
    return error_response(exc)


async def validation_error(_: Request, exc: RequestValidationError) -> Response:
    """A parameter FastAPI parsed (admin bodies, query and path parameters) was bad: OpenAI's
    400 naming the first bad ``param``, as ``protocol.http.parse_request`` does for raw bodies."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    message = f"Invalid value for '{param}': {first.get('msg')}" if param else str(first.get("msg", exc))
    return json_response(error_body(message, "invalid_request_error", param), 400)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return json_response(error_body(str(exc.detail), kind), exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method served at the request's path. Starlette's 405 names only the first route that
    matched the path, but one path may have several (POST and DELETE /admin/student/canary)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


async def unexpected_error(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return json_response(error_body("The server had an error while processing your request."), 500)


def add_api_error_handler(app: FastAPI) -> None:
    """Only ``APIError``: for servers that leave FastAPI's other defaults alone."""
    app.add_exception_handler(APIError, api_error)


def add_error_handlers(app: FastAPI) -> None:
    """``APIError``, bad parameters (400), HTTP errors such as an unknown path (their own status)
    and anything unexpected (500, logged)."""
    add_api_error_handler(app)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
