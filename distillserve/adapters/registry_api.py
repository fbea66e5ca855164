"""Registry endpoints of the gateway's admin API, for ML engineers (admin key required).

    GET  /admin/registry/versions                list (cards without history)
    GET  /admin/registry/versions/{version}      one card
    GET  /admin/registry/diff?a=v1&b=v2          two versions' eval results and b − a
    GET  /admin/registry/state                   live, canary and share, transition log
    POST /admin/registry/promote   {"version"}   validate, hot-swap, record as live
    POST /admin/registry/rollback                the previous live version, live again
    POST /admin/registry/canary    {"version", "share"}   (version null ends the canary)

When the gateway follows the registry (``registry.watch``), a write loads and probes the version
on every student replica through this gateway, then records it; every gateway, this one
included, switches when it reads the new state (``registry_sync``).

Mounted next to the adapter admin API in the gateway, where the swap is in-process. Errors are
OpenAI-shaped (the gateway's handlers render ``APIError``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from distillserve.adapters.adapter_cache import AdapterCache
from distillserve.adapters.admin_audit import AdminAudit, audit_log_path
from distillserve.adapters.admin_auth import admin_key_check
from distillserve.adapters.admin_schema import CanaryState, EvalDiff, LiveVersion, VersionList, answers
from distillserve.adapters.control import StudentControl
from distillserve.adapters.promotion import Activator, HotSwapActivator, PreparingActivator, Promoter
from distillserve.adapters.registry import (
    AdapterCard,
    AdapterRegistry,
    AdapterRejected,
    RegistryError,
    RegistryState,
    VersionNotFound,
    diff_eval,
)
from distillserve.adapters.registry_factory import build_registry
from distillserve.config import Settings
from distillserve.protocol.errors import APIError, InvalidRequest, ModelNotFound
from distillserve.protocol.openapi import ADMIN_ERRORS, error_responses


class PromoteBody(BaseModel):
    model_config = ConfigDict(strict=True)  # as documented: a string, nothing coerced into one
    version: str = Field(description="A registered version.", examples=["v1"])


class CanaryBody(BaseModel):
    model_config = ConfigDict(strict=True)
    version: str | None = Field(description="The version to canary; null ends the canary.", examples=["v1"])
    share: float = Field(ge=0.0, le=1.0, description="Fraction of student traffic it gets.")


class Conflict(APIError):
    status_code = 409
    type = "invalid_request_error"
    code = "registry_conflict"


def _as_api_error(exc: RegistryError) -> APIError:
    if isinstance(exc, VersionNotFound):
        return ModelNotFound(str(exc), param="version")
    if isinstance(exc, AdapterRejected):
        return InvalidRequest(str(exc), param="version", code="adapter_rejected")
    return Conflict(str(exc))


@contextmanager
def _api_errors() -> Iterator[None]:
    """Registry failures as the client sees them: 404 unknown version, 400 refused adapter,
    409 anything else (a version in the wrong state)."""
    try:
        yield
    except RegistryError as exc:
        raise _as_api_error(exc) from None


class RegistryAccess:
    """The registry the routes serve and the promoter that changes it. ``registry`` may be a
    factory, so a gateway creates the registry on first use only; ``activator`` defaults to the
    gateway's in-process hot-swapper (``control``)."""

    def __init__(
        self,
        registry: AdapterRegistry | Callable[[], AdapterRegistry],
        *,
        activator: Activator | None,
        control: StudentControl | None,
        cache: AdapterCache | None = None,
    ) -> None:
        if activator is None and control is None:
            raise ValueError("registry_router needs an activator or the gateway's student control")
        self._source = registry
        self._registry: AdapterRegistry | None = None
        self._activator = activator
        self._control = control
        self._cache = cache

    def registry(self) -> AdapterRegistry:
        if self._registry is None:
            self._registry = self._source() if callable(self._source) else self._source
        return self._registry

    def promoter(self) -> Promoter:
        if self._activator is not None:
            return Promoter(self.registry(), self._activator, self._cache)
        assert self._control is not None
        control = self._control
        swapper = control.require_swapper()
        if control.follows_registry:
            return Promoter(self.registry(), PreparingActivator(swapper), self._cache)
        return Promoter(self.registry(), HotSwapActivator(swapper, control.baselines), self._cache)

    async def written(self) -> None:
        """The registry's state changed: a gateway that follows it applies it now."""
        if self._control is not None and self._control.registry_written is not None:
            await self._control.registry_written()


def registry_router(
    registry: AdapterRegistry | Callable[[], AdapterRegistry],
    admin_key: str | None,
    *,
    activator: Activator | None = None,
    control: StudentControl | None = None,
    audit: AdminAudit,
    cache: AdapterCache | None = None,
) -> APIRouter:
    """Every registry endpoint behind the admin key (see the module docstring); every write is
    audit-logged."""
    access = RegistryAccess(registry, activator=activator, control=control, cache=cache)
    router = APIRouter(
        prefix="/admin/registry",
        tags=["admin"],
        dependencies=[Depends(admin_key_check(admin_key))],
        responses=error_responses(*ADMIN_ERRORS, 409),
    )
    router.include_router(_read_router(access))
    router.include_router(_write_router(access, audit))
    return router


def _read_router(access: RegistryAccess) -> APIRouter:
    """Versions, one card, a diff and the state: reading only."""
    router = APIRouter()
    reg = access.registry

    @router.get("/versions", **answers(VersionList, "Every version's card, without history."))
    async def list_versions() -> dict[str, Any]:
        r = reg()
        cards = [c.model_dump(mode="json", exclude={"history"}) for c in r.cards()]
        return {"object": "list", "base_model": r.base_model, "data": cards}

    @router.get("/versions/{version}", **answers(AdapterCard, "The version's card."))
    async def show(version: Annotated[str, Path(examples=["v1"])]) -> dict[str, Any]:
        with _api_errors():
            return reg().card(version).model_dump(mode="json")

    @router.get("/diff", **answers(EvalDiff, "Eval results of a and b, and b - a."))
    async def diff(
        a: Annotated[str, Query(examples=["v1"])], b: Annotated[str, Query(examples=["v1"])]
    ) -> dict[str, Any]:
        with _api_errors():
            return diff_eval(reg().card(a), reg().card(b))

    @router.get("/state", **answers(RegistryState, "Live, canary and the transition log."))
    async def state() -> dict[str, Any]:
        return reg().state().model_dump(mode="json")

    return router


def _write_router(access: RegistryAccess, audit: AdminAudit) -> APIRouter:
    """Promote, rollback and canary: each validates, hot-swaps and records the transition."""
    router = APIRouter()
    reg = access.registry

    @router.post("/promote", **answers(LiveVersion, "The version now live."))
    async def promote(body: PromoteBody, request: Request) -> dict[str, Any]:
        with audit.action(request, "promote", version=body.version), _api_errors():
            await access.promoter().promote(body.version, by="admin-api", reason="promoted by hand")
        await access.written()
        return {"live": body.version, "adapter": reg().adapter_name(body.version)}

    @router.post("/rollback", **answers(LiveVersion, "The version live again."))
    async def rollback(request: Request) -> dict[str, Any]:
        with audit.action(request, "rollback"), _api_errors():
            target = await access.promoter().rollback(by="admin-api")
        await access.written()
        return {"live": target, "adapter": reg().adapter_name(target)}

    @router.post("/canary", **answers(CanaryState, "The canary now."))
    async def canary(body: CanaryBody, request: Request) -> dict[str, Any]:
        share = body.share if body.version else 0.0
        with audit.action(request, "registry_canary", version=body.version, share=share), _api_errors():
            await access.promoter().canary(body.version, share, by="admin-api")
        await access.written()
        st = reg().state()
        return {"canary": st.canary, "share": st.canary_share}

    return router


def gateway_registry_router(settings: Settings, control: StudentControl) -> APIRouter:
    """The router as the gateway mounts it: the configured registry, the server's admin key,
    promotions through the gateway's own hot-swapper."""
    key = settings.server.admin_key.get_secret_value() if settings.server.admin_key else None
    cache = AdapterCache(settings.registry.cache_dir)
    audit = AdminAudit(audit_log_path(settings))
    return registry_router(lambda: build_registry(settings), key, control=control, audit=audit, cache=cache)
