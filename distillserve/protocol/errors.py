"""OpenAI-style errors: one exception type, one function that builds every error body."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error a client should see, with the HTTP status and OpenAI error fields."""

    status_code: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param


class InvalidRequest(APIError):
    status_code = 400
    type = "invalid_request_error"


class Unauthorized(APIError):
    status_code = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(APIError):
    status_code = 403
    type = "invalid_request_error"
    code = "permission_denied"


class ModelNotFound(APIError):
    status_code = 404
    type = "invalid_request_error"
    code = "model_not_found"


class BodyTooLarge(APIError):
    status_code = 413
    type = "invalid_request_error"
    code = "request_too_large"


class BackendUnavailable(APIError):
    """The backend cannot be reached (connection refused, dead process)."""

    status_code = 503
    type = "server_error"
    code = "backend_unavailable"


class BackendTimeout(APIError):
    status_code = 504
    type = "server_error"
    code = "backend_timeout"


class BadUpstreamResponse(APIError):
    """The upstream answered 200 with something that is not an answer: not JSON, no choices, or
    a stream cut off before its finish reason. Not a failover error: the backend is up, and
    the client is told plainly that its answer was broken."""

    status_code = 502
    type = "server_error"
    code = "bad_upstream_response"


class BackendRejected(APIError):
    """The upstream answered with an error of its own; we relay its status and message."""

    type = "invalid_request_error"


class AdapterError(APIError):
    """An adapter could not be loaded, swapped or unloaded; the live version is unchanged."""

    status_code = 400
    type = "invalid_request_error"
    code = "adapter_error"


class AdapterNotLoaded(BackendUnavailable):
    """The engine no longer holds the adapter the route points at (it restarted, or lost it).
    A 503, so ``model: auto`` fails over while the gateway reloads the adapter."""

    code = "adapter_not_loaded"


def error_body(
    message: str, type: str = "server_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def api_error_body(err: APIError) -> dict[str, Any]:
    return error_body(err.message, err.type, err.param, err.code)
