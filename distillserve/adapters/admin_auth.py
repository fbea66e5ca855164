"""The one admin-key check of every ``/admin/*`` router: no key 401, a wrong key (or an ordinary
API key) 403, no admin key configured 403 (the admin API is off)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from fastapi import Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from distillserve.protocol.errors import PermissionDenied, Unauthorized
from distillserve.protocol.openapi import ADMIN_KEY_SCHEME

# auto_error=False: our check answers in OpenAI's error shape; the scheme also documents the key.
_ADMIN_BEARER = HTTPBearer(auto_error=False, scheme_name=ADMIN_KEY_SCHEME)

AdminCheck = Callable[[HTTPAuthorizationCredentials | None], None]


def admin_key_check(admin_key: str | None) -> AdminCheck:
    """A FastAPI dependency that lets only ``admin_key`` through."""

    def check(credentials: HTTPAuthorizationCredentials | None = Security(_ADMIN_BEARER)) -> None:
        if admin_key is None:
            raise PermissionDenied("The admin API is disabled: set server.admin_key to enable it.")
        token = credentials.credentials.strip() if credentials else ""
        if not token:
            raise Unauthorized("Missing admin key: send 'Authorization: Bearer <admin key>'.")
        if not hmac.compare_digest(token.encode(), admin_key.encode()):
            raise PermissionDenied("This key may not use the admin API.")

    return check


def key_id(token: str) -> str:
    """How logs name a key without holding it: a prefix of its SHA-256."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]
