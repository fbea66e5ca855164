"""Entry point of the ``distillserve`` console script."""

from __future__ import annotations

# Each module registers its commands on ``app`` when imported.
import distillserve.cli.vllm_command  # noqa: F401
from distillserve.cli import serve_command  # noqa: F401
from distillserve.cli.app import app


def main() -> None:
    app()
