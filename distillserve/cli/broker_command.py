"""``distillserve broker``: the local Kafka-protocol broker (tansu) with the teacher-log topics."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from distillserve.cli.app import app
from distillserve.config import ConfigError, load_settings


@app.command()
def broker(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (default: from teacher_log.bootstrap_servers).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep messages and offsets in this directory (S3 API via rclone); default: memory."
        ),
    ] = None,
) -> None:
    """Run a local broker with the teacher-log and dead-letter topics until SIGTERM or Ctrl-C."""
    from distillserve.launchers.local_broker import BrokerError, local_broker

    try:
        cfg = load_settings(config).teacher_log
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with local_broker(cfg, port=port, data_dir=data_dir) as b:
            typer.echo(
                f"broker pid {b.pid} on {b.bootstrap_servers} ({'durable: ' + str(data_dir) if data_dir else 'in memory'}); "
                f"topics {cfg.topic}, {cfg.dead_letter_topic}",
            )
            while not stop.wait(0.5):
                if not b.running:
                    raise typer.Exit(1)
    except BrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("broker stopped")
