"""A registry with one version of the real student: a SmolLM2-135M-Instruct LoRA adapter."""

from __future__ import annotations

from pathlib import Path

from distillserve.adapters.registry import AdapterRegistry
from distillserve.models.prepared import ensure_smollm2
from tests.export.versions import damped_lora, register_with_golden


def smollm2_registry(tmp: Path) -> tuple[AdapterRegistry, str]:
    adapter = damped_lora(ensure_smollm2(), tmp / "smollm2-adapter")
    # The card names the base by its alias, as the distiller's do; the export resolves it.
    registry = AdapterRegistry(str(tmp / "registry"), "smollm2")
    return registry, register_with_golden(registry, adapter)
