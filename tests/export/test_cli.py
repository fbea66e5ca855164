"""``distillserve export`` and ``distillserve adapters exports`` on a registry named by a config."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from distillserve.cli import app
from tests.export.tiny_registry import tiny_registry


def test_export_then_list(tmp_path: Path) -> None:
    registry, version = tiny_registry(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "registry": {"url": str(tmp_path / "registry")},
                "distiller": {"base_model": registry.base_model},
            }
        )
    )
    out = tmp_path / "device"
    result = CliRunner().invoke(
        app, ["export", version, "--format", "merged", "--quant", "f32", "--out", str(out), "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout[result.stdout.index("{") :])
    card = printed["card"]
    assert (card["source_version"], card["format"], card["quant"]) == (version, "merged", "f32")
    assert card["accuracy"]["agreement"] == 1.0 and card["accuracy"]["n"] == 8
    assert Path(printed["path"]).is_dir() and (out / "merged-f32" / "export_card.json").is_file()
    assert set(card["files"]) <= {p.name for p in (out / "merged-f32").iterdir()}

    listed = CliRunner().invoke(app, ["adapters", "exports", version, "-c", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "merged-f32" in listed.stdout and "1.000" in listed.stdout

    again = CliRunner().invoke(app, ["export", version, "-f", "merged", "--quant", "f32", "-c", str(config)])
    assert again.exit_code == 1 and "already has a merged-f32 export" in again.output

    unknown = CliRunner().invoke(app, ["export", "v42", "-f", "gguf", "-c", str(config)])
    assert unknown.exit_code == 1 and "no version 'v42'" in unknown.output
