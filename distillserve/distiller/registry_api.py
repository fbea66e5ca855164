"""Registry endpoints of the gateway's admin API, for ML engineers (admin key required).

    GET  /admin/registry/versions                list (cards without history)
    GET  /admin/registry/versions/{version}      one card
    GET  /admin/registry/diff?a=v1&b=v2          two versions' eval results and b − a
    GET  /admin/registry/state                   live, canary and share, transition log
    POST /admin/registry/promote   {"version"}   validate, hot-swap, record as live
    POST /admin/registry/rollback                the previous live version, live again
    POST /admin/registry/canary    {"version", "share"}   (version null ends the canary)

Mounted next to the adapter admin API in the gateway, where the swap is in-process. Errors are
OpenAI-shaped (the gateway's handlers render ``APIError``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from distillserve.config import Settings
from distillserve.distiller.promotion import Activator, HotSwapActivator, Promoter
from distillserve.distiller.registry import (
    AdapterRegistry,
    AdapterRejected,
    RegistryError,
    VersionNotFound,
    diff_eval,
)
from distillserve.serving.admin_api import PermissionDenied
from distillserve.serving.app import bearer_token
from distillserve.serving.errors import AdapterError, APIError, InvalidRequest, ModelNotFound, Unauthorized


class PromoteBody(BaseModel):
    version: str


class CanaryBody(BaseModel):
    version: str | None
    share: float = Field(ge=0.0, le=1.0)


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


def admin_key_check(admin_key: str | None) -> Callable[[Request], None]:
    """Same rules as the student admin API: no key 401, a wrong key 403, admin disabled 403."""

    def check(request: Request) -> None:
        if admin_key is None:
            raise PermissionDenied("The admin API is disabled: set server.admin_key to enable it.")
        token = bearer_token(request)
        if token is None:
            raise Unauthorized("Missing admin key: send 'Authorization: Bearer <admin key>'.")
        if not hmac.compare_digest(token.encode(), admin_key.encode()):
            raise PermissionDenied("This key may not use the admin API.")

    return check


def _app_activator(request: Request) -> Activator:
    """The gateway's own hot-swapper (``app.state.hotswapper``), when the student hosts adapters."""
    swapper = getattr(request.app.state, "hotswapper", None)
    if swapper is None:
        raise AdapterError(
            "the student backend does not serve LoRA adapters; use student.kind vllm or embedded"
        )
    return HotSwapActivator(swapper, getattr(request.app.state, "gateway", None))


def registry_router(
    registry: AdapterRegistry | Callable[[], AdapterRegistry],
    admin_key: str | None,
    *,
    activator: Activator | None = None,
) -> APIRouter:
    """``registry`` may be a factory, so a gateway creates the registry on first use only.
    ``activator`` defaults to the gateway's in-process hot-swapper."""
    router = APIRouter(prefix="/admin/registry", dependencies=[Depends(admin_key_check(admin_key))])
    holder: list[AdapterRegistry] = []

    def reg() -> AdapterRegistry:
        if not holder:
            holder.append(registry() if callable(registry) else registry)
        return holder[0]

    def promoter(request: Request) -> Promoter:
        return Promoter(reg(), activator or _app_activator(request))

    @router.get("/versions")
    async def list_versions() -> dict[str, Any]:
        r = reg()
        cards = [c.model_dump(mode="json", exclude={"history"}) for c in r.cards()]
        return {"object": "list", "base_model": r.base_model, "data": cards}

    @router.get("/versions/{version}")
    async def show(version: str) -> dict[str, Any]:
        try:
            return reg().card(version).model_dump(mode="json")
        except RegistryError as exc:
            raise _as_api_error(exc) from None

    @router.get("/diff")
    async def diff(a: str, b: str) -> dict[str, Any]:
        try:
            return diff_eval(reg().card(a), reg().card(b))
        except RegistryError as exc:
            raise _as_api_error(exc) from None

    @router.get("/state")
    async def state() -> dict[str, Any]:
        return reg().state().model_dump(mode="json")

    @router.post("/promote")
    async def promote(body: PromoteBody, request: Request) -> dict[str, Any]:
        try:
            await promoter(request).promote(body.version, by="admin-api", reason="promoted by hand")
        except RegistryError as exc:
            raise _as_api_error(exc) from None
        return {"live": body.version, "adapter": reg().adapter_name(body.version)}

    @router.post("/rollback")
    async def rollback(request: Request) -> dict[str, Any]:
        try:
            target = await promoter(request).rollback(by="admin-api")
        except RegistryError as exc:
            raise _as_api_error(exc) from None
        return {"live": target, "adapter": reg().adapter_name(target)}

    @router.post("/canary")
    async def canary(body: CanaryBody, request: Request) -> dict[str, Any]:
        try:
            await promoter(request).canary(body.version, body.share if body.version else 0.0, by="admin-api")
        except RegistryError as exc:
            raise _as_api_error(exc) from None
        st = reg().state()
        return {"canary": st.canary, "share": st.canary_share}

    return router


def gateway_registry_router(settings: Settings) -> APIRouter:
    """The router as the gateway mounts it: the configured registry, the server's admin key."""
    from distillserve.distiller.assembly import build_registry

    key = settings.server.admin_key.get_secret_value() if settings.server.admin_key else None
    return registry_router(lambda: build_registry(settings), key)
