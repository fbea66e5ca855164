"""Entry point of the ``distillserve`` console script."""

from __future__ import annotations

# Each module registers its commands on ``app`` when imported.
from distillserve.cli import (
    broker_command,  # noqa: F401
    distill_command,  # noqa: F401
    prepare_command,  # noqa: F401
    serve_command,  # noqa: F401
    vllm_command,  # noqa: F401
)
from distillserve.cli.app import app


def main() -> None:
    app()
