"""Assemble the gateway from settings and run it under uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from distillserve.adapters.admin_api import student_admin_router
from distillserve.adapters.control import StudentControl
from distillserve.adapters.hotswap import HotSwapper
from distillserve.adapters.registry_api import gateway_registry_router
from distillserve.adapters.student_watch import StudentWatch
from distillserve.adapters.validation import AdapterValidator, BaseProvider
from distillserve.backends.factory import build_backend
from distillserve.config import BackendConfig, Settings
from distillserve.monitoring.series import init_gateway_series
from distillserve.protocol.backend import AdapterHost, Backend
from distillserve.router.refresh_loop import RouterRefresher
from distillserve.router.router import Router
from distillserve.serving.app import create_app
from distillserve.serving.gateway import Gateway
from distillserve.serving.shadow import ShadowSampler, build_shadow
from distillserve.teacher_log.factory import build_sink

log = logging.getLogger(__name__)


def build_gateway(settings: Settings) -> Gateway:
    student = build_backend(settings.student)
    teacher = build_backend(settings.teacher)
    sink = build_sink(settings.teacher_log)
    shadow = build_shadow(settings, teacher, sink)
    router = Router(settings.router)
    gateway = Gateway(settings, student=student, teacher=teacher, router=router, sink=sink, shadow=shadow)
    if shadow is not None:
        shadow.on_teacher_answer = router.remember_teacher_answer
    init_gateway_series(
        student_backend=student.kind,
        teacher_backend=teacher.kind,
        scorer=settings.router.scorer,
        student_name=student.name,
        live_adapter=gateway.target.live,
        shadow_scorer=shadow.scorer.name if shadow else None,
    )
    return gateway


def _prepared_model(spec: str) -> BaseProvider:
    async def provide() -> str:
        from distillserve.models.prepared import resolve_model

        return str(await asyncio.to_thread(resolve_model, spec))

    return provide


def build_validator(cfg: BackendConfig, backend: Backend) -> AdapterValidator:
    """What the student's engine accepts: its base model (asked from the engine when it can
    say; for the embedded engine the directory its model spec resolves to, else ``model_path``
    when that is a directory) and its maximum LoRA rank."""
    served_base: BaseProvider | str | None = getattr(backend, "served_base", None)
    if served_base is None and cfg.kind == "embedded":
        served_base = _prepared_model(cfg.model_path or "testbed-student")
    elif served_base is None:
        served_base = cfg.model_path if cfg.model_path and Path(cfg.model_path).is_dir() else None
    max_rank = None
    if cfg.kind == "vllm":
        from distillserve.launchers.vllm_process import VLLMEngineArgs

        max_rank = VLLMEngineArgs.of(cfg).max_lora_rank
    names = frozenset(n for n in (cfg.model_path, cfg.served_model) if n)
    return AdapterValidator(served_base, max_rank, also_known_as=names)


def build_student_control(gw: Gateway) -> tuple[HotSwapper, StudentWatch] | None:
    """Hot-swap and the engine watch, when the student serves LoRA adapters."""
    if not isinstance(gw.student, AdapterHost):
        return None
    cfg = gw.settings.student
    swapper = HotSwapper(
        gw.student, gw.target, base_model=cfg.name, validator=build_validator(cfg, gw.student)
    )
    initial = None
    if cfg.live_adapter:
        if not cfg.live_adapter_path:
            raise ValueError("student.live_adapter needs student.live_adapter_path")
        initial = (cfg.live_adapter, cfg.live_adapter_path)
    watch = StudentWatch(swapper, interval_s=cfg.watch_interval_s, initial=initial)
    if hasattr(gw.student, "on_adapter_missing"):
        gw.student.on_adapter_missing = watch.poke
    return swapper, watch


def build_app(settings: Settings, gateway: Gateway | None = None) -> FastAPI:
    gw = gateway or build_gateway(settings)
    control = build_student_control(gw)
    rc = settings.router
    refresher = RouterRefresher(
        gw.router, gw.student, gw.target, every=rc.retrain.every, min_examples=rc.retrain.min_examples
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gw.sink.start()
        await gw.student.start()
        await gw.teacher.start()
        if isinstance(gw.shadow, ShadowSampler):
            await gw.shadow.start()
        await gw.router.start()  # a learned scorer loads in the background; the heuristic answers meanwhile
        refresher.start()
        if control is not None:
            control[1].start()
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
            await refresher.aclose()
            if control is not None:
                await control[1].aclose()
                await control[0].aclose()
            if isinstance(gw.shadow, ShadowSampler):
                await gw.shadow.aclose()  # before the sink closes, so finished pairs are logged
            await gw.student.aclose()
            await gw.teacher.aclose()
            await gw.router.aclose()
            await gw.sink.aclose()

    student_control = StudentControl(
        swapper=control[0] if control else None,
        baselines=gw,
        reserved_names=frozenset({gw.auto_name, gw.student.name, gw.teacher.name}),
        student=f"{gw.student.name!r} ({gw.student.kind})",
    )
    admin_key = settings.server.admin_key.get_secret_value() if settings.server.admin_key else None
    routers = [
        student_admin_router(student_control, admin_key),
        gateway_registry_router(settings, student_control),
    ]
    return create_app(gw, lifespan=lifespan, extra_routers=routers)


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
