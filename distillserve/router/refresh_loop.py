"""Keeps a learned scorer fitted to the student that serves now.

A background task in the gateway re-fits the scorer (``Router.refresh``: re-ask the live
student the recent teacher-answered conversations, grade, retrain) when the live adapter
changed, and every ``router.retrain.every`` new teacher answers. The first fit happens as soon as
``router.retrain.min_examples`` answers are in, so a fresh deployment learns what its student can
do from its own traffic. It watches ``StudentTarget.live`` instead of hooking the hot-swap,
so every path that changes the live version (promotion, rollback, admin API) is covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from distillserve.adapters.student_target import StudentTarget
from distillserve.protocol.backend import Backend
from distillserve.router.router import Router

log = logging.getLogger(__name__)

_UNFITTED = object()


class RouterRefresher:
    def __init__(
        self,
        router: Router,
        student: Backend,
        target: StudentTarget,
        *,
        every: int,
        min_examples: int,
        poll_s: float = 1.0,
    ) -> None:
        self.router = router
        self.student = student
        self.target = target
        self.every = every
        self.min_examples = min_examples
        self.poll_s = poll_s
        self.fits = 0
        self._fitted_for: object = _UNFITTED
        self._answers_at_fit = 0
        self._task: asyncio.Task[None] | None = None

    def due(self) -> bool:
        seen = self.router.recent.total
        if seen < self.min_examples:
            return False
        if self._fitted_for is _UNFITTED or self._fitted_for != self.target.live:
            return True
        return self.every > 0 and seen - self._answers_at_fit >= self.every

    async def refresh_once(self) -> None:
        adapter = self.target.live
        seen = self.router.recent.total
        report = await self.router.refresh(self.student, adapter=adapter, min_examples=self.min_examples)
        if report is not None:
            self.fits += 1
            log.info("router re-fitted for %s on %d recent answers", adapter or "the base student", seen)
        self._fitted_for, self._answers_at_fit = adapter, seen

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            if not self.due():
                continue
            try:
                await self.refresh_once()
            except Exception:  # routing goes on with the old classifier; try again at the next trigger
                log.exception("router re-fit failed")
                self._answers_at_fit = self.router.recent.total

    def start(self) -> None:
        if self.router.learns and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="router-refresh")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
