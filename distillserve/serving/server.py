"""Assemble the gateway from settings and run it under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from distillserve.config import Settings
from distillserve.monitoring.series import init_gateway_series
from distillserve.monitoring.shadow import ShadowSampler, build_shadow
from distillserve.router.router import Router
from distillserve.serving.app import create_app
from distillserve.serving.backends.factory import build_backend
from distillserve.serving.gateway import Gateway
from distillserve.teacher_log.factory import build_sink

log = logging.getLogger(__name__)


def build_gateway(settings: Settings) -> Gateway:
    student = build_backend(settings.student)
    teacher = build_backend(settings.teacher)
    sink = build_sink(settings.teacher_log)
    shadow = build_shadow(settings, teacher, sink)
    gateway = Gateway(
        settings, student=student, teacher=teacher, router=Router(settings.router), sink=sink, shadow=shadow
    )
    init_gateway_series(
        student_backend=student.kind,
        teacher_backend=teacher.kind,
        scorer=settings.router.scorer,
        student_name=student.name,
        live_adapter=gateway.target.live,
        shadow_scorer=shadow.scorer.name if shadow else None,
    )
    return gateway


def build_app(settings: Settings, gateway: Gateway | None = None) -> FastAPI:
    gw = gateway or build_gateway(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gw.sink.start()
        await gw.student.start()
        await gw.teacher.start()
        if isinstance(gw.shadow, ShadowSampler):
            await gw.shadow.start()
        await gw.router.start()  # a learned scorer loads in the background; the heuristic answers meanwhile
        log.info(
            "gateway ready: student=%s (%s) teacher=%s (%s)",
            gw.student.name,
            gw.student.kind,
            gw.teacher.name,
            gw.teacher.kind,
        )
        try:
            yield
        finally:
            if isinstance(gw.shadow, ShadowSampler):
                await gw.shadow.aclose()  # before the sink closes, so finished pairs are logged
            await gw.student.aclose()
            await gw.teacher.aclose()
            await gw.router.aclose()
            await gw.sink.aclose()

    return create_app(gw, lifespan=lifespan)


def run(settings: Settings) -> None:
    app = build_app(settings)
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
