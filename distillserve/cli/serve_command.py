"""``distillserve serve`` (the gateway) and ``distillserve testbed-teacher`` (the oracle as its own server)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from distillserve.cli.app import app
from distillserve.config import ConfigError, Settings, TestbedBackendConfig, load_settings

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]


def _settings(config: Path | None, **server: object) -> Settings:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    for k, v in server.items():
        if v is not None:
            setattr(settings.server, k, v)
    return settings


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Gateway processes, one event loop each (default 1).")
    ] = None,
) -> None:
    """Run the OpenAI-compatible gateway."""
    from distillserve.serving.server import run

    _logging()
    settings = _settings(config, host=host, port=port, workers=workers)
    s = settings.server
    typer.echo(
        f"distillserve gateway on http://{s.host}:{s.port}/v1 — try:\n"
        f"  curl http://{s.host}:{s.port}/v1/chat/completions -H 'Content-Type: application/json' "
        f"""-d '{{"model":"auto","messages":[{{"role":"user","content":"reverse: hello"}}]}}'"""
    )
    run(settings)


@app.command("testbed-teacher")
def testbed_teacher(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8100,
    name: Annotated[str, typer.Option(help="Model name it answers to.")] = "teacher",
    reasoning: Annotated[str, typer.Option(help="none | think_tags | reasoning_content")] = "none",
    first_token_delay: Annotated[float, typer.Option(help="Seconds before the first token.")] = 0.0,
    token_delay: Annotated[float, typer.Option(help="Seconds between tokens.")] = 0.0,
) -> None:
    """Serve the testbed oracle teacher as a standalone OpenAI-compatible server."""
    from distillserve.serving.single_backend_server import run_single

    _logging()
    cfg = TestbedBackendConfig(
        name=name,
        reasoning_format=reasoning,  # type: ignore[arg-type]
        first_token_delay_s=first_token_delay,
        token_delay_s=token_delay,
    )
    run_single(cfg, host=host, port=port)
