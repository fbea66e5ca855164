"""Pieces of the OpenAPI document that route declarations share: error responses in OpenAI's
shape, request bodies the handlers parse themselves, SSE responses and the bearer-key schemes.

The completion endpoints read their raw body (``protocol.http.parse_request``, the fast path),
so FastAPI cannot see their body model; ``raw_json_body`` declares it through ``openapi_extra``
and ``add_component_schemas`` puts the models it names into ``components.schemas``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from distillserve.protocol.responses import ErrorResponse

REF = "#/components/schemas/{model}"
DONE = "[DONE]"
API_KEY_SCHEME = "APIKey"
ADMIN_KEY_SCHEME = "AdminKey"

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request: malformed JSON, a bad parameter (named in `error.param`).",
    401: "Missing or unknown key.",
    403: "The key may not do this (a route, model or admin action it is not allowed).",
    404: "Unknown model, adapter or version.",
    409: "The registry is in a state that forbids this transition.",
    413: "The request body exceeds `server.max_body_bytes`.",
    429: "Rate limit or budget exceeded; retry after `Retry-After` seconds.",
    500: "Unexpected server error (logged).",
    502: "The upstream backend answered with an error of its own.",
    503: "No backend can serve the request (down, or the adapter is being reloaded).",
    504: "The backend did not answer in time.",
}

_RATE_LIMIT_HEADERS = {
    "Retry-After": "Seconds to wait before retrying.",
    "x-ratelimit-limit-requests": "Requests allowed per window.",
    "x-ratelimit-remaining-requests": "Requests left in the window.",
    "x-ratelimit-reset-requests": "Time until the request window resets, e.g. 1s.",
    "x-ratelimit-limit-tokens": "Tokens allowed per window.",
    "x-ratelimit-remaining-tokens": "Tokens left in the window.",
    "x-ratelimit-reset-tokens": "Time until the token window resets, e.g. 6m0s.",
}

# Statuses every operation behind the client key can answer.
CLIENT_ERRORS = (400, 401, 403, 413, 429, 500)
# What the completion endpoints add: an unknown model and the backend failures.
COMPLETION_ERRORS = (*CLIENT_ERRORS, 404, 502, 503, 504)
# The admin API: its bodies are small and parsed by FastAPI (no 413); the engine may be down.
ADMIN_ERRORS = (400, 401, 403, 404, 500, 503, 504)


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries: each status answers OpenAI's error object."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]}
        if status == 429:
            entry["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in _RATE_LIMIT_HEADERS.items()
            }
        out[status] = entry
    return out


def json_answer(model: type[BaseModel], description: str) -> dict[str, Any]:
    """A ``responses=`` entry for a JSON body described by ``model``."""
    return {"model": model, "description": description}


def streamed_answer(model: type[BaseModel], chunk: type[BaseModel], description: str) -> dict[str, Any]:
    """A 200 that is ``model`` as JSON, or with ``stream: true`` an SSE stream of ``chunk`` events
    (``data: <chunk JSON>``, blank line, ..., ``data: [DONE]``)."""
    # OpenAPI before 3.2 has the event-stream ``schema`` describe one event (3.2 calls it
    # ``itemSchema``): its ``data`` is ``[DONE]`` or JSON, a chunk or an in-band error object.
    data = {
        "type": "string",
        "if": {"const": DONE},
        "else": {
            "contentMediaType": "application/json",
            "contentSchema": {"anyOf": [ref(chunk), ref(ErrorResponse)]},
        },
    }
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": data, "event": {"type": "string"}, "id": {"type": "string"}},
        "description": "One `data:` event; the stream ends with `data: [DONE]`.",
    }
    sse = {"schema": event}
    return {"model": model, "description": description, "content": {"text/event-stream": sse}}


def raw_json_body(model: type[BaseModel], *, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a handler that parses its own body as ``model``."""
    media: dict[str, Any] = {"schema": ref(model)}
    if examples:
        media["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


def bearer_security(scheme: str) -> dict[str, Any]:
    """``openapi_extra`` for an operation behind ``scheme``."""
    return {"security": [{scheme: []}]}


SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    API_KEY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "One of server.api_keys (no key needed when none is configured).",
    },
    ADMIN_KEY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "server.admin_key; the admin API answers 403 when none is configured.",
    },
}


def add_component_schemas(document: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    """Put the validation schemas of ``models`` (and the models they nest) into the document."""
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in top.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    document["components"].setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
