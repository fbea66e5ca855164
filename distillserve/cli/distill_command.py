"""``distillserve distill`` (the worker) and ``distillserve adapters ...`` (the registry for ML engineers)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from distillserve.cli.app import app
from distillserve.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from distillserve.distiller.distributed import DistributedTraining

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
GatewayOpt = Annotated[
    str | None,
    typer.Option(
        "--gateway", help="Gateway base URL to hot-swap through (default: distiller.promotion.gateway_url)."
    ),
]
adapters = typer.Typer(help="Adapter versions in the registry: list, show, diff, promote, rollback, canary.")
app.add_typer(adapters, name="adapters")


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command()
def distill(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option(help="Run one trigger's worth, then exit.")] = False,
) -> None:
    """Consume the teacher log, train LoRA adapters, evaluate, register and promote by policy.

    With ``distiller.ranks`` > 1 it runs itself under torchrun: rank 0 is the worker, the other
    ranks train with it (data parallel); or launch it as ``torchrun --nproc-per-node N -m
    distillserve distill ...``.
    """
    from distillserve.distiller.launch import relaunch_with_ranks, under_launcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(config)
    relaunch_with_ranks(settings.distiller.ranks)  # returns only in the process that runs
    if settings.distiller.cpu_affinity:
        os.sched_setaffinity(0, settings.distiller.cpu_affinity)
    if settings.distiller.torch_threads:
        import torch

        torch.set_num_threads(settings.distiller.torch_threads)
    train = None
    if under_launcher():
        from distillserve.distiller.distributed import DistributedTraining, JobChannel, follow, start_ranks
        from distillserve.distiller.launch import die_with_launcher
        from distillserve.distiller.worker import resolve_base_model

        die_with_launcher()
        ranks, group = start_ranks(settings.distiller.device)
        channel = JobChannel(group)
        if not ranks.is_main:  # a follower: trains what rank 0 sends, holds no state
            follow(channel, resolve_base_model(_base_model_id(settings)), settings.distiller)
            return
        train = DistributedTraining(channel)
    _serve_distiller_metrics(settings)
    _run_worker(settings, once, train)


def _base_model_id(settings: Settings) -> str:
    from distillserve.adapters.registry_factory import base_model_id

    return base_model_id(settings)


def _serve_distiller_metrics(settings: Settings) -> None:
    port = settings.monitoring.distiller_metrics_port
    if not port:
        return
    from prometheus_client import start_http_server

    from distillserve.distiller.examples import FILTER_REASONS
    from distillserve.monitoring import metrics
    from distillserve.monitoring.series import init_distiller_series

    # Zeros for every run and record outcome, so rate()/increase() and the stall alert see series.
    init_distiller_series(
        run_outcomes=metrics.DISTILLER_RUN_OUTCOMES,
        record_outcomes=("kept", *FILTER_REASONS),
    )
    start_http_server(port, addr=settings.server.host)
    logging.info("distiller metrics on http://%s:%d/metrics", settings.server.host, port)


def _run_worker(settings: Settings, once: bool, train: DistributedTraining | None) -> None:
    """The worker loop (rank 0 of several when ``train`` sends jobs to the other ranks)."""
    from distillserve.adapters.promotion import Promoter
    from distillserve.adapters.registry_factory import build_registry
    from distillserve.distiller.assembly import build_activator, build_source, state_dir
    from distillserve.distiller.worker import Distiller, resolve_base_model
    from distillserve.monitoring.graders import configured_graders

    registry = build_registry(settings)
    distiller = Distiller(
        settings.distiller,
        base_model=_base_model_id(settings),
        base_dir=resolve_base_model(_base_model_id(settings)),
        registry=registry,
        promoter=Promoter(registry, build_activator(settings)),
        state_dir=state_dir(settings, registry),
        graders=configured_graders(settings),
        **({"train": train} if train is not None else {}),
    )
    stop = _stop_on_sigterm()
    source = build_source(settings)
    try:
        distiller.run_forever(source, stop=stop, max_runs=1 if once else None)
    except KeyboardInterrupt:
        logging.info("distiller stopping")
    finally:
        source.close()
    if train is not None and not stop.is_set():
        # Done by itself (--once): tell the other ranks, so they exit 0. On SIGTERM torchrun
        # stops them itself, and a message to stopped ranks would only wait.
        train.channel.send(None)


def _stop_on_sigterm() -> threading.Event:
    """An event that SIGTERM sets; the signal also aborts whatever runs (a training run too):
    uncommitted records are trained on next start."""
    stop = threading.Event()

    def _terminate(signum: int, _frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    return stop


def _registry(config: Path | None) -> Any:
    from distillserve.distiller.assembly import build_registry

    return build_registry(_settings(config))


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


@adapters.command("list")
def list_versions(config: ConfigOpt = None) -> None:
    """Every version: status, parent, records, held-out and regression exact match."""
    from rich.console import Console
    from rich.table import Table

    reg = _registry(config)
    table = Table(title=f"adapters of {reg.base_model}")
    for col in ("version", "status", "parent", "records", "heldout", "regression", "gate", "created"):
        table.add_column(col)
    import datetime as dt

    for c in reg.cards():
        ev = c.eval.get("candidate", {})
        table.add_row(
            c.version,
            c.status,
            c.parent or "-",
            str(c.records.get("kept", "")),
            _em(ev, "heldout"),
            _em(ev, "regression"),
            "pass" if (c.gate or {}).get("promote") else "wait",
            dt.datetime.fromtimestamp(c.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
    Console(file=sys.stdout, width=140).print(table)


def _em(ev: dict[str, Any], name: str) -> str:
    from distillserve.adapters.eval_scores import score_of

    s = ev.get(name)
    return f"{score_of(ev, name):.3f} (n={s['n']})" if s else "-"


@adapters.command()
def show(version: str, config: ConfigOpt = None) -> None:
    """A version's full card (JSON)."""
    from distillserve.adapters.registry import RegistryError

    try:
        _echo_json(_registry(config).card(version).model_dump(mode="json"))
    except RegistryError as exc:
        _fail(exc)


@adapters.command()
def diff(a: str, b: str, config: ConfigOpt = None) -> None:
    """Eval results of two versions side by side (JSON), with b − a."""
    from distillserve.adapters.registry import RegistryError, diff_eval

    reg = _registry(config)
    try:
        _echo_json(diff_eval(reg.card(a), reg.card(b)))
    except RegistryError as exc:
        _fail(exc)


def _promoter(config: Path | None, gateway: str | None) -> Any:
    from distillserve.distiller.assembly import build_promoter

    try:
        return build_promoter(_settings(config), gateway)
    except ValueError as exc:
        _fail(exc)


@adapters.command()
def promote(version: str, config: ConfigOpt = None, gateway: GatewayOpt = None) -> None:
    """Validate VERSION, hot-swap it into the student and record it as live."""
    from distillserve.adapters.registry import RegistryError

    try:
        asyncio.run(_promoter(config, gateway).promote(version, by="cli", reason="promoted by hand"))
    except RegistryError as exc:
        _fail(exc)
    typer.echo(f"{version} is live")


@adapters.command()
def rollback(config: ConfigOpt = None, gateway: GatewayOpt = None) -> None:
    """Make the previously live version live again."""
    from distillserve.adapters.registry import RegistryError

    try:
        target = asyncio.run(_promoter(config, gateway).rollback(by="cli"))
    except RegistryError as exc:
        _fail(exc)
    typer.echo(f"rolled back: {target} is live")


@adapters.command()
def canary(
    version: Annotated[str, typer.Argument(help="Version to canary, or 'off' to end the canary.")],
    share: Annotated[float, typer.Option(help="Share of student traffic, 0..1.")] = 0.1,
    config: ConfigOpt = None,
    gateway: GatewayOpt = None,
) -> None:
    """Send a share of student traffic to VERSION."""
    from distillserve.adapters.registry import RegistryError

    target = None if version == "off" else version
    try:
        asyncio.run(_promoter(config, gateway).canary(target, share if target else 0.0, by="cli"))
    except RegistryError as exc:
        _fail(exc)
    typer.echo(f"canary: {target or 'off'} at {share if target else 0.0:.2f}")
