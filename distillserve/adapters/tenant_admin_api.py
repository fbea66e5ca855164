"""Tenant deletion in the gateway's admin API (admin key required, audit-logged).

    DELETE /admin/tenants/{tenant}/data     request that the tenant's data go: 202
    GET    /admin/tenants/deletions         the deletion requests on record

The request is written to the registry (``tenant_deletions``), the store every distiller reads,
so it reaches the distiller wherever it runs. The answer is 202, not 200: the distiller applies it
at its next run, before it trains anything — it purges the tenant's examples from its replay
store and past held-out set, and skips the tenant's records still in Kafka (both counted in
``distillserve_tenant_deleted_examples_total``). Records stay scrubbed of PII on the broker until
its retention expires; nothing of them trains again. ``distillserve tenants delete`` does the same
from the command line and purges a local replay store at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from distillserve.adapters.admin_audit import AdminAudit, audit_log_path
from distillserve.adapters.admin_auth import admin_key_check, key_id
from distillserve.adapters.registry_factory import build_registry
from distillserve.adapters.tenant_deletions import TenantDeletion, TenantDeletions
from distillserve.config import Settings
from distillserve.protocol.http import bearer_token
from distillserve.protocol.openapi import ADMIN_ERRORS, error_responses

# Tenant names as keys carry them: 1-128 characters, no slash, no control characters.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$"


class DeletionAccepted(BaseModel):
    tenant: str
    requested_at: float
    status: str = "accepted"
    detail: str


class DeletionList(BaseModel):
    deletions: list[TenantDeletion]


def tenant_admin_router(
    deletions: Callable[[], TenantDeletions], admin_key: str | None, *, audit: AdminAudit
) -> APIRouter:
    router = APIRouter(
        prefix="/admin/tenants",
        tags=["admin"],
        dependencies=[Depends(admin_key_check(admin_key))],
        responses=error_responses(*ADMIN_ERRORS),
    )

    @router.delete(
        "/{tenant}/data",
        summary="Delete a tenant's data from the replay store and future training",
        status_code=202,
        response_model=DeletionAccepted,
        responses={202: {"description": "Recorded; the distiller applies it before its next run."}},
    )
    async def delete_tenant_data(
        tenant: Annotated[str, Path(pattern=TENANT_PATTERN, description="The tenant of the API keys.")],
        request: Request,
    ) -> dict[str, Any]:
        with audit.action(request, "delete_tenant_data", tenant=tenant):
            token = bearer_token(request)
            done = deletions().request(tenant, by=key_id(token) if token else None)
        return DeletionAccepted(
            tenant=tenant,
            requested_at=done.requested_at,
            detail="the distiller purges the tenant's replay examples and skips its logged records "
            "from its next run on",
        ).model_dump()

    @router.get("/deletions", summary="Tenant deletion requests on record", response_model=DeletionList)
    async def list_deletions() -> dict[str, Any]:
        return {"deletions": [d.model_dump() for d in deletions().all()]}

    return router


def gateway_tenant_router(settings: Settings) -> APIRouter:
    """The router as the gateway mounts it: the configured registry, admin key and audit log."""
    key = settings.server.admin_key.get_secret_value() if settings.server.admin_key else None
    return tenant_admin_router(
        lambda: TenantDeletions(build_registry(settings)), key, audit=AdminAudit(audit_log_path(settings))
    )
