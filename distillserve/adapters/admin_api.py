"""Admin API for the student's adapters, mounted on the gateway (``create_app(extra_routers=...)``).

Every call needs ``Authorization: Bearer <server.admin_key>``: no key 401, a wrong key (or
an ordinary API key) 403, no admin key configured 403. Errors are OpenAI-shaped.

- ``GET    /admin/student``                        what serves: live, canary + share, loaded, in flight
- ``POST   /admin/student/activate {name, path}``  hot-swap ``name`` (PEFT dir ``path``) in as live
- ``POST   /admin/student/canary {name, path, share}``  send ``share`` of student traffic to it
- ``DELETE /admin/student/canary``                 end the canary

Refused adapters (missing path, not PEFT, another base, rank too high, name already loaded)
answer 400 ``adapter_error`` with the reason; the live version keeps serving. These calls
drive the gateway's ``HotSwapper`` (``StudentControl``); the adapter registry adds versioned
promote / rollback on top of the same object.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from distillserve.adapters.admin_auth import admin_key_check
from distillserve.adapters.control import StudentControl
from distillserve.protocol.errors import AdapterError
from distillserve.protocol.http import json_response, parse_request, read_body

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")
MAX_BODY = 64_000


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


def student_admin_router(control: StudentControl, admin_key: str | None) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin_key_check(admin_key))])

    def check_name(name: str) -> None:
        if name in control.reserved_names:
            raise AdapterError(
                f"{name!r} is a model name clients already use; pick another name", param="name"
            )

    @router.get("/student")
    async def student_status() -> Response:
        return json_response(await control.require_swapper().status())

    @router.post("/student/activate")
    async def activate(request: Request) -> Response:
        swapper = control.require_swapper()
        body = parse_request(await read_body(request, MAX_BODY), ActivateRequest)
        check_name(body.name)
        result = await swapper.activate(body.name, body.path)
        control.baselines.set_drift_baseline(body.name, body.baseline_agreement)
        return json_response(result.to_dict())

    @router.post("/student/canary")
    async def set_canary(request: Request) -> Response:
        swapper = control.require_swapper()
        body = parse_request(await read_body(request, MAX_BODY), CanaryRequest)
        check_name(body.name)
        await swapper.set_canary(body.name, body.path, body.share)
        control.baselines.set_drift_baseline(body.name, body.baseline_agreement)
        return json_response(await swapper.status())

    @router.delete("/student/canary")
    async def clear_canary() -> Response:
        swapper = control.require_swapper()
        await swapper.set_canary(None, None, 0.0)
        return json_response(await swapper.status())

    return router
