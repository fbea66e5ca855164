"""``GET /v1/models``: the model names clients may send, in OpenAI's list shape."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from distillserve.protocol.http import json_response
from distillserve.protocol.openapi import (
    API_KEY_SCHEME,
    bearer_security,
    error_responses,
    json_answer,
)
from distillserve.protocol.responses import ModelList


def models_router(
    model_ids: Callable[[], list[str]],
    *,
    owned_by: str,
    authorize: Callable[[Request], object] | None = None,
) -> APIRouter:
    """``model_ids`` is asked on every call (the gateway's list changes with hot-swaps);
    ``authorize``, when given, runs as a dependency before the handler."""
    router = APIRouter(tags=["openai"], dependencies=[Depends(authorize)] if authorize is not None else [])

    @router.get(
        "/v1/models",
        summary="List the models clients may name",
        responses={
            200: json_answer(ModelList, "`auto`, the student, the teacher and live adapters."),
            **error_responses(401, 403, 429, 500),
        },
        openapi_extra=bearer_security(API_KEY_SCHEME) if authorize is not None else None,
    )
    async def list_models() -> Response:
        now = int(time.time())
        data = [{"id": m, "object": "model", "created": now, "owned_by": owned_by} for m in model_ids()]
        return json_response({"object": "list", "data": data})

    return router
