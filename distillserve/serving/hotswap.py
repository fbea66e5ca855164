"""Hot-swap of the student's LoRA adapter without dropping a request.

Protocol: load the new version under a new name (``student@v7``; never reuse a name,
vLLM's prefix cache is keyed by it), check that it answers, point the student route at
it in one assignment, let in-flight requests on the old name finish, then unload the
old one. Any failure before the switch leaves the old version live and says why.
The same protocol drives vLLM and the embedded engine (both are ``AdapterHost``s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from distillserve.monitoring import metrics
from distillserve.serving.backends.base import AdapterHost, Backend
from distillserve.serving.errors import AdapterError, APIError
from distillserve.serving.protocol import ChatCompletionRequest, ChatMessage
from distillserve.serving.student_target import StudentTarget

log = logging.getLogger(__name__)

_PROBE = ChatCompletionRequest(
    model="probe", messages=[ChatMessage(role="user", content="copy: ok")], max_tokens=1, temperature=0.0
)


@dataclass(frozen=True)
class SwapResult:
    live: str | None
    previous: str | None
    seconds: float


class HotSwapper:
    def __init__(
        self,
        backend: Backend,
        target: StudentTarget,
        *,
        base_model: str = "student",
        drain_timeout_s: float = 120.0,
    ) -> None:
        if not isinstance(backend, AdapterHost):
            raise TypeError(f"backend {backend.name!r} ({backend.kind}) cannot serve LoRA adapters")
        self.backend = backend
        self.host: AdapterHost = backend
        self.target = target
        self.base_model = base_model
        self.drain_timeout_s = drain_timeout_s
        self.paths: dict[str, str] = {}  # adapter name -> path, to reload after an engine restart
        self._lock = asyncio.Lock()
        self._unloads: set[asyncio.Task[None]] = set()

    async def _load_checked(self, name: str, path: str) -> None:
        if name not in await self.host.list_adapters():
            await self.host.load_adapter(name, path)
        try:
            await self.backend.chat(_PROBE, model=name)
        except APIError as exc:
            await self._unload_quietly(name)
            raise AdapterError(f"adapter {name!r} loaded but does not answer: {exc.message}") from exc
        self.paths[name] = path

    async def activate(self, name: str, path: str) -> SwapResult:
        """Make ``name`` (PEFT adapter at ``path``) the live student; raises ``AdapterError`` if refused."""
        start = time.perf_counter()
        async with self._lock:
            if self.target.live == name:
                return SwapResult(name, name, 0.0)
            try:
                await self._load_checked(name, path)
            except APIError:
                metrics.ADAPTER_SWAPS.labels(outcome="refused").inc()
                raise
            old = self.target.set_live(name)
            elapsed = time.perf_counter() - start
            metrics.ADAPTER_SWAPS.labels(outcome="swapped").inc()
            metrics.ADAPTER_SWAP_DURATION.observe(elapsed)
            metrics.LIVE_ADAPTER.labels(base=self.base_model, version=old or metrics.BASE_VERSION).set(0)
            metrics.LIVE_ADAPTER.labels(base=self.base_model, version=name).set(1)
            log.info("student route now serves %s (was %s) after %.3fs", name, old, elapsed)
            if old is not None and old != self.target.canary:
                self._unload_when_drained(old)
            return SwapResult(name, old, elapsed)

    async def set_canary(self, name: str | None, path: str | None, share: float) -> None:
        async with self._lock:
            old = self.target.canary
            if name is not None:
                if path is None:
                    raise AdapterError("a canary needs the adapter's path")
                await self._load_checked(name, path)
            self.target.set_canary(name, share)
            if old is not None and old not in (name, self.target.live):
                self._unload_when_drained(old)

    async def restore(self) -> None:
        """Reload the live and canary adapters, e.g. after the engine restarted underneath us."""
        async with self._lock:
            for name in (self.target.live, self.target.canary):
                if name is not None and name in self.paths:
                    loaded = await self.host.list_adapters()
                    if name not in loaded:
                        await self.host.load_adapter(name, self.paths[name])
                        log.warning("reloaded adapter %s after an engine restart", name)

    def _unload_when_drained(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._drain_then_unload(name))
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def _drain_then_unload(self, name: str) -> None:
        if not await self.target.drained(name, self.drain_timeout_s):
            log.warning("adapter %s still busy after %.0fs; unloading anyway", name, self.drain_timeout_s)
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
