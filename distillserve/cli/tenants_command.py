"""``distillserve tenants``: delete a tenant's data (replay store and future training).

``delete`` records the request in the registry (every distiller reads it before each run, and
skips the tenant's records still in Kafka), purges the distiller's replay store and past held-out
set at once when they are on this machine (``distiller.state_dir``, or inside a local registry),
and appends the action to the admin audit log, as the admin API's ``DELETE
/admin/tenants/{tenant}/data`` does.
"""

from __future__ import annotations

import getpass
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from distillserve.cli.app import app
from distillserve.config import ConfigError, Settings, load_settings

tenants_app = typer.Typer(help="Tenants' data: delete it from the replay store and future training.")
app.add_typer(tenants_app, name="tenants")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None


@tenants_app.command("delete")
def delete_command(
    tenant: Annotated[str, typer.Argument(help="The tenant (as its API keys name it).")],
    config: ConfigOption = None,
) -> None:
    """Delete TENANT's data: from the replay store now, from every future training run."""
    from distillserve.adapters.admin_audit import AdminAudit, audit_log_path
    from distillserve.adapters.registry_factory import build_registry
    from distillserve.adapters.tenant_deletions import TenantDeletions
    from distillserve.distiller.assembly import state_dir
    from distillserve.distiller.replay import ExampleStore

    settings = _settings(config)
    registry = build_registry(settings)
    who = f"cli:{getpass.getuser()}"
    started = time.time()
    deletion = TenantDeletions(registry).request(tenant, by=who)
    state = state_dir(settings, registry)
    purged = {
        name: ExampleStore(state / f"{name}.jsonl", max_items=1).forget_tenants(frozenset({tenant}))
        for name in ("replay", "past_holdout")
    }
    AdminAudit(audit_log_path(settings)).write(
        {
            "time": datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds"),
            "key_id": who,
            "client": "cli",
            "action": "delete_tenant_data",
            "params": {"tenant": tenant},
            "outcome": "ok",
            "status": 200,
            "purged": purged,
        }
    )
    typer.echo(json.dumps({"tenant": tenant, "requested_at": deletion.requested_at, "purged": purged}))
