"""Exception handlers: every failure leaves the server as an OpenAI-shaped error body
(``protocol.errors.error_body``) with the right status, never as FastAPI's ``{"detail": ...}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from distillserve.protocol.errors import APIError, error_body
from distillserve.protocol.http import error_response, json_response

log = logging.getLogger(__name__)


# Handlers take the exact exception type they are registered for (Starlette dispatches on it).
async def api_error(_: Request, exc: APIError) -> Response:
    return error_response(exc)


async def validation_error(_: Request, exc: RequestValidationError) -> Response:
    return json_response(error_body(str(exc), "invalid_request_error"), 400)


async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return json_response(error_body(str(exc.detail), kind), exc.status_code)


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
