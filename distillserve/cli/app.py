"""The one ``distillserve`` command; each area adds its sub-commands from its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="distillserve",
    help="OpenAI-compatible serving that distils a student from its teacher while it runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
