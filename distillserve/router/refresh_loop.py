"""Keeps a learned scorer fitted to the student that serves now.

A background task in the gateway re-fits the scorer (``Router.refresh``: re-ask the live
student the recent teacher-answered conversations, grade, retrain) when the live adapter
changed, and every ``router.retrain.every`` new teacher answers. The first fit happens as soon as
``router.retrain.min_examples`` answers are in, so a fresh deployment learns what its student can
do from its own traffic. It watches ``StudentTarget.live`` instead of hooking the hot-swap,
so every path that changes the live version (promotion, rollback, admin API) is covered.

Across a fleet (``shared``, ``router.published_model``) only the publishing gateway fits; every
gateway loads the classifier the registry names, at start (``prime``) and at each poll.
"""

from __future__ import annotations

import asyncio
import logging

from distillserve.adapters.student_target import StudentTarget
from distillserve.background_task import BackgroundTask
from distillserve.monitoring import metrics
from distillserve.protocol.backend import Backend
from distillserve.router.published_model import PublishedRouterModel
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
        shared: PublishedRouterModel | None = None,
    ) -> None:
        self.router = router
        self.student = student
        self.target = target
        self.every = every
        self.min_examples = min_examples
        self.poll_s = poll_s
        self.shared = shared
        self.fits = 0
        self._fitted_for: object = _UNFITTED
        self._answers_at_fit = 0
        self._task = BackgroundTask("router-refresh")

    @property
    def fits_here(self) -> bool:
        """Whether this gateway fits the classifier (alone, or as the fleet's publisher)."""
        return self.shared is None or self.shared.publishes

    def due(self) -> bool:
        if not self.fits_here:
            return False
        seen = self.router.recent.total
        if seen < self.min_examples:
            return False
        if self._fitted_for is _UNFITTED or self._fitted_for != self.target.live:
            return True
        return self.every > 0 and seen - self._answers_at_fit >= self.every

    async def refresh_once(self) -> None:
        adapter = self.target.live
        seen = self.router.recent.total
        try:
            report = await self.router.refresh(self.student, adapter=adapter, min_examples=self.min_examples)
        except Exception:  # the caller logs it; counted here beside the fits
            metrics.ROUTER_REFITS.labels(outcome="failed").inc()
            raise
        if report is not None:
            self.fits += 1
            metrics.ROUTER_REFITS.labels(outcome="fitted").inc()
            if self.shared is not None:
                await self.shared.publish(adapter)
            log.info("router re-fitted for %s on %d recent answers", adapter or "the base student", seen)
        self._fitted_for, self._answers_at_fit = adapter, seen

    async def prime(self) -> None:
        """Before the gateway serves: load the classifier the registry names (no cold start)."""
        if self.shared is not None and self.router.learns:
            await self._follow()

    async def _follow(self) -> None:
        if self.shared is None:
            return
        ref = await self.shared.follow()
        if ref is not None and self.shared.adapter_name(ref) == self.target.live:
            # Fitted to the student that serves now: nothing to re-fit until the next trigger.
            self._fitted_for, self._answers_at_fit = self.target.live, self.router.recent.total

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self._follow()
            if not self.due():
                continue
            try:
                await self.refresh_once()
            except Exception:  # routing goes on with the old classifier; try again at the next trigger
                log.exception("router re-fit failed")
                self._answers_at_fit = self.router.recent.total

    def start(self) -> None:
        if self.router.learns:
            self._task.start(self._run)

    async def aclose(self) -> None:
        await self._task.aclose()
