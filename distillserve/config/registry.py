"""The adapter registry: where versions live, the name they are served under, and how every
gateway follows it (the registry's ``state.json`` is the fleet's one truth)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from distillserve.config.paths import cache_dir
from distillserve.config.strict_model import StrictModel


class RegistryConfig(StrictModel):
    # Local directory or any fsspec URL (``s3://bucket/prefix``).
    url: str = str(cache_dir() / "registry")
    # fsspec storage options of ``url`` (s3fs: endpoint_url, key, secret, client_kwargs...).
    storage_options: dict[str, Any] = Field(default_factory=dict)
    # Name the live adapter versions are served under: ``<name>@v<N>``.
    adapter_prefix: str = "student"
    # Follow the registry: poll ``state.json`` (one HEAD/stat) and converge the student route on
    # its live version, canary and drift baselines. Off: only the admin calls this gateway gets.
    watch: bool = True
    # Seconds between two polls; a promotion reaches every gateway within about this much.
    poll_interval_s: float = Field(default=1.0, gt=0)
    # A version retired this many seconds ago is unloaded from the engines: longer than any
    # gateway takes to converge, so no gateway still routes to it.
    unload_after_s: float = Field(default=30.0, ge=0)
    # Where adapters are copied (by content hash) before an engine loads them. Student engines
    # must read this path too (the same host, or a volume every pod mounts). Default: the cache.
    cache_dir: str | None = None
    # At start, how long the gateway waits for its student engine to take the live version
    # before it serves (then it serves the base model and keeps converging in the background).
    startup_timeout_s: float = Field(default=60.0, ge=0)
