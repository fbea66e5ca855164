"""The client API-key check of the OpenAI endpoints (the admin API has its own, ``admin_auth``)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import Request
from pydantic import SecretStr

from distillserve.protocol.errors import Unauthorized
from distillserve.protocol.http import bearer_token


class APIKeyCheck:
    """Lets a request through when it carries one of ``keys`` as its bearer token; with no keys
    configured every request passes. Returns the token (the router may key on it).

    Usable as a FastAPI dependency (``Depends(check)``) or called directly, as the completion
    endpoints do so that a refused key is counted in their metrics."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        self._keys = [k.get_secret_value().encode() for k in keys]

    def __call__(self, request: Request) -> str | None:
        token = bearer_token(request)
        if not self._keys:
            return token
        if token is None:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
        # Bytes, not str: compare_digest refuses non-ASCII str, which would turn a bad key into a 500.
        if not any(hmac.compare_digest(token.encode(), key) for key in self._keys):
            raise Unauthorized("Incorrect API key provided.")
        return token
