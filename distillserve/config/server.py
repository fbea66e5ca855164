"""The gateway's HTTP server: where it listens, who may call it, what it shows."""

from __future__ import annotations

from pydantic import Field, SecretStr

from distillserve.config.strict_model import StrictModel


class ServerConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = 8000
    # Bearer keys accepted on /v1/*; empty means no auth.
    api_keys: list[SecretStr] = Field(default_factory=list)
    # Required on /admin/*; None disables the admin API.
    admin_key: SecretStr | None = None
    max_body_bytes: int = 1_000_000
    # Remove reasoning traces (<think>…</think> / reasoning_content) from what clients see.
    # The teacher log always keeps them whole.
    strip_reasoning: bool = False
    # Name of the virtual model that asks the router.
    auto_model_name: str = "auto"
    # Gateway processes sharing the port, one event loop each (uvicorn workers): one per core.
    # They agree through the adapter registry (``registry.watch``); /metrics shows the worker asked.
    workers: int = Field(default=1, ge=1)
