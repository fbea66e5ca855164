"""``distillserve demo``: the whole learning loop on this machine, with a live view and a report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from distillserve.cli.app import app
from distillserve.config import REPO_ROOT


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Seconds of traffic.")] = 300.0,
    rate: Annotated[
        float | None,
        typer.Option(
            help="Requests per second (Poisson arrivals); default 4 (testbed student) or 2 (an LLM)."
        ),
    ] = None,
    student: Annotated[str, typer.Option(help="embedded (tiny testbed model) | smollm2 | vllm")] = "embedded",
    out: Annotated[Path | None, typer.Option(help="Report folder (default reports/demo-<time>).")] = None,
    seed: Annotated[int, typer.Option(help="Traffic seed.")] = 0,
) -> None:
    """Start broker, teacher, gateway and distiller; drive traffic; write the report."""
    from distillserve.demo.run import DemoOptions, run_demo

    if student not in ("embedded", "smollm2", "vllm"):
        raise typer.BadParameter("choose embedded, smollm2 or vllm", param_hint="--student")
    folder = out or REPO_ROOT / "reports" / time.strftime("demo-%Y%m%d-%H%M%S")
    summary, _ = run_demo(
        DemoOptions(out=folder, duration_s=duration, rate_per_s=rate, student=student, seed=seed)
    )
    typer.echo(
        f"report: {folder / 'report.md'}\n"
        f"teacher share {summary.teacher_share_first:.0%} -> {summary.teacher_share_last:.0%}, "
        f"served quality in the last window {summary.quality_ratio_last:.0%} of teacher-only, "
        f"{summary.failed} failed of {summary.requests}"
    )
