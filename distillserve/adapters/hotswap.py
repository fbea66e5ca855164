"""Hot-swap of the student's LoRA adapter without dropping a request.

Protocol: check the new adapter (``AdapterValidator``: path, PEFT format, base model, rank),
load it under a new name (``student@v7``; never reuse a name, vLLM's prefix cache is keyed
by it), check that it answers, point the student route at it in one assignment, let
in-flight requests on the old name finish, then unload the old one. Any failure before the
switch leaves the old version live and says why (``AdapterError``). The same protocol drives
vLLM and the embedded engine (both are ``AdapterHost``s).

The interface the admin API and the adapter registry build on:
- ``activate(name, path)``: make a version live (promote, or roll back to an older one).
- ``set_canary(name, path, share)`` / ``set_canary(None, None, 0)``: a share of student traffic.
- ``restore()``: reload the live and canary versions after the engine lost them.
- ``status()``: live, canary, what is loaded and in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from distillserve.adapters.student_target import StudentTarget
from distillserve.adapters.validation import AdapterValidator
from distillserve.monitoring import metrics
from distillserve.protocol.backend import AdapterHost, Backend
from distillserve.protocol.errors import AdapterError, APIError, InvalidRequest
from distillserve.protocol.schema import ChatCompletionRequest, ChatMessage

log = logging.getLogger(__name__)

_PROBE = ChatCompletionRequest(
    model="probe", messages=[ChatMessage(role="user", content="copy: ok")], max_tokens=1, temperature=0.0
)


@dataclass(frozen=True)
class SwapResult:
    live: str | None
    previous: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HotSwapper:
    def __init__(
        self,
        backend: Backend,
        target: StudentTarget,
        *,
        base_model: str = "student",
        drain_timeout_s: float = 120.0,
        validator: AdapterValidator | None = None,
    ) -> None:
        host = backend.adapter_host()
        if host is None:
            raise TypeError(f"backend {backend.name!r} ({backend.kind}) cannot serve LoRA adapters")
        self.backend = backend
        self.host: AdapterHost = host
        self.target = target
        self.base_model = base_model
        self.drain_timeout_s = drain_timeout_s
        self.validator = validator
        #: Names whose unloading is decided elsewhere: registry versions, on engines shared by
        #: several gateways, are unloaded by the registry sync once no gateway can still route to
        #: them (``retire``). Any other replaced adapter is unloaded here once drained.
        self.leave_loaded: Callable[[str], bool] = lambda name: False
        self.paths: dict[str, str] = {}  # adapter name -> path, to reload after an engine restart
        self._lock = asyncio.Lock()
        self._unloads: set[asyncio.Task[None]] = set()

    async def _load_checked(self, name: str, path: str, *, adopt: bool = False) -> None:
        if name in await self.host.list_adapters():
            known = self.paths.get(name)
            if known is None and adopt:
                # Gateway restart: the engine still holds the version the config names.
                if self.validator is not None:
                    await self.validator.check(path)
                known = path
            if known != path:
                where = f" from {known}" if known else ""
                raise AdapterError(
                    f"an adapter named {name!r} is already loaded{where}; give every version a new name",
                    param="name",
                )
            # Ours, same files: reuse it (promoting the canary, rolling back to a draining version).
        else:
            if self.validator is not None:
                await self.validator.check(path)
            await self.host.load_adapter(name, path)
        try:
            await self.backend.chat(_PROBE, model=name)
        except APIError as exc:
            if name not in (self.target.live, self.target.canary):
                await self._unload_quietly(name)
            raise AdapterError(f"adapter {name!r} loaded but does not answer: {exc.message}") from exc
        self.paths[name] = path

    async def activate(self, name: str, path: str, *, adopt: bool = False) -> SwapResult:
        """Make ``name`` (PEFT adapter at ``path``) the live student; raises ``AdapterError`` if refused.

        ``adopt``: accept that the engine already holds ``name`` (from an earlier gateway run)."""
        start = time.perf_counter()
        path = os.path.abspath(path)
        async with self._lock:
            if self.target.live == name:
                if self.paths.get(name) == path:
                    return SwapResult(name, name, 0.0)
                self._refused(name, f"{name!r} is already live from {self.paths.get(name)}")
            try:
                await self._load_checked(name, path, adopt=adopt)
            except APIError as exc:
                metrics.ADAPTER_SWAPS.labels(outcome="refused").inc()
                log.warning("swap to %s refused, %s stays live: %s", name, self.target.live, exc.message)
                raise
            old = self.target.set_live(name)
            elapsed = time.perf_counter() - start
            metrics.ADAPTER_SWAPS.labels(outcome="swapped").inc()
            metrics.ADAPTER_SWAP_DURATION.observe(elapsed)
            metrics.LIVE_ADAPTER.labels(base=self.base_model, version=old or metrics.BASE_VERSION).set(0)
            metrics.LIVE_ADAPTER.labels(base=self.base_model, version=name).set(1)
            log.info("student route now serves %s (was %s) after %.3fs", name, old, elapsed)
            if old is not None and old != self.target.canary and not self.leave_loaded(old):
                self._unload_when_drained(old)
            return SwapResult(name, old, elapsed)

    async def prepare(self, name: str, path: str) -> None:
        """Phase one of a fleet-wide swap: load ``name`` on every replica and probe it there,
        without switching this gateway's route (the registry write that follows does that)."""
        path = os.path.abspath(path)
        async with self._lock:
            try:
                await self._load_checked(name, path, adopt=True)
            except APIError as exc:
                metrics.ADAPTER_SWAPS.labels(outcome="refused").inc()
                log.warning("%s refused before the switch: %s", name, exc.message)
                raise

    def _refused(self, name: str, why: str) -> None:
        metrics.ADAPTER_SWAPS.labels(outcome="refused").inc()
        raise AdapterError(f"adapter {name!r} refused: {why}", param="name")

    async def set_canary(
        self, name: str | None, path: str | None, share: float, *, adopt: bool = False
    ) -> None:
        """Send ``share`` of student traffic to ``name``; ``name=None`` ends the canary.

        ``adopt``: accept that the engine already holds ``name`` (another gateway loaded it)."""
        if not 0.0 <= share <= 1.0:
            raise InvalidRequest(f"canary share must be in [0, 1], got {share}", param="share")
        async with self._lock:
            old = self.target.canary
            if name is not None:
                if path is None:
                    raise AdapterError("a canary needs the adapter's path", param="path")
                if name == self.target.live:
                    self._refused(name, "it is the live version")
                path = os.path.abspath(path)
                try:
                    await self._load_checked(name, path, adopt=adopt)
                except APIError as exc:
                    metrics.ADAPTER_SWAPS.labels(outcome="refused").inc()
                    log.warning("canary %s refused: %s", name, exc.message)
                    raise
            self.target.set_canary(name, share)
            log.info("canary now %s at %.0f%% (was %s)", name, share * 100, old)
            if old is not None and old not in (name, self.target.live) and not self.leave_loaded(old):
                self._unload_when_drained(old)

    async def restore(self) -> list[str]:
        """Reload the live and canary adapters the engine lost (it restarted underneath us);
        returns the names reloaded. Raises ``APIError`` when the engine cannot be reached."""
        async with self._lock:
            wanted = [n for n in (self.target.live, self.target.canary) if n is not None and n in self.paths]
            if not wanted:
                return []
            loaded = set(await self.host.list_adapters())
            reloaded = []
            for name in wanted:
                if name not in loaded:
                    await self.host.load_adapter(name, self.paths[name])
                    metrics.ADAPTER_RESTORES.inc()
                    reloaded.append(name)
                    log.warning("reloaded adapter %s from %s: the engine had lost it", name, self.paths[name])
            return reloaded

    async def status(self) -> dict[str, Any]:
        """What the student route serves, what the engine holds, what is in flight."""
        try:
            loaded: list[str] | None = sorted(await self.host.list_adapters())
            engine = "up"
        except APIError as exc:
            loaded, engine = None, f"unreachable: {exc.message}"
        t = self.target
        names = {n for n in (t.live, t.canary, *self.paths) if n is not None}
        return {
            "backend": {"name": self.backend.name, "kind": self.backend.kind, "engine": engine},
            "live": t.live,
            "canary": t.canary,
            "canary_share": t.canary_share,
            "adapters": dict(sorted(self.paths.items())),
            "loaded": loaded,
            "in_flight": {n: t.busy(n) for n in sorted(names)},
            "pending_unloads": len(self._unloads),
        }

    def retire(self, name: str) -> bool:
        """Unload ``name`` once no request here runs on it, unless this gateway serves it;
        returns whether an unload was scheduled."""
        if name in (self.target.live, self.target.canary):
            return False
        self._unload_when_drained(name)
        return True

    def _unload_when_drained(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._drain_then_unload(name))
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def _drain_then_unload(self, name: str) -> None:
        if not await self.target.drained(name, self.drain_timeout_s):
            log.warning("adapter %s still busy after %.0fs; unloading anyway", name, self.drain_timeout_s)
        async with self._lock:
            if name in (self.target.live, self.target.canary):
                return  # it came back (rollback) while we waited
            await self._unload_quietly(name)
            self.paths.pop(name, None)

    async def _unload_quietly(self, name: str) -> None:
        try:
            await self.host.unload_adapter(name)
        except APIError as exc:
            log.warning("could not unload adapter %s: %s", name, exc.message)

    async def wait_idle(self) -> None:
        """Wait for pending unloads (tests and shutdown)."""
        if self._unloads:
            await asyncio.gather(*self._unloads, return_exceptions=True)

    async def aclose(self) -> None:
        """Shutdown: stop waiting to unload drained versions (the engine keeps them)."""
        for task in list(self._unloads):
            task.cancel()
        await self.wait_idle()
