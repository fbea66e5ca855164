"""HotSwapper on an in-memory adapter host: the swap protocol (load under the new name, check
it answers, switch, drain, unload), refusals that leave the live version serving, canaries,
restore after an engine restart, and shutdown. Metrics are read from the test's own registry."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from distillserve.adapters.hotswap import HotSwapper
from distillserve.adapters.student_target import StudentTarget
from distillserve.adapters.validation import AdapterValidator
from distillserve.backends import testbed_teacher
from distillserve.protocol.errors import AdapterError, APIError, InvalidRequest
from tests.support.adapter_host import FakeAdapterHost
from tests.support.metrics import sample

SWAPS = "distillserve_adapter_swaps_total"


@pytest.fixture
def host() -> FakeAdapterHost:
    return FakeAdapterHost()


@pytest.fixture
def target() -> StudentTarget:
    return StudentTarget(rng=random.Random(0))


@pytest.fixture
def swapper(host: FakeAdapterHost, target: StudentTarget, fresh_metrics: CollectorRegistry) -> HotSwapper:
    return HotSwapper(host, target, base_model="student", drain_timeout_s=30)


def path(tmp_path: Path, version: str) -> str:
    return str(tmp_path / version)


def refused(registry: CollectorRegistry) -> float:
    return sample(registry, SWAPS, outcome="refused")


async def test_activate_loads_probes_and_points_the_route_at_the_new_name(
    swapper: HotSwapper,
    host: FakeAdapterHost,
    target: StudentTarget,
    tmp_path: Path,
    fresh_metrics: CollectorRegistry,
) -> None:
    result = await swapper.activate("student@v1", path(tmp_path, "v1"))
    assert (result.live, result.previous) == ("student@v1", None)
    assert target.live == "student@v1" and host.loaded == {"student@v1": path(tmp_path, "v1")}
    assert swapper.paths == {"student@v1": path(tmp_path, "v1")}
    assert sample(fresh_metrics, SWAPS, outcome="swapped") == 1
    assert sample(fresh_metrics, "distillserve_adapter_swap_duration_seconds_count") == 1
    info = "distillserve_live_adapter_info"
    assert sample(fresh_metrics, info, base="student", version="student@v1") == 1
    assert sample(fresh_metrics, info, base="student", version="base") == 0


async def test_the_old_version_is_unloaded_only_after_its_requests_finish(
    swapper: HotSwapper, host: FakeAdapterHost, target: StudentTarget, tmp_path: Path
) -> None:
    await swapper.activate("student@v1", path(tmp_path, "v1"))
    with target.in_flight("student@v1"):  # a request still running on v1
        result = await swapper.activate("student@v2", path(tmp_path, "v2"))
        assert (result.live, result.previous) == ("student@v2", "student@v1")
        assert target.live == "student@v2"  # new requests go to v2 at once
        await asyncio.sleep(0)  # let the drain task start
        assert "student@v1" in host.loaded  # ... while v1 finishes its request
        status = await swapper.status()
        assert status["in_flight"] == {"student@v1": 1, "student@v2": 0}
        assert status["pending_unloads"] == 1
    await swapper.wait_idle()
    assert host.loaded == {"student@v2": path(tmp_path, "v2")}
    assert host.calls == [("load", "student@v1"), ("load", "student@v2"), ("unload", "student@v1")]
    assert "student@v1" not in swapper.paths


async def test_a_version_still_busy_after_the_drain_timeout_is_unloaded_anyway(
    host: FakeAdapterHost, target: StudentTarget, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    swapper = HotSwapper(host, target, drain_timeout_s=0.01)
    await swapper.activate("student@v1", path(tmp_path, "v1"))
    with target.in_flight("student@v1"):
        await swapper.activate("student@v2", path(tmp_path, "v2"))
        await swapper.wait_idle()
        assert list(host.loaded) == ["student@v2"]


async def test_rolling_back_to_a_draining_version_keeps_it_loaded(
    swapper: HotSwapper, host: FakeAdapterHost, target: StudentTarget, tmp_path: Path
) -> None:
    await swapper.activate("student@v1", path(tmp_path, "v1"))
    with target.in_flight("student@v1"):
        await swapper.activate("student@v2", path(tmp_path, "v2"))
        await swapper.activate("student@v1", path(tmp_path, "v1"))  # rollback while v1 drains
    await swapper.wait_idle()
    assert target.live == "student@v1"
    assert list(host.loaded) == ["student@v1"]  # reused, not loaded twice; v2 drained and unloaded
    assert host.calls.count(("load", "student@v1")) == 1


async def test_activating_the_live_version_again_is_a_no_op(
    swapper: HotSwapper, host: FakeAdapterHost, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    await swapper.activate("student@v1", path(tmp_path, "v1"))
    again = await swapper.activate("student@v1", path(tmp_path, "v1"))
    assert (again.live, again.previous, again.seconds) == ("student@v1", "student@v1", 0.0)
    assert host.calls == [("load", "student@v1")]
    assert sample(fresh_metrics, SWAPS, outcome="swapped") == 1


# --- refusals: the live version keeps serving -------------------------------------------------------
async def _live_v1(swapper: HotSwapper, tmp_path: Path) -> None:
    await swapper.activate("student@v1", path(tmp_path, "v1"))


async def test_an_adapter_the_validator_refuses_is_never_loaded(
    host: FakeAdapterHost, target: StudentTarget, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    swapper = HotSwapper(host, target, validator=AdapterValidator(served_base=None, max_rank=None))
    (tmp_path / "empty").mkdir()  # no adapter_config.json, no weights
    for name, where in (("student@v1", "missing"), ("student@v2", "empty")):
        with pytest.raises(AdapterError):
            await swapper.activate(name, path(tmp_path, where))
    assert target.live is None and host.calls == []
    assert refused(fresh_metrics) == 2
    assert sample(fresh_metrics, SWAPS, outcome="swapped") == 0


async def test_an_adapter_the_engine_refuses_leaves_the_live_one(
    swapper: HotSwapper,
    host: FakeAdapterHost,
    target: StudentTarget,
    tmp_path: Path,
    fresh_metrics: CollectorRegistry,
) -> None:
    await _live_v1(swapper, tmp_path)
    host.refuse_load.add("student@v2")
    with pytest.raises(AdapterError, match="engine refused"):
        await swapper.activate("student@v2", path(tmp_path, "v2"))
    assert target.live == "student@v1" and list(host.loaded) == ["student@v1"]
    assert refused(fresh_metrics) == 1
    assert sample(fresh_metrics, "distillserve_live_adapter_info", base="student", version="student@v1") == 1


async def test_an_adapter_that_loads_but_does_not_answer_is_unloaded_again(
    swapper: HotSwapper,
    host: FakeAdapterHost,
    target: StudentTarget,
    tmp_path: Path,
    fresh_metrics: CollectorRegistry,
) -> None:
    await _live_v1(swapper, tmp_path)
    host.mute.add("student@v2")
    with pytest.raises(AdapterError, match="does not answer"):
        await swapper.activate("student@v2", path(tmp_path, "v2"))
    assert target.live == "student@v1" and list(host.loaded) == ["student@v1"]
    assert host.calls[-1] == ("unload", "student@v2")
    assert "student@v2" not in swapper.paths
    assert refused(fresh_metrics) == 1


async def test_a_name_is_never_reused_for_other_files(
    swapper: HotSwapper,
    host: FakeAdapterHost,
    target: StudentTarget,
    tmp_path: Path,
    fresh_metrics: CollectorRegistry,
) -> None:
    await _live_v1(swapper, tmp_path)
    with pytest.raises(AdapterError, match="already live"):
        await swapper.activate("student@v1", path(tmp_path, "other"))
    host.loaded["student@v9"] = path(tmp_path, "v9")  # loaded by someone else (an earlier gateway)
    with pytest.raises(AdapterError, match="already loaded"):
        await swapper.activate("student@v9", path(tmp_path, "v9"))
    assert target.live == "student@v1"
    assert refused(fresh_metrics) == 2


async def test_adopt_takes_over_the_version_the_engine_already_holds(
    swapper: HotSwapper, host: FakeAdapterHost, target: StudentTarget, tmp_path: Path
) -> None:
    host.loaded["student@v3"] = path(tmp_path, "v3")  # the gateway restarted, the engine did not
    await swapper.activate("student@v3", path(tmp_path, "v3"), adopt=True)
    assert target.live == "student@v3" and host.calls == []  # probed, not loaded again
    assert swapper.paths == {"student@v3": path(tmp_path, "v3")}


def test_a_backend_that_cannot_host_adapters_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="cannot serve LoRA adapters"):
        HotSwapper(testbed_teacher.TestbedTeacher("student"), StudentTarget())


# --- canary --------------------------------------------------------------------------------------
async def test_a_canary_gets_its_share_and_is_unloaded_when_cleared(
    swapper: HotSwapper, host: FakeAdapterHost, target: StudentTarget, tmp_path: Path
) -> None:
    await _live_v1(swapper, tmp_path)
    await swapper.set_canary("student@v2", path(tmp_path, "v2"), 1.0)
    assert (target.canary, target.canary_share) == ("student@v2", 1.0)
    choice = target.pick()
    assert (choice.adapter, choice.canary) == ("student@v2", True)  # share 1: every request
    await swapper.set_canary("student@v2", path(tmp_path, "v2"), 0.0)
    assert target.pick().adapter == "student@v1"  # share 0: none
    assert host.calls.count(("load", "student@v2")) == 1  # changing the share reloads nothing
    with target.in_flight("student@v2"):
        await swapper.set_canary(None, None, 0.0)
        assert target.canary is None and target.canary_share == 0.0
        await asyncio.sleep(0)
        assert "student@v2" in host.loaded  # drains first
    await swapper.wait_idle()
    assert list(host.loaded) == ["student@v1"]


async def test_a_new_canary_replaces_the_old_one(
    swapper: HotSwapper, host: FakeAdapterHost, target: StudentTarget, tmp_path: Path
) -> None:
    await _live_v1(swapper, tmp_path)
    await swapper.set_canary("student@v2", path(tmp_path, "v2"), 0.1)
    await swapper.set_canary("student@v3", path(tmp_path, "v3"), 0.2)
    await swapper.wait_idle()
    assert (target.canary, target.canary_share) == ("student@v3", 0.2)
    assert sorted(host.loaded) == ["student@v1", "student@v3"]


async def test_promoting_the_canary_reuses_it_and_ends_the_canary(
    swapper: HotSwapper, host: FakeAdapterHost, target: StudentTarget, tmp_path: Path
) -> None:
    await _live_v1(swapper, tmp_path)
    await swapper.set_canary("student@v2", path(tmp_path, "v2"), 0.5)
    await swapper.activate("student@v2", path(tmp_path, "v2"))
    await swapper.wait_idle()
    assert (target.live, target.canary, target.canary_share) == ("student@v2", None, 0.0)
    assert list(host.loaded) == ["student@v2"]
    assert host.calls.count(("load", "student@v2")) == 1


async def test_canary_refusals(
    swapper: HotSwapper,
    host: FakeAdapterHost,
    target: StudentTarget,
    tmp_path: Path,
    fresh_metrics: CollectorRegistry,
) -> None:
    await _live_v1(swapper, tmp_path)
    with pytest.raises(InvalidRequest, match="share"):
        await swapper.set_canary("student@v2", path(tmp_path, "v2"), 1.5)
    with pytest.raises(AdapterError, match="path"):
        await swapper.set_canary("student@v2", None, 0.5)
    with pytest.raises(AdapterError, match="live version"):
        await swapper.set_canary("student@v1", path(tmp_path, "v1"), 0.5)
    host.mute.add("student@v2")
    with pytest.raises(AdapterError, match="does not answer"):
        await swapper.set_canary("student@v2", path(tmp_path, "v2"), 0.5)
    assert (target.live, target.canary) == ("student@v1", None)
    assert list(host.loaded) == ["student@v1"]
    assert refused(fresh_metrics) == 2  # the share and the missing path are bad requests, not refusals


# --- engine restart, status, shutdown -----------------------------------------------------------------
async def test_restore_reloads_live_and_canary_after_an_engine_restart(
    swapper: HotSwapper,
    host: FakeAdapterHost,
    target: StudentTarget,
    tmp_path: Path,
    fresh_metrics: CollectorRegistry,
) -> None:
    assert await swapper.restore() == []  # nothing live: nothing to restore
    await _live_v1(swapper, tmp_path)
    await swapper.set_canary("student@v2", path(tmp_path, "v2"), 0.3)
    assert await swapper.restore() == []  # the engine still holds both
    host.restart()
    assert await swapper.restore() == ["student@v1", "student@v2"]
    assert host.loaded == {"student@v1": path(tmp_path, "v1"), "student@v2": path(tmp_path, "v2")}
    assert sample(fresh_metrics, "distillserve_adapter_restores_total") == 2
    assert (target.live, target.canary, target.canary_share) == ("student@v1", "student@v2", 0.3)


async def test_restore_and_status_while_the_engine_is_down(
    swapper: HotSwapper, host: FakeAdapterHost, tmp_path: Path
) -> None:
    await _live_v1(swapper, tmp_path)
    host.down = True
    with pytest.raises(APIError):
        await swapper.restore()
    status = await swapper.status()
    assert status["backend"]["engine"].startswith("unreachable")
    assert status["loaded"] is None and status["live"] == "student@v1"


async def test_status_says_what_serves_and_what_is_loaded(
    swapper: HotSwapper, host: FakeAdapterHost, tmp_path: Path
) -> None:
    await _live_v1(swapper, tmp_path)
    await swapper.set_canary("student@v2", path(tmp_path, "v2"), 0.25)
    status = await swapper.status()
    assert status["backend"] == {"name": "student", "kind": "fake", "engine": "up"}
    assert (status["live"], status["canary"], status["canary_share"]) == ("student@v1", "student@v2", 0.25)
    assert status["loaded"] == ["student@v1", "student@v2"]
    assert status["adapters"] == {"student@v1": path(tmp_path, "v1"), "student@v2": path(tmp_path, "v2")}
    assert status["in_flight"] == {"student@v1": 0, "student@v2": 0}
    assert status["pending_unloads"] == 0


async def test_aclose_stops_waiting_to_unload_and_leaves_the_engine_as_it_is(
    swapper: HotSwapper, host: FakeAdapterHost, target: StudentTarget, tmp_path: Path
) -> None:
    await _live_v1(swapper, tmp_path)
    with target.in_flight("student@v1"):
        await swapper.activate("student@v2", path(tmp_path, "v2"))
        await asyncio.sleep(0)
        await swapper.aclose()
        assert (await swapper.status())["pending_unloads"] == 0
    assert sorted(host.loaded) == ["student@v1", "student@v2"]
    assert ("unload", "student@v1") not in host.calls
