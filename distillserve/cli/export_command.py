"""``distillserve export VERSION --format ...`` and ``distillserve adapters exports VERSION``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from distillserve.cli.app import app
from distillserve.cli.distill_command import adapters
from distillserve.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from distillserve.adapters.registry import AdapterRegistry

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None


def _registry(settings: Settings) -> AdapterRegistry:
    from distillserve.adapters.registry_factory import build_registry

    return build_registry(settings)


@app.command("export")
def export_version(
    version: Annotated[str, typer.Argument(help="Registry version, e.g. v7.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="merged | gguf | onnx")],
    quant: Annotated[
        str | None,
        typer.Option(
            help="merged: bf16|f16|f32; gguf: f16|f32|bf16|q8_0|q6_k|q5_k_m|q4_k_m|q4_0; onnx: fp32|int8 "
            "(default: the lossless one)."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the export to OUT/<format>-<quant>/.")] = None,
    regression: Annotated[
        Path | None, typer.Option(help="JSONL regression set (default: the version's own).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Measure on the first N regression items.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Greedy answer length when measuring.")] = 48,
    config: ConfigOpt = None,
) -> None:
    """Export a version (adapter merged into its base) for another runtime, measure it against the
    adapter on its base, and add it under versions/VERSION/exports/ in the registry."""
    from distillserve.adapters.registry import RegistryError
    from distillserve.export.errors import ExportError
    from distillserve.export.pipeline import Exporter, ExportRequest

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from distillserve.monitoring.graders import configured_graders

    request = ExportRequest(version, fmt, quant, out, regression, limit, max_new_tokens)
    settings = _settings(config)
    exporter = Exporter(_registry(settings), graders=configured_graders(settings))
    try:
        card, path = exporter.export(request)
    except (RegistryError, ExportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"path": path, "card": card.model_dump(mode="json")}, indent=2))


@adapters.command("exports")
def list_exports(version: str, config: ConfigOpt = None) -> None:
    """The exports of VERSION: format, quant, size and agreement with the adapter on its base."""
    from rich.console import Console
    from rich.table import Table

    from distillserve.adapters.registry import RegistryError
    from distillserve.export.publish import list_exports as exports_of

    registry = _registry(_settings(config))
    try:
        registry.card(version)
        cards = exports_of(registry, version)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    table = Table(title=f"exports of {version} ({registry.base_model})")
    for col in ("export", "size MB", "agreement", "score (source→export)", "n", "runtime"):
        table.add_column(col)
    for c in cards:
        a = c.accuracy
        table.add_row(
            c.name,
            f"{c.size_bytes / 1e6:.1f}",
            f"{a.agreement:.3f}" if a else "-",
            f"{a.source_score:.3f}→{a.export_score:.3f}" if a else "-",
            str(a.n) if a else "-",
            a.runtime if a else "-",
        )
    Console(file=sys.stdout, width=140).print(table)
