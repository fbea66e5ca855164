"""Response bodies of the admin and registry APIs, for the OpenAPI document (the handlers return
dicts; these models say what is in them). Open objects: a field added later breaks no client."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from distillserve.adapters.registry import AdapterCard


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StudentBackendStatus(_Open):
    name: str
    kind: str
    engine: str  # "up" or "unreachable: <why>"


class StudentStatus(_Open):
    """What the student route serves and what its engine holds."""

    backend: StudentBackendStatus
    live: str | None
    canary: str | None
    canary_share: float
    adapters: dict[str, str]  # version name -> adapter path
    loaded: list[str] | None  # None while the engine is unreachable
    in_flight: dict[str, int]
    pending_unloads: int


class SwapOutcome(_Open):
    live: str | None
    previous: str | None
    seconds: float


class VersionList(_Open):
    object: str
    base_model: str
    data: list[AdapterCard]  # without history


class EvalDiff(_Open):
    a: str
    b: str
    sets: dict[str, dict[str, Any]]
    losses: dict[str, Any]


class LiveVersion(_Open):
    live: str | None
    adapter: str | None


class CanaryState(_Open):
    canary: str | None
    share: float


def answers(model: type[BaseModel], description: str) -> dict[str, Any]:
    """Route keywords documenting a 200 of ``model`` for a handler that returns a plain dict."""
    return {"response_model": None, "responses": {200: {"model": model, "description": description}}}
