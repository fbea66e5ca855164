"""When the demo's traffic stops: after its duration, and after the first live adapter settled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from distillserve.demo.report import AdapterEvent
from distillserve.demo.run import AdapterWatcher, DemoOptions, _end_traffic
from distillserve.demo.stack import Endpoints


def _watcher() -> AdapterWatcher:
    root = "http://127.0.0.1:9"
    ep = Endpoints(
        root + "/v1", root, teacher=root, broker="127.0.0.1:9", distiller_metrics=root, admin_key="k"
    )
    return AdapterWatcher(ep, time.perf_counter())


async def _ends_after(opts: DemoOptions, watcher: AdapterWatcher, live_at: float | None) -> float:
    stop = asyncio.Event()
    ender = asyncio.create_task(_end_traffic(opts, watcher, stop))
    if live_at is not None:
        await asyncio.sleep(live_at)
        t = time.perf_counter() - watcher.started
        watcher.seen["v1"] = "live"
        watcher.events.append(AdapterEvent(t, "v1", "live"))
    await asyncio.wait_for(stop.wait(), 30)
    await ender
    return time.perf_counter() - watcher.started


def test_traffic_runs_until_the_first_live_version_has_settled(tmp_path: Path) -> None:
    opts = DemoOptions(
        out=tmp_path, duration_s=1.0, wait_for_versions=1, settle_after_live_s=2.0, max_wait_s=20
    )
    ended = asyncio.run(_ends_after(opts, _watcher(), live_at=1.5))
    assert 3.5 <= ended < 6.0  # 1.5 s to go live + 2 s settling, polled once a second


def test_without_a_live_version_the_wait_is_bounded(tmp_path: Path) -> None:
    opts = DemoOptions(
        out=tmp_path, duration_s=1.0, wait_for_versions=1, settle_after_live_s=2.0, max_wait_s=2.0
    )
    ended = asyncio.run(_ends_after(opts, _watcher(), live_at=None))
    assert 3.0 <= ended < 5.5
