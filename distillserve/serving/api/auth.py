"""The client API-key check of the OpenAI endpoints (the admin API has its own, ``admin_auth``)."""

from __future__ import annotations

from fastapi import Request

from distillserve.protocol.errors import Unauthorized
from distillserve.protocol.http import bearer_token
from distillserve.serving.keys.keyring import Caller, KeyRing


class APIKeyCheck:
    """Lets a request through when its bearer token is a key of ``ring`` and returns who called
    (tenant and policy); with no keys configured every request passes, as an unrestricted caller.

    Usable as a FastAPI dependency (``Depends(check)``) or called directly, as the completion
    endpoints do so that a refused key is counted in their metrics."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def __call__(self, request: Request) -> Caller:
        token = bearer_token(request)
        if not self.ring.required:
            return self.ring.anonymous(token)
        if token is None:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
        caller = self.ring.lookup(token)
        if caller is None:
            raise Unauthorized("Incorrect API key provided.")
        return caller
