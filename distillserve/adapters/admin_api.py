"""Admin API for the student's adapters, mounted on the gateway (``create_app(extra_routers=...)``).

Every call needs ``Authorization: Bearer <server.admin_key>``: no key 401, a wrong key (or
an ordinary API key) 403, no admin key configured 403. Errors are OpenAI-shaped.

- ``GET    /admin/student``                        what serves: live, canary + share, loaded, in flight
- ``POST   /admin/student/activate {name, path}``  hot-swap ``name`` (PEFT dir ``path``) in as live
- ``POST   /admin/student/canary {name, path, share}``  send ``share`` of student traffic to it
- ``DELETE /admin/student/canary``                 end the canary

``path`` must sit under the registry root or a directory of ``admin.adapter_roots``; any other
path is refused with 403 ``adapter_path_forbidden``, the same answer whether it exists or not.
Refused adapters (missing path, not PEFT, another base, rank too high, name already loaded)
answer 400 ``adapter_error`` with the reason; the live version keeps serving. Every change is
audit-logged (``admin_audit``). These calls drive the gateway's ``HotSwapper``
(``StudentControl``); the adapter registry adds versioned promote / rollback on top of it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from distillserve.adapters.admin_audit import AdminAudit, allowed_adapter_roots, audit_log_path
from distillserve.adapters.admin_auth import admin_key_check
from distillserve.adapters.admin_schema import StudentStatus, SwapOutcome, answers
from distillserve.adapters.control import StudentControl
from distillserve.adapters.validation import AdapterPathPolicy
from distillserve.config import Settings
from distillserve.protocol.errors import APIError
from distillserve.protocol.openapi import ADMIN_ERRORS, error_responses

# 1-128 characters: letters, digits and . _ @ : + -, starting with a letter or digit.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$"


class ActivateRequest(BaseModel):
    # Strict: the OpenAPI document says number and string, so "0.5" is refused, not coerced.
    model_config = ConfigDict(strict=True)

    name: str = Field(pattern=NAME_PATTERN, description="New, unique version name, e.g. student@v7.")
    path: str = Field(
        description="PEFT adapter directory under the registry root or admin.adapter_roots, "
        "readable by the gateway and the engine."
    )
    # The version's agreement with the teacher in its evaluation: the drift baseline (monitoring).
    baseline_agreement: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Eval agreement with the teacher; drift is measured from it.",
    )


class CanaryRequest(ActivateRequest):
    share: float = Field(ge=0.0, le=1.0, description="Fraction of student traffic sent to the canary.")


def student_admin_router(
    control: StudentControl,
    admin_key: str | None,
    *,
    paths: AdapterPathPolicy,
    audit: AdminAudit,
) -> APIRouter:
    router = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(admin_key_check(admin_key))],
        responses=error_responses(*ADMIN_ERRORS, 409),
    )

    def checked(body: ActivateRequest) -> str:
        return _checked_path(body, control, paths)

    @router.get("/student", summary="What the student serves", **answers(StudentStatus, "The student."))
    async def student_status() -> dict[str, Any]:
        return await control.require_swapper().status()

    @router.post(
        "/student/activate",
        summary="Hot-swap an adapter in as live",
        **answers(SwapOutcome, "Live, with the swap's duration."),
    )
    async def activate(body: ActivateRequest, request: Request) -> dict[str, Any]:
        with audit.action(request, "load", name=body.name, path=body.path):
            swapper = control.require_swapper()
            result = await swapper.activate(body.name, checked(body))
            control.baselines.set_drift_baseline(body.name, body.baseline_agreement)
        return result.to_dict()

    @router.post(
        "/student/canary",
        summary="Send a share of student traffic to an adapter",
        **answers(StudentStatus, "The student with its canary."),
    )
    async def set_canary(body: CanaryRequest, request: Request) -> dict[str, Any]:
        with audit.action(request, "canary", name=body.name, path=body.path, share=body.share):
            swapper = control.require_swapper()
            await swapper.set_canary(body.name, checked(body), body.share)
            control.baselines.set_drift_baseline(body.name, body.baseline_agreement)
        return await swapper.status()

    @router.delete(
        "/student/canary",
        summary="End the canary (its adapter unloads once drained)",
        **answers(StudentStatus, "The student without a canary."),
    )
    async def clear_canary(request: Request) -> dict[str, Any]:
        with audit.action(request, "unload_canary"):
            swapper = control.require_swapper()
            await swapper.set_canary(None, None, 0.0)
        return await swapper.status()

    return router


def _checked_path(body: ActivateRequest, control: StudentControl, paths: AdapterPathPolicy) -> str:
    """The adapter's path as confined, after the name check."""
    if body.name in control.reserved_names:
        # 409, not 400: the body is well formed, the name is taken (as OpenAI answers a clash).
        raise APIError(
            f"{body.name!r} is a model name clients already use; pick another name",
            status_code=409,
            type="invalid_request_error",
            param="name",
            code="adapter_name_taken",
        )
    return paths.confine(body.path)


def gateway_admin_router(settings: Settings, control: StudentControl) -> APIRouter:
    """The router as the gateway mounts it: the server's admin key, paths confined to the
    registry and ``admin.adapter_roots``, the audit log of ``audit_log_path``."""
    key = settings.server.admin_key.get_secret_value() if settings.server.admin_key else None
    return student_admin_router(
        control,
        key,
        paths=AdapterPathPolicy(allowed_adapter_roots(settings)),
        audit=AdminAudit(audit_log_path(settings)),
    )
