"""The gateway's FastAPI application: the endpoint routers of ``serving.api`` and the error
handlers, wired around one ``Gateway``. Starting and stopping the gateway's services is the
caller's ``lifespan`` (``serving.server``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI

from distillserve.serving.api.auth import APIKeyCheck
from distillserve.serving.api.completions import completions_router
from distillserve.serving.api.errors import add_error_handlers
from distillserve.serving.api.health import health_router
from distillserve.serving.api.metrics import metrics_router
from distillserve.serving.api.models import models_router
from distillserve.serving.gateway import Gateway
from distillserve.serving.keys.enforcement import KeyEnforcement

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


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
    return app
