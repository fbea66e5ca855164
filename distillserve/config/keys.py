"""Client API keys with policies: who the caller is (tenant), how much it may ask (rate limits, a
budget per period, a ``max_tokens`` cap), what it may reach (models, routes, forcing a route) and
whether its traffic may be logged for distillation.

Keys are hashed at rest: the config (or the keys file) holds the SHA-256 of each key, never the
key (``distillserve keys hash`` prints one). The field names follow LiteLLM's virtual keys
(``rpm_limit``, ``tpm_limit``, ``models``, ``max_budget``-like ``budget``), the gateway users know.

    keys:
      storage: redis://127.0.0.1:6379     # shared by every replica; memory:// for one process
      file: /etc/distillserve/keys.yaml   # optional: a YAML list of entries in the shape below
      entries:
        - sha256: 9f86d0...               # distillserve keys hash
          alias: team-a-prod
          tenant: team-a
          rpm_limit: 60
          tpm_limit: 100000
          budget: {limit: 5000000, unit: tokens, period: month}   # or {limit: 25.0, unit: usd}
          max_tokens: 1024
          models: [auto]
          routes: [student, teacher]
          may_force_route: false
          log: true
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, TypeAdapter, field_validator, model_validator

from distillserve.config.strict_model import StrictModel

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
BudgetPeriod = Literal["minute", "hour", "day", "month", "year"]
RouteName = Literal["student", "teacher"]
#: A money budget is counted in micro-dollars: the limiter adds integers.
USD_MICROS = 1_000_000


class BudgetConfig(StrictModel):
    """What a key may spend per period. The period is a window that opens at the key's first
    charged request (the ``limits`` library's fixed window), not a calendar month.

    ``unit`` is what a request is charged in; "tokens" charges its prompt + completion tokens,
    "usd" its price in US dollars from the ``pricing`` table (``limit: 25.0`` is $25 per period;
    the limiter counts micro-dollars). The ``BudgetMeter`` seam in ``serving.keys.budget``."""

    limit: float = Field(gt=0)
    unit: Literal["tokens", "usd"] = "tokens"
    period: BudgetPeriod = "month"

    @model_validator(mode="after")
    def _whole_tokens(self) -> BudgetConfig:
        if self.unit == "tokens" and self.limit != int(self.limit):
            raise ValueError("a token budget's limit is a whole number of tokens")
        return self

    @property
    def counted_limit(self) -> int:
        """The limit in the integer amounts the limiter counts: tokens, or micro-dollars."""
        return round(self.limit * USD_MICROS) if self.unit == "usd" else int(self.limit)


class KeyEntry(StrictModel):
    sha256: str
    alias: str | None = None  # a name for people and logs; never the key
    tenant: str
    rpm_limit: int | None = Field(default=None, ge=1)
    tpm_limit: int | None = Field(default=None, ge=1)
    budget: BudgetConfig | None = None
    # Largest max_tokens a request may ask; one that asks none gets this one.
    max_tokens: int | None = Field(default=None, ge=1)
    # Models the key may name (empty: all); others answer 404 as OpenAI does for a model it cannot see.
    models: list[str] = Field(default_factory=list)
    routes: list[RouteName] = Field(default_factory=lambda: ["student", "teacher"])
    # Whether x-distillserve-route (the force header) is honoured for this key; otherwise 403.
    may_force_route: bool = False
    # Whether its traffic may reach the teacher log (and so the distiller's replay store).
    log: bool = True

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, v: str) -> str:
        v = v.strip().lower()
        if not _SHA256_HEX.match(v):
            raise ValueError("sha256 must be the 64-hex-digit SHA-256 of the key (distillserve keys hash)")
        return v


class KeysConfig(StrictModel):
    # limits storage: memory:// (one process) or redis://host:port[/db] (shared by replicas).
    storage: str = "memory://"
    entries: list[KeyEntry] = Field(default_factory=list)
    # A YAML list of more entries, read at start-up.
    file: Path | None = None
    # Completion tokens reserved against tpm_limit for a request that names no max_tokens and whose
    # key has no cap; corrected by the actual usage once the answer is done.
    completion_estimate_tokens: int = Field(default=256, ge=1)

    @field_validator("storage")
    @classmethod
    def _known_storage(cls, v: str) -> str:
        if not re.match(r"^(memory|redis|rediss)://", v):
            raise ValueError("keys.storage must be memory:// or redis://host:port[/db]")
        return v

    def all_entries(self) -> list[KeyEntry]:
        """The inline entries, then the file's; a hash listed twice is an error."""
        entries = list(self.entries)
        if self.file is not None:
            entries += TypeAdapter(list[KeyEntry]).validate_python(
                yaml.safe_load(self.file.read_text()) or []
            )
        seen: set[str] = set()
        for e in entries:
            if e.sha256 in seen:
                raise ValueError(f"key {e.alias or e.sha256[:12]} is listed twice")
            seen.add(e.sha256)
        return entries
