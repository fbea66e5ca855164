"""``distillserve keys hash`` (the SHA-256 a config holds for a key) and ``distillserve keys new``
(a fresh random key and its config entry). Keys are read from stdin when not given, so they stay
out of shell history."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer
import yaml

from distillserve.cli.app import app

keys_app = typer.Typer(
    help="Client API keys: hash one for the config, or make a new one.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@keys_app.command("hash")
def hash_command(
    key: Annotated[str | None, typer.Argument(help="The key; read from stdin when absent.")] = None,
) -> None:
    """Print the hex SHA-256 of KEY, the value of ``sha256`` in a ``keys.entries`` item."""
    from distillserve.serving.keys.keyring import hash_key

    key = key if key is not None else sys.stdin.readline().strip()
    if not key:
        raise typer.BadParameter("no key given (argument or stdin)")
    typer.echo(hash_key(key))


@keys_app.command("new")
def new_command(
    tenant: Annotated[str, typer.Option(help="The tenant the key belongs to.")],
    alias: Annotated[str | None, typer.Option(help="A name for the key in logs.")] = None,
) -> None:
    """Make a random key: prints the key once (on stderr) and its config entry (YAML, on stdout)."""
    from distillserve.serving.keys.keyring import hash_key

    key = "sk-ds-" + secrets.token_urlsafe(32)
    typer.echo(key, err=True)
    entry = {"sha256": hash_key(key), "tenant": tenant, **({"alias": alias} if alias else {})}
    typer.echo(yaml.safe_dump([entry], sort_keys=False).rstrip())
