"""The audit trail of the admin API: who did what, when, and how it ended.

Each admin action (load, canary, canary end, promote, rollback) becomes one JSON object, written
as a structured log line (logger ``distillserve.audit``) and appended to a JSONL file that nothing
rewrites. Who: the admin key's id (a hash prefix, never the key) and the client's address. Refused
attempts are recorded too: a path outside the allowed roots is exactly what an audit is for.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
from fastapi import Request

from distillserve.adapters.admin_auth import key_id
from distillserve.config import Settings, cache_dir
from distillserve.protocol.errors import APIError
from distillserve.protocol.http import bearer_token

log = logging.getLogger("distillserve.audit")


class AdminAudit:
    """Appends one record per admin action to ``path`` (created with its directory)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @contextmanager
    def action(self, request: Request, what: str, **params: Any) -> Iterator[None]:
        """Record ``what`` with ``params`` once the block ends: ``ok``, or the error's status."""
        started = time.time()
        outcome: dict[str, Any] = {"outcome": "ok", "status": 200}
        try:
            yield
        except APIError as exc:
            outcome = {"outcome": "refused", "status": exc.status_code, "code": exc.code}
            raise
        except BaseException:
            outcome = {"outcome": "error", "status": 500}
            raise
        finally:
            self.write({**_who(request, started), "action": what, "params": params, **outcome})

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str)
        log.info("admin action %s", line)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: every line lands whole at the end, also with several writers.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)


def _who(request: Request, started: float) -> dict[str, Any]:
    token = bearer_token(request)
    return {
        "time": datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds"),
        "key_id": key_id(token) if token else None,
        "client": request.client.host if request.client else None,
    }


def local_registry_root(url: str) -> str | None:
    """The registry's directory when it is on this machine's filesystem."""
    fs, root = fsspec.core.url_to_fs(url)
    return root if "file" in fs.protocol or "local" in fs.protocol else None


def audit_log_path(settings: Settings) -> Path:
    """``admin.audit_log``, else ``audit.jsonl`` in a local registry, else in the cache directory."""
    if settings.admin.audit_log:
        return Path(settings.admin.audit_log)
    root = local_registry_root(settings.registry.url)
    return Path(root) / "audit.jsonl" if root else cache_dir() / "admin-audit.jsonl"


def allowed_adapter_roots(settings: Settings) -> list[str]:
    """The registry root (a directory or a URL) and ``admin.adapter_roots``."""
    return [settings.registry.url, *settings.admin.adapter_roots]
