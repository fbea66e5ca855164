"""A registry holding one version of a tiny Qwen2 student's adapter: fast exports for the
mechanics (publishing, listing, refusals); the real student's exports are in test_formats.py."""

from __future__ import annotations

from pathlib import Path

from distillserve.adapters.registry import AdapterRegistry
from tests.export.versions import damped_lora, register_with_golden
from tests.support.tiny_student import build_tiny_student


def tiny_registry(
    tmp: Path, registry_url: str | None = None, **options: object
) -> tuple[AdapterRegistry, str]:
    base = build_tiny_student(tmp / "tiny-base", hidden=32, layers=1)
    adapter = damped_lora(base, tmp / "tiny-adapter", damping=1.0, rank=4)
    registry = AdapterRegistry(
        registry_url or str(tmp / "registry"), str(base), storage_options=dict(options)
    )
    return registry, register_with_golden(registry, adapter)
