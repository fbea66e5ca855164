"""The gateway's FastAPI application: the endpoint routers of ``serving.api`` and the error
handlers, wired around one ``Gateway``. Starting and stopping the gateway's services is the
caller's ``lifespan`` (``serving.server``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from distillserve.protocol.openapi import add_component_schemas
from distillserve.protocol.responses import RESPONSE_MODELS
from distillserve.serving.api.auth import APIKeyCheck
from distillserve.serving.api.completions import REQUEST_MODELS, completions_router
from distillserve.serving.api.errors import add_error_handlers
from distillserve.serving.api.health import health_router
from distillserve.serving.api.metrics import metrics_router
from distillserve.serving.api.models import models_router
from distillserve.serving.gateway import Gateway
from distillserve.serving.keys.enforcement import KeyEnforcement

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

DESCRIPTION = (
    "An OpenAI-compatible gateway that routes each request to a small LoRA student or a large "
    "teacher. Errors use OpenAI's error object. With `stream: true` the completion endpoints "
    "answer `text/event-stream`: `data: <chunk JSON>` events, then `data: [DONE]`."
)


def create_app(
    gateway: Gateway,
    *,
    lifespan: Lifespan | None = None,
    extra_routers: Sequence[APIRouter] | None = None,
) -> FastAPI:
    """The OpenAI endpoints, health and metrics of ``gateway``, plus ``extra_routers`` (the admin
    APIs). Clients need a key of ``keys`` or ``server.api_keys`` when any is configured."""
    keys = KeyEnforcement.from_settings(gateway.settings)
    authorize = APIKeyCheck(keys.ring)
    app = FastAPI(title="distillserve", lifespan=lifespan, docs_url=None, redoc_url=None)
    add_error_handlers(app)
    routers = [
        completions_router(gateway, authorize, keys),
        models_router(gateway.model_ids, owned_by="distillserve", authorize=authorize),
        health_router(gateway),
        metrics_router(),
        *(extra_routers or ()),
    ]
    for router in routers:
        app.include_router(router)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the bodies the completion endpoints parse themselves and the
    response models, built once."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=DESCRIPTION,
            routes=app.routes,
        )
        add_component_schemas(document, (*REQUEST_MODELS, *RESPONSE_MODELS))
        _drop_validation_422(document)
        app.openapi_schema = document
    return app.openapi_schema


def _drop_validation_422(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 for every parsed parameter; ``serving.api.errors`` answers those
    failures with OpenAI's 400, which the routes document instead."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
