"""The adapter registry the settings name, for the gateway's registry API and the distiller alike."""

from __future__ import annotations

from distillserve.adapters.registry import AdapterRegistry
from distillserve.config import Settings


def base_model_id(settings: Settings) -> str:
    """The id adapters are registered under: the distiller's base, else the student's model."""
    s = settings
    return s.distiller.base_model or s.student.model_path or s.student.served_model


def build_registry(settings: Settings) -> AdapterRegistry:
    r = settings.registry
    return AdapterRegistry(
        r.url, base_model_id(settings), adapter_prefix=r.adapter_prefix, storage_options=r.storage_options
    )
