"""Liveness (``/healthz``: the process answers) and readiness (``/readyz``: a backend can serve)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from distillserve.protocol.http import json_response
from distillserve.serving.gateway import Gateway

HEALTH_CHECK_TIMEOUT_S = 5.0


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    student: bool
    teacher: bool
    live_adapter: str | None


def liveness_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness", responses={200: {"model": Liveness}})
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    return router


def health_router(gateway: Gateway) -> APIRouter:
    """``/healthz`` and ``/readyz``: ready (200) while the student or the teacher is healthy,
    ``degraded`` when only one is; 503 when neither is."""
    router = liveness_router()

    @router.get(
        "/readyz",
        summary="Readiness",
        responses={
            200: {"model": Readiness, "description": "The student or the teacher can serve."},
            503: {"model": Readiness, "description": "Neither backend can serve."},
        },
    )
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

    return router


async def _healthy(check: Awaitable[bool]) -> bool:
    """A failing or hanging health check counts as unhealthy, never as an error of ``/readyz``."""
    try:
        return bool(await asyncio.wait_for(check, HEALTH_CHECK_TIMEOUT_S))
    except Exception:
        return False
