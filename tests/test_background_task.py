"""The background task the gateway's watchers share: started once, cancelled and awaited on close."""

from __future__ import annotations

import asyncio

from distillserve.background_task import BackgroundTask


def test_starts_once_and_close_cancels_it() -> None:
    runs: list[str] = []
    cancelled = asyncio.Event()

    async def loop() -> None:
        runs.append("started")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def scenario() -> None:
        task = BackgroundTask("watch")
        await task.aclose()  # before a start: nothing to do
        task.start(loop)
        task.start(loop)  # already running: not a second loop
        await asyncio.sleep(0)
        assert task.started and runs == ["started"]
        assert [t.get_name() for t in asyncio.all_tasks() if t.get_name() == "watch"] == ["watch"]
        await task.aclose()
        assert cancelled.is_set() and not task.started
        await task.aclose()

    asyncio.run(scenario())
