"""Keep the student engine holding the adapters the route points at.

A background loop in the gateway: it makes the configured adapter live once the engine
answers (the gateway may start before vLLM), and afterwards, every ``interval_s`` or at once
when a request found its adapter missing (``poke``), reloads the live and canary adapters
the engine lost — vLLM restarted underneath the gateway comes back with only its base model.
While it is down, ``model: auto`` requests fail over to the teacher (the gateway's fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from distillserve.adapters.hotswap import HotSwapper
from distillserve.background_task import BackgroundTask
from distillserve.protocol.backend import AdapterRef
from distillserve.protocol.errors import AdapterError, APIError

log = logging.getLogger(__name__)


class StudentWatch:
    def __init__(
        self,
        swapper: HotSwapper,
        *,
        interval_s: float = 2.0,
        initial: AdapterRef | None = None,
    ) -> None:
        self.swapper = swapper
        self.interval_s = interval_s
        #: (name, path) to make live as soon as the engine answers; None once done or refused.
        self.initial = initial
        self._wake = asyncio.Event()
        self._task = BackgroundTask("student-watch")

    def poke(self, adapter: str | None = None) -> None:
        """Check now (a request just found ``adapter`` missing from the engine)."""
        self._wake.set()

    async def check_once(self) -> list[str]:
        """One round: the initial activation if still pending, else a restore; returns what was reloaded."""
        if self.initial is not None:
            name, path = self.initial.name, self.initial.path
            try:
                await self.swapper.activate(name, path, adopt=True)
            except AdapterError as exc:
                log.error("configured adapter %s refused, serving the base model: %s", name, exc.message)
            except APIError as exc:
                log.info("student engine not ready for adapter %s yet: %s", name, exc.message)
                return []
            self.initial = None
            return []
        try:
            return await self.swapper.restore()
        except APIError as exc:
            log.debug("student engine unreachable, will retry: %s", exc.message)
            return []

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # the watch must outlive any surprise; the next round retries
                log.exception("student watch round failed")
            self._wake.clear()
            timeout = self.interval_s if self.interval_s > 0 else (2.0 if self.initial else None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def start(self) -> None:
        self._task.start(self._run)

    async def aclose(self) -> None:
        await self._task.aclose()
