"""The one admin-key check of every ``/admin/*`` router: no key 401, a wrong key (or an ordinary
API key) 403, no admin key configured 403 (the admin API is off)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request

from distillserve.protocol.errors import PermissionDenied, Unauthorized
from distillserve.protocol.http import bearer_token


def admin_key_check(admin_key: str | None) -> Callable[[Request], None]:
    """A FastAPI dependency that lets only ``admin_key`` through."""

    def check(request: Request) -> None:
        if admin_key is None:
            raise PermissionDenied("The admin API is disabled: set server.admin_key to enable it.")
        token = bearer_token(request)
        if token is None:
            raise Unauthorized("Missing admin key: send 'Authorization: Bearer <admin key>'.")
        if not hmac.compare_digest(token.encode(), admin_key.encode()):
            raise PermissionDenied("This key may not use the admin API.")

    return check
