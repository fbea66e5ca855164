"""Assemble the gateway from settings and run it under uvicorn."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI

from distillserve.adapters.adapter_cache import AdapterCache
from distillserve.adapters.admin_api import gateway_admin_router
from distillserve.adapters.control import StudentControl
from distillserve.adapters.hotswap import HotSwapper
from distillserve.adapters.registry_api import gateway_registry_router
from distillserve.adapters.registry_factory import build_registry
from distillserve.adapters.registry_sync import RegistrySync
from distillserve.adapters.student_watch import StudentWatch
from distillserve.adapters.tenant_admin_api import gateway_tenant_router
from distillserve.adapters.validation import AdapterValidator
from distillserve.backends.factory import build_backend
from distillserve.backends.teacher_logprobs import asking_logprobs
from distillserve.config import BackendConfig, RouterConfig, Settings
from distillserve.monitoring import metrics
from distillserve.monitoring.cost import CostLedger
from distillserve.monitoring.graders import configured_graders
from distillserve.monitoring.series import init_gateway_series
from distillserve.protocol.backend import AdapterHost, AdapterRef
from distillserve.router.published_model import shared_router_model
from distillserve.router.refresh_loop import RouterRefresher
from distillserve.router.router import Router
from distillserve.serving.app import create_app
from distillserve.serving.gateway import Gateway
from distillserve.serving.shadow import build_shadow
from distillserve.teacher_log.factory import build_sink

log = logging.getLogger(__name__)


def build_gateway(settings: Settings) -> Gateway:
    student = build_backend(settings.student)
    # One teacher object for every path (served, escalated, failed over, shadow): each call asks for
    # its top-k logprobs, and a refusal is remembered by all of them.
    top_k = settings.teacher.top_logprobs or settings.teacher_log.teacher_top_logprobs
    teacher = asking_logprobs(build_backend(settings.teacher), top_k)
    sink = build_sink(settings.teacher_log)
    shadow = build_shadow(settings, teacher, sink)
    router = Router(
        settings.router, graders=configured_graders(settings), cost=CostLedger.from_settings(settings)
    )
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


def build_validator(cfg: BackendConfig, host: AdapterHost) -> AdapterValidator:
    """What the student's engine accepts: its base model (as the engine says) and its LoRA rank limit."""
    names = frozenset(n for n in (cfg.model_path, cfg.served_model) if n)
    return AdapterValidator(host.served_base, host.max_lora_rank(), also_known_as=names)


@dataclass(frozen=True)
class StudentAdapterControl:
    """The student's adapter life-cycle in this gateway: the hot-swapper, the watch that keeps
    the engine holding the route's adapters, and (``registry.watch``) the registry follower."""

    swapper: HotSwapper
    watch: StudentWatch
    sync: RegistrySync | None


def build_student_control(gw: Gateway) -> StudentAdapterControl | None:
    """Hot-swap, the engine watch and the registry sync, when the student serves LoRA adapters."""
    host = gw.student.adapter_host()
    if host is None:
        return None
    cfg, reg = gw.settings.student, gw.settings.registry
    swapper = HotSwapper(
        gw.student,
        gw.target,
        base_model=cfg.name,
        validator=build_validator(cfg, host),
    )
    watch = StudentWatch(swapper, interval_s=cfg.watch_interval_s, initial=_initial_adapter(cfg))
    host.on_adapter_missing(watch.poke)  # an engine that lost the live adapter pokes the watch
    sync = None
    if reg.watch:
        sync = RegistrySync(
            lambda: build_registry(gw.settings),
            swapper,
            gw,
            AdapterCache(reg.cache_dir),
            poll_interval_s=reg.poll_interval_s,
            unload_after_s=reg.unload_after_s,
        )
    return StudentAdapterControl(swapper, watch, sync)


def _initial_adapter(cfg: BackendConfig) -> AdapterRef | None:
    """The adapter the student must serve from the start (``student.live_adapter``), if any."""
    if not cfg.live_adapter:
        return None
    if not cfg.live_adapter_path:
        raise ValueError("student.live_adapter needs student.live_adapter_path")
    return AdapterRef(cfg.live_adapter, cfg.live_adapter_path)


class GatewayServices:
    """What runs beside the request path, started with the app and stopped with it: the
    teacher-log sink, both backends, the shadow sampler, the router and its refresher, and the
    student's adapter watch and hot-swapper."""

    def __init__(
        self, gateway: Gateway, *, refresher: RouterRefresher, control: StudentAdapterControl | None
    ) -> None:
        self.gateway = gateway
        self.refresher = refresher
        self.control = control

    async def start(self) -> None:
        gw = self.gateway
        await gw.sink.start()
        await gw.student.start()
        await gw.teacher.start()
        if gw.shadow is not None:
            await gw.shadow.start()
        await gw.router.start()  # a learned scorer loads in the background; the heuristic answers meanwhile
        if self.control is not None:
            await self._follow_registry(self.control)
            self.control.watch.start()
        await self.refresher.prime()  # the fleet's published router classifier, before serving
        self.refresher.start()
        log.info(
            "gateway ready: student=%s (%s) teacher=%s (%s)",
            gw.student.name,
            gw.student.kind,
            gw.teacher.name,
            gw.teacher.kind,
        )

    async def _follow_registry(self, control: StudentAdapterControl) -> None:
        """Serve the registry's live version from the first request: apply its state before the
        app accepts connections (the configured ``live_adapter`` yields to it)."""
        if control.sync is None:
            return
        await control.sync.start(self.gateway.settings.registry.startup_timeout_s)
        if control.swapper.target.live is not None:
            control.watch.initial = None

    async def stop(self) -> None:
        gw = self.gateway
        await self.refresher.aclose()
        if self.control is not None:
            if self.control.sync is not None:
                await self.control.sync.aclose()
            await self.control.watch.aclose()
            await self.control.swapper.aclose()
        if gw.shadow is not None:
            await gw.shadow.aclose()  # before the sink closes, so finished pairs are logged
        await gw.student.aclose()
        await gw.teacher.aclose()
        await gw.router.aclose()
        await gw.sink.aclose()

    @asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def build_router_refresher(gw: Gateway, rc: RouterConfig) -> RouterRefresher:
    shared = shared_router_model(gw.router, gw.settings)
    return RouterRefresher(
        gw.router,
        gw.student,
        gw.target,
        every=rc.retrain.every,
        min_examples=rc.retrain.min_examples,
        poll_s=gw.settings.registry.poll_interval_s if shared else 1.0,
        shared=shared,
    )


def build_admin_routers(
    settings: Settings, gw: Gateway, control: StudentAdapterControl | None
) -> list[APIRouter]:
    """The adapter admin API and the registry API, both driving the gateway's hot-swapper."""
    student_control = StudentControl(
        swapper=control.swapper if control else None,
        baselines=gw,
        reserved_names=frozenset({gw.auto_name, gw.student.name, gw.teacher.name}),
        student=f"{gw.student.name!r} ({gw.student.kind})",
        registry_written=control.sync.apply_now if control and control.sync else None,
    )
    return [
        gateway_admin_router(settings, student_control),
        gateway_registry_router(settings, student_control),
        gateway_tenant_router(settings),
    ]


def build_app(settings: Settings, gateway: Gateway | None = None) -> FastAPI:
    gw = gateway or build_gateway(settings)
    control = build_student_control(gw)
    services = GatewayServices(gw, refresher=build_router_refresher(gw, settings.router), control=control)
    routers = build_admin_routers(settings, gw, control)
    return create_app(gw, lifespan=services.lifespan, extra_routers=routers)


#: Where a worker process finds the settings its parent was started with (``server.workers`` > 1).
SETTINGS_ENV = "DISTILLSERVE_WORKER_SETTINGS"


def app_for_worker() -> FastAPI:
    """The app of one uvicorn worker process: the parent's settings, as it pickled them."""
    with open(os.environ[SETTINGS_ENV], "rb") as f:
        settings: Settings = pickle.load(f)  # our own file, written by ``run``
    return build_app(settings)


def run(settings: Settings) -> None:
    s = settings.server
    options: dict[str, Any] = {
        "host": s.host,
        "port": s.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": "info",
        "timeout_graceful_shutdown": 10,
    }
    if s.workers == 1:
        uvicorn.run(build_app(settings), **options)
        return
    if not settings.registry.watch:
        log.warning("%d workers without registry.watch: an adapter swap reaches only one of them", s.workers)
    # Workers are spawned processes: they rebuild the app from the settings (secrets included,
    # so pickled into a file only this user can read, never put in the environment).
    with tempfile.TemporaryDirectory(prefix="distillserve-workers-") as tmp:
        path = os.path.join(tmp, "settings.pickle")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            pickle.dump(settings, f)
        os.environ[SETTINGS_ENV] = path
        # Each spawned worker writes its metric values here; /metrics in any of them sums them all.
        prom = os.path.join(tmp, "prometheus")
        os.mkdir(prom)
        os.environ[metrics.MULTIPROC_ENV] = prom
        uvicorn.run(f"{__name__}:app_for_worker", factory=True, workers=s.workers, **options)
