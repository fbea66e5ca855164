"""Tenant deletion requests, kept in the adapter registry: the list every distiller reads.

A deletion request by tenant (GDPR art. 17 style) must reach every part that holds the tenant's
data, wherever it runs. The registry is already the store the whole fleet reads, so the request
is one small object there, ``tenant-deletions/<hash>.json``, next to the base models' folders
(a deletion covers every base). The distiller reads the list at each run: it purges the tenant's
examples from its replay store and past held-out set, and skips the tenant's records still in
Kafka (counted), so nothing of the tenant trains a future adapter.

One object per tenant (named by a hash, since tenant names are free text): writers never
read-modify-write a shared list, and a second request for the same tenant just replaces it.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
import uuid

import orjson
from pydantic import BaseModel, Field

from distillserve.adapters.registry import AdapterRegistry

FOLDER = "tenant-deletions"


class TenantDeletion(BaseModel):
    tenant: str
    requested_at: float = Field(default_factory=time.time)
    # Who asked: the admin key's id, or ``cli:<user>``.
    by: str | None = None


def _object_name(tenant: str) -> str:
    return hashlib.blake2b(tenant.encode(), digest_size=16).hexdigest() + ".json"


class TenantDeletions:
    """The deletion requests of the registry that holds ``registry``."""

    def __init__(self, registry: AdapterRegistry) -> None:
        self.fs = registry.fs
        self.local = registry.local
        # The registry's top, above the per-base folders: one list for every base model.
        self.folder = posixpath.join(posixpath.dirname(registry.root.rstrip("/")), FOLDER)

    def request(self, tenant: str, *, by: str | None = None) -> TenantDeletion:
        """Record that ``tenant``'s data must go; idempotent (a repeat refreshes the time)."""
        deletion = TenantDeletion(tenant=tenant, by=by)
        self.fs.makedirs(self.folder, exist_ok=True)
        path = posixpath.join(self.folder, _object_name(tenant))
        data = orjson.dumps(deletion.model_dump(mode="json"))
        if self.local:  # readers must never see half a file: write aside, then rename
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        else:
            self.fs.pipe_file(path, data)  # one PUT is atomic on object stores
        return deletion

    def all(self) -> list[TenantDeletion]:
        self.fs.invalidate_cache(self.folder)  # other pods write here
        try:
            entries = self.fs.ls(self.folder, detail=False)
        except FileNotFoundError:
            return []
        files = [e for e in entries if e.endswith(".json")]
        return [TenantDeletion.model_validate(orjson.loads(self.fs.cat_file(f))) for f in files]

    def tenants(self) -> frozenset[str]:
        """The tenants whose data must not be kept or trained on."""
        return frozenset(d.tenant for d in self.all())
