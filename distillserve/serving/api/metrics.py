"""``GET /metrics``: every Prometheus series of the process (declared in ``monitoring.metrics``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from distillserve.monitoring.metrics import multiprocess_registry


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "Prometheus text exposition format 0.0.4."}},
    )
    async def prometheus_metrics() -> Response:
        # Several workers: whichever answers the scrape reports all of them.
        return Response(generate_latest(multiprocess_registry() or REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
