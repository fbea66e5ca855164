"""``GET /v1/models``: the model names clients may send, in OpenAI's list shape."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from distillserve.protocol.http import json_response


def models_router(
    model_ids: Callable[[], list[str]],
    *,
    owned_by: str,
    authorize: Callable[[Request], object] | None = None,
) -> APIRouter:
    """``model_ids`` is asked on every call (the gateway's list changes with hot-swaps);
    ``authorize``, when given, runs as a dependency before the handler."""
    router = APIRouter(dependencies=[Depends(authorize)] if authorize is not None else [])

    @router.get("/v1/models")
    async def list_models() -> Response:
        now = int(time.time())
        data = [{"id": m, "object": "model", "created": now, "owned_by": owned_by} for m in model_ids()]
        return json_response({"object": "list", "data": data})

    return router
