"""``distillserve vllm-serve``: run vLLM (the CPU build here, any build elsewhere) as the student
engine, with LoRA enabled and runtime adapter updates on, until interrupted."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from distillserve.cli.app import app
from distillserve.config import ConfigError, VLLMBackendConfig, load_settings
from distillserve.config.backends import BackendBase

if TYPE_CHECKING:  # the launcher imports lazily: the CLI starts fast
    from distillserve.launchers.vllm_process import VLLMProcess


def default_served_name(student: BackendBase) -> str:
    """The name the gateway sends for the bare student (``student.upstream_model``, else its name):
    vLLM serving the base under any other name answers every un-adapted request with a 404."""
    return student.served_model


@app.command("vllm-serve")
def vllm_serve(
    model: Annotated[
        str | None,
        typer.Option(help="Base model directory or alias (default: the config's student.model_path)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config; engine flags from student.vllm_args.")
    ] = None,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8001,
    served_name: Annotated[
        str | None,
        typer.Option(
            help="Name vLLM serves the base under (default: the name the gateway sends: "
            "student.upstream_model, else student.name)."
        ),
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option(help="Write vLLM's output here instead of the terminal.")
    ] = None,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for vLLM to answer.")] = 600.0,
) -> None:
    """Start vLLM's OpenAI server for the student and stop it (all three processes) on Ctrl-C."""
    from distillserve.backends.vllm_engine_args import VLLMEngineArgs
    from distillserve.launchers.vllm_process import VLLMProcess

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    student = settings.student
    model = model or student.model_path
    if not model:
        raise typer.BadParameter(
            "give --model DIR (or student.model_path in the config)", param_hint="--model"
        )
    from distillserve.models.prepared import ModelPreparationError, resolve_model

    try:
        model_dir = resolve_model(model)  # a directory, or an alias (testbed-student, smollm2)
    except ModelPreparationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from None
    try:
        # A student of another kind has no vllm_args: vLLM's defaults.
        args = VLLMEngineArgs.of(
            student if isinstance(student, VLLMBackendConfig) else VLLMBackendConfig(name=student.name)
        )
    except ValueError as exc:
        raise typer.BadParameter(f"student.vllm_args: {exc}", param_hint="--config") from None
    name = served_name or default_served_name(student)
    engine = VLLMProcess(model_dir, port=port, host=host, served_name=name, args=args, log_path=log_file)
    _serve_until_stopped(engine, name, ready_timeout)


def _serve_until_stopped(engine: VLLMProcess, name: str, ready_timeout: float) -> None:
    """Start ``engine``, wait until it answers, then keep it up until SIGINT/SIGTERM (exit 0)
    or until it dies (exit 1); it is stopped either way."""
    from distillserve.launchers.vllm_process import VLLMStartError

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo("starting: " + " ".join(engine.command()))
    engine.start()
    try:
        waited = engine.wait_ready(ready_timeout)
        typer.echo(f"vLLM ready after {waited:.0f}s on {engine.url} (pid {engine.pid}); base model {name!r}")
        while not stop.wait(1.0):
            if engine.proc is None or engine.proc.poll() is not None:
                raise typer.Exit(1)
    except VLLMStartError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        engine.stop()
