"""StudentWatch on an in-memory adapter host: the configured adapter goes live once the
engine answers (or is refused for good), and adapters the engine lost come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from distillserve.adapters.hotswap import HotSwapper
from distillserve.adapters.student_target import StudentTarget
from distillserve.adapters.student_watch import StudentWatch
from distillserve.protocol.backend import AdapterRef
from tests.support.adapter_host import FakeAdapterHost
from tests.support.metrics import sample


@pytest.fixture
def host() -> FakeAdapterHost:
    return FakeAdapterHost()


@pytest.fixture
def swapper(host: FakeAdapterHost, fresh_metrics: CollectorRegistry) -> HotSwapper:
    return HotSwapper(host, StudentTarget())


async def test_the_configured_adapter_goes_live_once_the_engine_answers(
    swapper: HotSwapper, host: FakeAdapterHost, tmp_path: Path
) -> None:
    watch = StudentWatch(swapper, initial=AdapterRef("student@v1", str(tmp_path / "v1")))
    host.down = True  # the gateway started before the engine
    assert await watch.check_once() == []
    assert watch.initial is not None and swapper.target.live is None
    host.down = False
    assert await watch.check_once() == []
    assert watch.initial is None and swapper.target.live == "student@v1"


async def test_an_adapter_the_engine_still_holds_is_adopted(
    swapper: HotSwapper, host: FakeAdapterHost, tmp_path: Path
) -> None:
    host.loaded["student@v1"] = str(tmp_path / "v1")  # the gateway restarted, the engine did not
    watch = StudentWatch(swapper, initial=AdapterRef("student@v1", str(tmp_path / "v1")))
    await watch.check_once()
    assert swapper.target.live == "student@v1" and host.calls == []


async def test_a_refused_configured_adapter_is_given_up_and_the_base_model_serves(
    swapper: HotSwapper, host: FakeAdapterHost, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    host.mute.add("student@v1")
    watch = StudentWatch(swapper, initial=AdapterRef("student@v1", str(tmp_path / "v1")))
    await watch.check_once()
    assert watch.initial is None  # not retried forever
    assert swapper.target.live is None and host.loaded == {}
    assert sample(fresh_metrics, "distillserve_adapter_swaps_total", outcome="refused") == 1


async def test_later_rounds_restore_what_the_engine_lost(
    swapper: HotSwapper, host: FakeAdapterHost, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    watch = StudentWatch(swapper, initial=AdapterRef("student@v1", str(tmp_path / "v1")))
    await watch.check_once()
    host.restart()
    host.down = True
    assert await watch.check_once() == []  # unreachable: try again next round
    host.down = False
    assert await watch.check_once() == ["student@v1"]
    assert list(host.loaded) == ["student@v1"]
    assert sample(fresh_metrics, "distillserve_adapter_restores_total") == 1


async def test_a_poke_wakes_the_background_loop(
    swapper: HotSwapper, host: FakeAdapterHost, tmp_path: Path
) -> None:
    await swapper.activate("student@v1", str(tmp_path / "v1"))
    watch = StudentWatch(swapper, interval_s=0)  # no periodic rounds: only pokes wake it
    watch.start()
    try:
        await asyncio.sleep(0)  # the first round finds nothing to do
        host.restart()
        watch.poke("student@v1")
        async with asyncio.timeout(10):
            while "student@v1" not in host.loaded:
                await asyncio.sleep(0.01)
    finally:
        await watch.aclose()
