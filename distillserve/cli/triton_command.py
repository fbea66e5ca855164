"""``distillserve triton-serve``: a real Triton Inference Server over distillserve backends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
import yaml

from distillserve.cli.app import app
from distillserve.config import BackendConfig, backend_config


def _models_from_file(path: Path) -> dict[str, BackendConfig]:
    """YAML mapping of Triton model name -> backend config (the same fields as ``student:``)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--models") from None
    if not isinstance(raw, dict) or not raw:
        raise typer.BadParameter(
            f"{path}: expected a mapping of model name -> backend", param_hint="--models"
        )
    try:
        return {str(name): backend_config(cfg) for name, cfg in raw.items()}
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--models") from None


@app.command("triton-serve")
def triton_serve(
    models: Annotated[
        Path | None,
        typer.Option(help="YAML: Triton model name -> backend config; overrides the flags below."),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Backend kind to serve: testbed | embedded | openai | vllm.")
    ] = "testbed",
    name: Annotated[
        str, typer.Option(help="The backend's name (and the Triton model's, unless --triton-model).")
    ] = "teacher",
    triton_model: Annotated[str | None, typer.Option(help="Model name on the Triton server.")] = None,
    model_path: Annotated[str | None, typer.Option(help="embedded: model directory or alias.")] = None,
    url: Annotated[str | None, typer.Option(help="openai/vllm: upstream base URL.")] = None,
    token_delay: Annotated[float, typer.Option(help="testbed: seconds between tokens.")] = 0.0,
    host: Annotated[str, typer.Option(help="Bind address of all three endpoints.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="Triton HTTP port.")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="Triton gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Triton metrics port.")] = 8002,
    workspace: Annotated[
        Path | None, typer.Option(help="PyTriton workspace (sockets, model store); removed on exit.")
    ] = None,
) -> None:
    """Serve distillserve backends from tritonserver with the tensor interface of Triton's vLLM backend."""
    from distillserve.launchers.triton_serving import serve_backends

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if models is not None:
        bound = _models_from_file(models)
    else:
        # Only the flags given (and meant for this kind): a field of another kind is an error.
        given = {"model_path": model_path, "url": url}
        fields = {k: v for k, v in given.items() if v is not None}
        if backend == "testbed":
            fields["token_delay_s"] = token_delay
        try:
            cfg = backend_config({"kind": backend, "name": name, **fields})
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        bound = {triton_model or name: cfg}
    serve_backends(
        bound,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        workspace=workspace,
    )
