"""Entry point of the ``distillserve`` console script."""

from __future__ import annotations

# Each module registers its commands on ``app`` when imported.
from distillserve.cli import prepare_command, router_command, serve_command  # noqa: F401
from distillserve.cli.app import app


def main() -> None:
    app()
