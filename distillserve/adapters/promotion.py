"""Promotion, rollback and canary: registry state plus the hot-swap that makes it real.

Order matters for "live unchanged on failure": the version is validated (checksums, base,
PEFT config) first, then hot-swapped into the student, and only when the swap succeeded is it
recorded as live. A refused version leaves both the registry and the serving student as they
were. The swap goes through an ``Activator``: the gateway's admin API when the distiller runs
as its own process, the in-process ``HotSwapper`` when co-located, or none (registry only).
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from distillserve.adapters.adapter_cache import AdapterCache
from distillserve.adapters.control import DriftBaselines, NoDriftBaselines
from distillserve.adapters.eval_scores import NEW_SKILL_SET, score_of
from distillserve.adapters.hotswap import HotSwapper
from distillserve.adapters.registry import AdapterCard, AdapterRegistry, AdapterRejected, RegistryError
from distillserve.monitoring import metrics

log = logging.getLogger(__name__)


class Activator(Protocol):
    """Makes an adapter version serve the student route (or a canary share of it).

    ``baseline`` is the version's agreement with the teacher in its evaluation: the gateway's
    drift monitor measures live agreement against it instead of against its first window.
    """

    async def activate(self, name: str, path: str, baseline: float | None = None) -> None: ...

    async def set_canary(
        self, name: str | None, path: str | None, share: float, baseline: float | None = None
    ) -> None: ...


class NoActivator:
    """Registry-only promotion: something else (a deploy, a restart) picks the live version up."""

    async def activate(self, name: str, path: str, baseline: float | None = None) -> None:
        return None

    async def set_canary(
        self, name: str | None, path: str | None, share: float, baseline: float | None = None
    ) -> None:
        return None


class HotSwapActivator:
    """In-process: the gateway's own ``HotSwapper``, and where the drift baseline goes."""

    def __init__(self, swapper: HotSwapper, baselines: DriftBaselines | None = None) -> None:
        self.swapper = swapper
        self.baselines = baselines or NoDriftBaselines()

    async def activate(self, name: str, path: str, baseline: float | None = None) -> None:
        await self.swapper.activate(name, path)
        self.baselines.set_drift_baseline(name, baseline)

    async def set_canary(
        self, name: str | None, path: str | None, share: float, baseline: float | None = None
    ) -> None:
        await self.swapper.set_canary(name, path, share)
        if name is not None:
            self.baselines.set_drift_baseline(name, baseline)


class PreparingActivator:
    """Phase one of a fleet-wide promotion, in the gateway that got the call: load and probe the
    version on every student replica without switching. The registry write that follows is
    phase two: every gateway (this one included) switches when it reads the new state."""

    def __init__(self, swapper: HotSwapper) -> None:
        self.swapper = swapper

    async def activate(self, name: str, path: str, baseline: float | None = None) -> None:
        await self.swapper.prepare(name, path)

    async def set_canary(
        self, name: str | None, path: str | None, share: float, baseline: float | None = None
    ) -> None:
        if name is not None and path is not None:
            await self.swapper.prepare(name, path)


class GatewayAdminActivator:
    """Over HTTP: the gateway's student admin API (``/admin/student/...``), admin key required."""

    def __init__(self, base_url: str, admin_key: str | None, *, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        self.timeout_s = timeout_s

    async def _call(self, method: str, path: str, body: dict[str, object] | None = None) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            try:
                r = await client.request(method, f"{self.base_url}{path}", json=body, headers=self.headers)
            except httpx.HTTPError as exc:
                raise RegistryError(f"gateway admin API unreachable at {self.base_url}: {exc}") from exc
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except Exception:
                message = r.text[:500]
            raise AdapterRejected(f"gateway refused {method} {path} ({r.status_code}): {message}")

    async def activate(self, name: str, path: str, baseline: float | None = None) -> None:
        body = {"name": name, "path": path, "baseline_agreement": baseline}
        await self._call("POST", "/admin/student/activate", body)

    async def set_canary(
        self, name: str | None, path: str | None, share: float, baseline: float | None = None
    ) -> None:
        if name is None:
            await self._call("DELETE", "/admin/student/canary")
        else:
            body = {"name": name, "path": path, "share": share, "baseline_agreement": baseline}
            await self._call("POST", "/admin/student/canary", body)


def baseline_agreement(card: AdapterCard) -> float | None:
    """The version's agreement with the teacher (configured grader) on its run's held-out records."""
    return score_of(card.eval.get("candidate") or {}, NEW_SKILL_SET)


class Promoter:
    """Writes the registry's state; every gateway converges on it (``registry_sync``). The
    activator loads and probes the version first (all replicas, through one gateway), so a
    version the engines refuse never becomes live. Adapters reach engines as local copies
    (``AdapterCache``), checked against the card's checksums, whatever store the registry is on."""

    def __init__(
        self, registry: AdapterRegistry, activator: Activator, cache: AdapterCache | None = None
    ) -> None:
        self.registry = registry
        self.activator = activator
        self.cache = cache or AdapterCache()

    def _local_copy(self, version: str) -> str:
        return str(self.cache.materialise(self.registry, version))

    async def promote(self, version: str, *, by: str, reason: str = "") -> AdapterCard:
        """Validate, hot-swap, then record ``version`` as live. Raises ``RegistryError`` if refused."""
        try:
            card = self.registry.validate(version)
            await self.activator.activate(
                self.registry.adapter_name(version), self._local_copy(version), baseline_agreement(card)
            )
        except RegistryError as exc:
            metrics.ADAPTER_SWAPS.labels(outcome="refused").inc()
            log.warning("promotion of %s refused: %s", version, exc)
            raise
        except Exception as exc:  # an engine's own error type (AdapterError etc.): same outcome
            metrics.ADAPTER_SWAPS.labels(outcome="refused").inc()
            log.warning("promotion of %s refused by the student: %s", version, exc)
            raise AdapterRejected(f"the student refused {version}: {exc}") from exc
        old = self.registry.mark_live(version, by=by, reason=reason, baseline=baseline_agreement(card))
        self._publish_live(version, old)
        return card

    async def rollback(self, *, by: str, reason: str = "rollback") -> str:
        """Make the previously live version live again; returns it."""
        target = self.registry.rollback_target()
        await self.promote(target, by=by, reason=reason)
        return target

    async def canary(self, version: str | None, share: float, *, by: str) -> None:
        """Send ``share`` of student traffic to ``version`` (None ends the canary)."""
        if not 0.0 <= share <= 1.0:
            raise RegistryError(f"canary share must be in [0, 1], got {share}")
        if version is not None:
            card = self.registry.validate(version)
            if version == self.registry.live():
                raise RegistryError(f"{version} is already live")
            baseline = baseline_agreement(card)
            await self.activator.set_canary(
                self.registry.adapter_name(version), self._local_copy(version), share, baseline
            )
        else:
            baseline = None
            await self.activator.set_canary(None, None, 0.0)
        self.registry.mark_canary(version, share, by=by, baseline=baseline)

    def _publish_live(self, version: str, old: str | None) -> None:
        base = self.registry.base_model
        if old is not None and old != version:
            metrics.LIVE_ADAPTER.labels(base=base, version=old).set(0)
        metrics.LIVE_ADAPTER.labels(base=base, version=version).set(1)
