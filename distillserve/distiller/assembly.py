"""Build the distiller's parts from settings: registry, activator, promoter, source, worker."""

from __future__ import annotations

from pathlib import Path

from distillserve.adapters.promotion import Activator, GatewayAdminActivator, NoActivator, Promoter
from distillserve.adapters.registry import AdapterRegistry
from distillserve.adapters.registry_factory import build_registry
from distillserve.config import Settings, cache_dir
from distillserve.distiller.sources import JsonlFileSource, RecordSource


def build_activator(settings: Settings, gateway_url: str | None = None) -> Activator:
    promotion = settings.distiller.promotion
    url = gateway_url or promotion.gateway_url
    if promotion.via == "none" and gateway_url is None:
        return NoActivator()
    if not url:
        raise ValueError(
            "distiller.promotion.via=gateway needs distiller.promotion.gateway_url (the gateway's base URL)"
        )
    key = settings.server.admin_key.get_secret_value() if settings.server.admin_key else None
    return GatewayAdminActivator(url, key)


def build_promoter(settings: Settings, gateway_url: str | None = None) -> Promoter:
    return Promoter(build_registry(settings), build_activator(settings, gateway_url))


def build_source(settings: Settings) -> RecordSource:
    d, t = settings.distiller, settings.teacher_log
    if d.source == "file":
        spool = Path(t.spool_dir) if t.spool_dir else cache_dir() / "teacher-log"
        return JsonlFileSource(spool / "teacher-log.jsonl", d.group_id)
    from distillserve.distiller.kafka_source import KafkaRecordSource

    return KafkaRecordSource(t, d.group_id)


def state_dir(settings: Settings, registry: AdapterRegistry) -> Path:
    if settings.distiller.state_dir:
        return Path(settings.distiller.state_dir)
    if registry.local:
        return Path(registry.root) / "distiller-state"
    return cache_dir() / "distiller-state"
