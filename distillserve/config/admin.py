"""The admin API's confinement and audit trail."""

from __future__ import annotations

from pydantic import Field

from distillserve.config.strict_model import StrictModel


class AdminConfig(StrictModel):
    # Directories (or fsspec URL prefixes) besides the registry root that adapter paths given to
    # the admin API may sit under; anything else is refused.
    adapter_roots: list[str] = Field(default_factory=list)
    # Append-only JSONL record of admin actions; None = ``audit.jsonl`` in a local registry's
    # root, else ``admin-audit.jsonl`` in the cache directory.
    audit_log: str | None = None
