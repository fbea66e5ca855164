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
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from distillserve.distiller.promotion import Promoter
from distillserve.distiller.registry import AdapterRejected, RegistryError, VersionNotFound, diff_eval
from distillserve.serving.errors import APIError, InvalidRequest, ModelNotFound, Unauthorized


class PromoteBody(BaseModel):
    version: str


class CanaryBody(BaseModel):
    version: str | None
    share: float = Field(ge=0.0, le=1.0)


class AdminDisabled(APIError):
    status_code = 404
    type = "invalid_request_error"
    code = "admin_disabled"


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


def admin_key_check(admin_key: str | None) -> Any:
    def check(request: Request) -> None:
        if admin_key is None:
            raise AdminDisabled("the admin API is disabled (set server.admin_key)")
        auth = request.headers.get("authorization", "")
        given = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), admin_key.encode()):
            raise Unauthorized("a valid admin key is required (Authorization: Bearer <admin_key>)")

    return check


def registry_router(promoter: Promoter, admin_key: str | None) -> APIRouter:
    reg = promoter.registry
    router = APIRouter(prefix="/admin/registry", dependencies=[Depends(admin_key_check(admin_key))])

    @router.get("/versions")
    async def list_versions() -> dict[str, Any]:
        cards = [c.model_dump(mode="json", exclude={"history"}) for c in reg.cards()]
        return {"object": "list", "base_model": reg.base_model, "data": cards}

    @router.get("/versions/{version}")
    async def show(version: str) -> dict[str, Any]:
        try:
            return reg.card(version).model_dump(mode="json")
        except RegistryError as exc:
            raise _as_api_error(exc) from None

    @router.get("/diff")
    async def diff(a: str, b: str) -> dict[str, Any]:
        try:
            return diff_eval(reg.card(a), reg.card(b))
        except RegistryError as exc:
            raise _as_api_error(exc) from None

    @router.get("/state")
    async def state() -> dict[str, Any]:
        return reg.state().model_dump(mode="json")

    @router.post("/promote")
    async def promote(body: PromoteBody) -> dict[str, Any]:
        try:
            await promoter.promote(body.version, by="admin-api", reason="promoted by hand")
        except RegistryError as exc:
            raise _as_api_error(exc) from None
        return {"live": body.version, "adapter": reg.adapter_name(body.version)}

    @router.post("/rollback")
    async def rollback() -> dict[str, Any]:
        try:
            target = await promoter.rollback(by="admin-api")
        except RegistryError as exc:
            raise _as_api_error(exc) from None
        return {"live": target, "adapter": reg.adapter_name(target)}

    @router.post("/canary")
    async def canary(body: CanaryBody) -> dict[str, Any]:
        try:
            await promoter.canary(body.version, body.share if body.version else 0.0, by="admin-api")
        except RegistryError as exc:
            raise _as_api_error(exc) from None
        st = reg.state()
        return {"canary": st.canary, "share": st.canary_share}

    return router
