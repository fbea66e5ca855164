"""One named background task a component starts once and cancels when it closes.

The gateway's watchers (registry sync, student watch, router refresh, fleet share) each run one
such loop for the life of the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundTask:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Starts ``run()`` on the running loop, unless this task already runs."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(run(), name=self.name)

    async def aclose(self) -> None:
        """Cancels the task and waits for it to end; closing twice, or before a start, is a no-op."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
