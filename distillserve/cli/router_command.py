"""``distillserve router eval`` (compare scorers RouteLLM-style) and ``distillserve router build-set``
(the testbed's labelled set from the real student and the testbed teacher)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from distillserve.cli.app import app
from distillserve.config import ConfigError, Settings, cache_dir, load_settings

router_app = typer.Typer(help="Evaluate and prepare the difficulty router.", no_args_is_help=True)
app.add_typer(router_app, name="router")

ALL_SCORERS = "heuristic,embedding,cascade"


@router_app.command("eval")
def eval_command(
    labelled: Annotated[Path, typer.Option("--set", help="Labelled set (JSON lines) to judge scorers on.")],
    train: Annotated[
        Path | None,
        typer.Option(
            help="Set to fit learned scorers on; default: half of --set (the other half is judged)."
        ),
    ] = None,
    scorers: Annotated[
        str, typer.Option(help="Comma-separated scorers (random and oracle are always added).")
    ] = ALL_SCORERS,
    out: Annotated[Path | None, typer.Option(help="Directory for JSON, table and PNG.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (router settings).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
) -> None:
    """Quality vs teacher-share curve, APGR and CPT(50%)/CPT(80%) per scorer, against random routing."""
    from distillserve.router import evaluation
    from distillserve.router.labelled_example import load_jsonl

    cfg = _settings(config).router
    try:
        examples = load_jsonl(labelled)
        train_set = load_jsonl(train) if train else None
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if train_set is None:
        train_set, examples = evaluation.split(examples, 0.5, seed)
    names = [n.strip() for n in scorers.split(",") if n.strip()]
    try:
        scores = asyncio.run(
            evaluation.compute_scores(
                names, train_set, examples, cfg=cfg, cascade_statistic=cfg.cascade.statistic
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scorers") from None
    report = evaluation.build_report(examples, scores)
    paths = evaluation.save(report, out or cache_dir() / "router" / "eval")
    typer.echo(evaluation.format_table(report))
    typer.echo(f"saved {paths['json']}, {paths['table']}, {paths['plot']}")


@router_app.command("build-set")
def build_set_command(
    out: Annotated[Path, typer.Option(help="Where to write the labelled set (JSON lines).")],
    n: Annotated[int, typer.Option(help="Number of prompts, spread evenly over the testbed tasks.")] = 700,
    seed: Annotated[int, typer.Option(help="Prompt seed.")] = 0,
    adapter: Annotated[Path | None, typer.Option(help="A PEFT adapter directory for the student.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (the student backend).")
    ] = None,
) -> None:
    """Label testbed prompts with the configured student's answers and the testbed teacher's."""
    from distillserve.backends.factory import build_backend
    from distillserve.router.labelled_example import save_jsonl
    from distillserve.router.labelled_set import build_testbed_set, quality_by_group

    settings = _settings(config)

    async def run() -> list:
        student = build_backend(settings.student)
        await student.start()
        try:
            name = None
            if adapter is not None:
                host = student.adapter_host()
                if host is None:
                    raise typer.BadParameter(
                        f"the {student.kind} student cannot load adapters", param_hint="--adapter"
                    )
                name = f"eval@{adapter.name}"
                await host.load_adapter(name, str(adapter))
            return await build_testbed_set(student, n=n, seed=seed, adapter=name)
        finally:
            await student.aclose()

    examples = asyncio.run(run())
    save_jsonl(examples, out)
    by_task = ", ".join(f"{g} {q:.2f}" for g, q in quality_by_group(examples).items())
    typer.echo(f"wrote {len(examples)} examples to {out}; student exact match by task: {by_task}")


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
