"""Entry point of the ``distillserve`` console script."""

from __future__ import annotations

import importlib
import pkgutil

from distillserve.cli.app import app

# Each ``*_command`` module registers its sub-commands on ``app`` when imported; discovering
# them keeps this file unchanged when an area adds a command.
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name.endswith("_command"):
        importlib.import_module(f"{__name__}.{_mod.name}")


def main() -> None:
    app()
