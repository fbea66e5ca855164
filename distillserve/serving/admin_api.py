"""Admin API for the student's adapters, mounted on the gateway (``create_app(extra_routers=...)``).

Every call needs ``Authorization: Bearer <server.admin_key>``: no key 401, a wrong key (or
an ordinary API key) 403, no admin key configured 403. Errors are OpenAI-shaped.

- ``GET    /admin/student``                        what serves: live, canary + share, loaded, in flight
- ``POST   /admin/student/activate {name, path}``  hot-swap ``name`` (PEFT dir ``path``) in as live
- ``POST   /admin/student/canary {name, path, share}``  send ``share`` of student traffic to it
- ``DELETE /admin/student/canary``                 end the canary

Refused adapters (missing path, not PEFT, another base, rank too high, name already loaded)
answer 400 ``adapter_error`` with the reason; the live version keeps serving. These calls
drive ``HotSwapper`` (``app.state.hotswapper``); the adapter registry adds versioned
promote / rollback on top of the same object.
"""

from __future__ import annotations

import hmac
import re

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from distillserve.serving.app import bearer_token, json_response, parse_request, read_body
from distillserve.serving.errors import AdapterError, APIError, Unauthorized
from distillserve.serving.gateway import Gateway
from distillserve.serving.hotswap import HotSwapper

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")
MAX_BODY = 64_000


class PermissionDenied(APIError):
    status_code = 403
    type = "invalid_request_error"
    code = "permission_denied"


class ActivateRequest(BaseModel):
    name: str = Field(description="New, unique version name, e.g. student@v7.")
    path: str = Field(description="PEFT adapter directory, readable by the gateway and the engine.")
    # The version's agreement with the teacher in its evaluation: the drift baseline (monitoring).
    baseline_agreement: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Eval agreement with the teacher; drift is measured from it.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(
                "1-128 characters: letters, digits and . _ @ : + -, starting with a letter or digit"
            )
        return v


class CanaryRequest(ActivateRequest):
    share: float = Field(ge=0.0, le=1.0, description="Fraction of student traffic sent to the canary.")


def _authorize(request: Request) -> None:
    gateway: Gateway = request.app.state.gateway
    admin_key = gateway.settings.server.admin_key
    if admin_key is None:
        raise PermissionDenied("The admin API is disabled: set server.admin_key to enable it.")
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Missing admin key: send 'Authorization: Bearer <admin key>'.")
    if not hmac.compare_digest(token, admin_key.get_secret_value()):
        raise PermissionDenied("This key may not use the admin API.")


def _swapper(request: Request) -> HotSwapper:
    swapper: HotSwapper | None = getattr(request.app.state, "hotswapper", None)
    if swapper is None:
        gateway: Gateway = request.app.state.gateway
        raise AdapterError(
            f"The student backend {gateway.student.name!r} ({gateway.student.kind}) does not serve "
            "LoRA adapters; use student.kind vllm or embedded."
        )
    return swapper


def _check_name(request: Request, name: str) -> None:
    gateway: Gateway = request.app.state.gateway
    reserved = {gateway.auto_name, gateway.student.name, gateway.teacher.name}
    if name in reserved:
        raise AdapterError(f"{name!r} is a model name clients already use; pick another name", param="name")


router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/student")
async def student_status(request: Request) -> Response:
    _authorize(request)
    return json_response(await _swapper(request).status())


@router.post("/student/activate")
async def activate(request: Request) -> Response:
    _authorize(request)
    swapper = _swapper(request)
    body = parse_request(await read_body(request, MAX_BODY), ActivateRequest)
    _check_name(request, body.name)
    result = await swapper.activate(body.name, body.path)
    request.app.state.gateway.set_drift_baseline(body.name, body.baseline_agreement)
    return json_response(result.to_dict())


@router.post("/student/canary")
async def set_canary(request: Request) -> Response:
    _authorize(request)
    swapper = _swapper(request)
    body = parse_request(await read_body(request, MAX_BODY), CanaryRequest)
    _check_name(request, body.name)
    await swapper.set_canary(body.name, body.path, body.share)
    request.app.state.gateway.set_drift_baseline(body.name, body.baseline_agreement)
    return json_response(await swapper.status())


@router.delete("/student/canary")
async def clear_canary(request: Request) -> Response:
    _authorize(request)
    swapper = _swapper(request)
    await swapper.set_canary(None, None, 0.0)
    return json_response(await swapper.status())
