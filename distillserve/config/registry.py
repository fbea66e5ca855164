"""The adapter registry: where versions live and the name they are served under."""

from __future__ import annotations

from distillserve.config.paths import cache_dir
from distillserve.config.strict_model import StrictModel


class RegistryConfig(StrictModel):
    # Local directory or any fsspec URL.
    url: str = str(cache_dir() / "registry")
    # Name the live adapter versions are served under: ``<name>@v<N>``.
    adapter_prefix: str = "student"
