"""Every gateway follows the registry: the fleet's one truth about which adapter serves.

Why polling ``state.json`` and not a Kafka control topic: the registry already *is* the state
(one object, replaced atomically), so a poll reads the truth itself, never a second copy that
can disagree with it; it works the same on a local disk and on S3 (an ETag or stat per poll, no
body unless it changed: one HEAD a second per gateway is nothing for S3); it needs no broker
up for the control plane, where a compacted topic would add a second store and a consumer to
every pod. A gateway that starts reads the same file, so it comes up on the live version.

Each change is applied through the gateway's ``HotSwapper``: the live version and the canary
(with its share) are copied locally by content hash (``AdapterCache``), loaded on every student
replica and probed there before the route switches, and drift baselines follow. Gateways never
unload a replaced version at the switch: the engines are shared, and another gateway may still
route to it for up to one poll. Only once the registry says a version has been retired for
``unload_after_s`` (longer than any gateway takes to converge) is it unloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from distillserve.adapters.adapter_cache import AdapterCache
from distillserve.adapters.control import DriftBaselines
from distillserve.adapters.hotswap import HotSwapper
from distillserve.adapters.registry import AdapterRegistry, RegistryError, RegistryState
from distillserve.background_task import BackgroundTask
from distillserve.monitoring import metrics
from distillserve.protocol.errors import AdapterError, APIError

log = logging.getLogger(__name__)


def _serving_part(state: RegistryState) -> dict[str, object]:
    """What of the state the student route follows: all but the router's classifier."""
    return state.model_dump(exclude={"router_model"})


class StateWatcher:
    """The registry's state, read only when it changed: one HEAD/stat of ``state.json`` a poll,
    the body only when its fingerprint moved (what ``RegistrySync`` does, for other followers
    such as the learned router's published classifier)."""

    def __init__(self, registry: Callable[[], AdapterRegistry]) -> None:
        self._make_registry = registry
        self._registry: AdapterRegistry | None = None
        self._seen: str | None = None

    @property
    def registry(self) -> AdapterRegistry:
        if self._registry is None:
            self._registry = self._make_registry()
        return self._registry

    def changed(self) -> RegistryState | None:
        """The state if it changed since the last call (blocking I/O: run it on a thread); None
        when it did not, or there is none yet. Raises ``OSError`` when the store is unreachable."""
        reg = self.registry
        fingerprint = reg.state_fingerprint()
        if fingerprint is None or fingerprint == self._seen:
            return None
        state = reg.state()
        self._seen = fingerprint
        return state

    def forget(self) -> None:
        """Hand the current state out again at the next ``changed`` (acting on it failed)."""
        self._seen = None


class RegistrySync:
    def __init__(
        self,
        registry: Callable[[], AdapterRegistry],
        swapper: HotSwapper,
        baselines: DriftBaselines,
        cache: AdapterCache,
        *,
        poll_interval_s: float = 1.0,
        unload_after_s: float = 30.0,
    ) -> None:
        self._make_registry = registry
        self._registry: AdapterRegistry | None = None
        self.swapper = swapper
        self.baselines = baselines
        self.cache = cache
        self.poll_interval_s = poll_interval_s
        self.unload_after_s = unload_after_s
        self._applied: str | None = None  # fingerprint of the state last acted on
        self._refused: tuple[str, float] | None = None  # (fingerprint, when) of a refused state
        #: A refused state is tried again after this long (a replica may only have been restarting).
        self.refused_retry_s = max(30.0, 10 * poll_interval_s)
        self._state = RegistryState()
        self._retired: set[str] = set()  # versions this gateway has unloaded already
        self._seeded = False  # whether the versions due before this gateway started are set aside
        self._wake = asyncio.Event()
        self._polling = asyncio.Lock()
        self._task = BackgroundTask("registry-sync")
        swapper.leave_loaded = self.manages  # registry versions: unloaded here, after the grace

    def manages(self, adapter: str) -> bool:
        """Whether ``adapter`` is a version the registry has made live or canary (so this sync,
        not the swap, decides when to unload it)."""
        reg = self.registry
        return any(reg.adapter_name(t.version) == adapter for t in self._state.log)

    @property
    def registry(self) -> AdapterRegistry:
        if self._registry is None:
            self._registry = self._make_registry()
        return self._registry

    def poke(self) -> None:
        """Read the state at once instead of at the next poll."""
        self._wake.set()

    async def apply_now(self) -> bool:
        """Apply the state now (an admin call on this gateway just wrote it); a failure is
        logged and left to the background loop, the write itself stands."""
        try:
            return await self.sync_once()
        except (APIError, OSError) as exc:
            log.warning("registry state written but not applied yet: %s", exc)
            self.poke()
            return False

    async def sync_once(self) -> bool:
        """One poll; applies the state if it changed. True when this gateway now serves what the
        registry says. Raises ``APIError`` / ``OSError`` when the engine or the store is down."""
        async with self._polling:  # the loop and an admin call's ``apply_now`` take turns
            return await self._poll()

    async def _poll(self) -> bool:
        reg = self.registry
        fingerprint = await asyncio.to_thread(reg.state_fingerprint)
        if fingerprint is None or fingerprint == self._applied:
            await self._unload_retired()
            return True
        if self._refused_recently(fingerprint):
            return False
        state = await asyncio.to_thread(reg.state)
        if self._applied is not None and _serving_part(state) == _serving_part(self._state):
            # Only what the student's route does not follow changed (a new router classifier):
            # nothing to load, probe or switch.
            self._applied, self._state = fingerprint, state
            return True
        try:
            await self._apply(reg, state)
        except (AdapterError, RegistryError) as exc:
            # Refused (corrupt, other base, rank, a replica that would not answer): the route
            # keeps what it served; retried after ``refused_retry_s``, or at the next change.
            metrics.REGISTRY_SYNCS.labels(outcome="refused").inc()
            metrics.REGISTRY_IN_SYNC.set(0)
            log.error("registry state refused, the student keeps %s: %s", self.swapper.target.live, exc)
            self._refused = (fingerprint, time.monotonic())
            return False
        transitions_before = len(self._state.log)
        self._applied, self._state, self._refused = fingerprint, state, None
        metrics.REGISTRY_SYNCS.labels(outcome="applied").inc()
        metrics.REGISTRY_IN_SYNC.set(1)
        if not self._seeded:
            # Due already when this gateway started: its predecessor or the other gateways unloaded
            # them. Unloading here could hit one that another gateway is loading again for a
            # rollback (phase one runs before the registry names it live).
            self._seeded = True
            self._retired.update(self._due(state, time.time()))
        elif len(state.log) > transitions_before:
            # A transition seen while running (at start it is no convergence time; a state write
            # without one, such as a new router classifier, is none either).
            metrics.REGISTRY_CONVERGENCE.observe(max(0.0, time.time() - state.log[-1].at))
        return True

    def _refused_recently(self, fingerprint: str) -> bool:
        if self._refused is None or self._refused[0] != fingerprint:
            return False
        return time.monotonic() - self._refused[1] < self.refused_retry_s

    async def _apply(self, reg: AdapterRegistry, state: RegistryState) -> None:
        for version, agreement in state.baselines.items():
            if version in (state.live, state.canary):
                self.baselines.set_drift_baseline(reg.adapter_name(version), agreement)
        if state.live is not None:
            path = await asyncio.to_thread(self.cache.materialise, reg, state.live)
            await self.swapper.activate(reg.adapter_name(state.live), str(path), adopt=True)
        if state.canary is not None:
            path = await asyncio.to_thread(self.cache.materialise, reg, state.canary)
            name = reg.adapter_name(state.canary)
            await self.swapper.set_canary(name, str(path), state.canary_share, adopt=True)
        elif self.swapper.target.canary is not None:
            await self.swapper.set_canary(None, None, 0.0)

    def _due(self, state: RegistryState, now: float) -> list[str]:
        return [
            v
            for v in {t.version for t in state.log} - self._retired
            if (since := state.retired_since(v)) is not None and now - since >= self.unload_after_s
        ]

    async def _unload_retired(self) -> None:
        """Unload versions the registry retired more than ``unload_after_s`` ago (once each)."""
        now, state, reg = time.time(), self._state, self.registry
        due = self._due(state, now)
        if not due:
            return
        held = set(await self.swapper.host.list_adapters())
        for version in due:
            name = reg.adapter_name(version)
            if name in held and self.swapper.retire(name):
                log.info("unloading %s: retired %.0fs ago", name, now - (state.retired_since(version) or now))
            self._retired.add(version)

    async def start(self, startup_timeout_s: float) -> bool:
        """Apply the registry's state before the gateway serves (waiting up to
        ``startup_timeout_s`` for the engine), then follow it in the background."""
        deadline = time.monotonic() + startup_timeout_s
        converged = False
        while True:
            try:
                converged = await self.sync_once()
                break
            except (APIError, OSError) as exc:
                if time.monotonic() >= deadline:
                    log.error("registry state not applied at start (%s); converging in the background", exc)
                    break
                await asyncio.sleep(min(self.poll_interval_s, 1.0))
        self._task.start(self._run)
        return converged

    async def _run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except (APIError, OSError) as exc:
                metrics.REGISTRY_SYNCS.labels(outcome="unreachable").inc()
                log.warning("registry sync: %s; retrying", exc)
            except Exception:  # the loop must outlive any surprise; the next poll retries
                log.exception("registry sync round failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    async def aclose(self) -> None:
        await self._task.aclose()
