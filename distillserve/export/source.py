"""The source of an export: a checked registry version, its base model and its regression set.

The adapter's files are checked against the SHA-256s on its card (``AdapterRegistry.validate``)
and copied to a local folder (the registry may be S3). The regression set is the one the version
was gated on, as its card's ``data_sources.regression_set`` names it: a golden slice version in the
registry (checked against its manifest's SHA-256) or a JSONL file; or a file given explicitly.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from distillserve.adapters.registry import ADAPTER_FILES, AdapterCard, AdapterRegistry
from distillserve.distiller.examples import TrainingExample
from distillserve.distiller.replay import load_jsonl_examples
from distillserve.export.errors import ExportError
from distillserve.models.prepared import resolve_model


@dataclass(frozen=True)
class ExportSource:
    version: str
    card: AdapterCard
    adapter_dir: Path  # local copy of the PEFT adapter
    base_dir: Path  # the HF base model directory


def fetch_source(registry: AdapterRegistry, version: str, workdir: Path) -> ExportSource:
    """Validate ``version`` (unknown → ``VersionNotFound``, corrupt → ``AdapterRejected``) and copy
    its adapter into ``workdir/adapter``."""
    card = registry.validate(version)
    adapter_dir = workdir / "adapter"
    adapter_dir.mkdir(parents=True)
    for name in ADAPTER_FILES:
        registry.fs.get_file(posixpath.join(registry.version_path(version), name), str(adapter_dir / name))
    return ExportSource(version, card, adapter_dir, resolve_model(card.base_model))


def regression_set(
    registry: AdapterRegistry, card: AdapterCard, override: Path | None, limit: int | None
) -> tuple[list[TrainingExample], dict[str, Any]]:
    """The items to measure on and where they came from (for the export card)."""
    if override is not None:
        items, described = load_jsonl_examples(override, "base"), {"source": "file", "path": str(override)}
    else:
        described = dict(card.data_sources.get("regression_set") or {})
        items = _items_named_by(registry, described, card.version)
    if limit is not None:
        items = items[:limit]
    if not items:
        raise ExportError(
            f"{card.version} has no regression set to measure the export on: pass --regression FILE "
            "(JSONL rows with messages or prompt, and answer)"
        )
    return items, {**described, "n": len(items)}


def _items_named_by(
    registry: AdapterRegistry, described: dict[str, Any], version: str
) -> list[TrainingExample]:
    source = described.get("source")
    if source == "golden" and described.get("version"):
        rows = registry.read_golden(described["version"]).splitlines()  # checked against its SHA-256
        return [TrainingExample.from_json(orjson.loads(r), source="golden") for r in rows if r.strip()]
    if source == "file" and described.get("path") and Path(described["path"]).is_file():
        return load_jsonl_examples(described["path"], "base")
    raise ExportError(
        f"{version}'s card names no regression set this machine can read ({described or 'none'}): "
        "pass --regression FILE"
    )
