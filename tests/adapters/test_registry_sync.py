"""A gateway following the registry (``RegistrySync``) on a real embedded student engine (the tiny
student, in process): it applies the live version, the canary and the drift baselines, refuses a
corrupt version without leaving the live one, and unloads a version only once the registry has
had it retired for ``unload_after_s``. Metrics are read from the test's own registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from distillserve.adapters.adapter_cache import AdapterCache
from distillserve.adapters.hotswap import HotSwapper
from distillserve.adapters.registry import AdapterCard, AdapterRegistry
from distillserve.adapters.registry_sync import RegistrySync
from distillserve.adapters.student_target import StudentTarget
from distillserve.backends.embedded import EmbeddedBackend
from distillserve.config import EmbeddedBackendConfig
from tests.support.lora_adapters import make_lora_adapter
from tests.support.metrics import sample
from tests.support.tiny_student import build_tiny_student


class Baselines:
    def __init__(self) -> None:
        self.seen: dict[str, float | None] = {}

    def set_drift_baseline(self, adapter: str, agreement: float | None) -> None:
        self.seen[adapter] = agreement


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny")).resolve()


@pytest.fixture(scope="module")
def adapters(base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return [make_lora_adapter(base, tmp_path_factory.mktemp(f"a{s}"), seed=s, rank=2) for s in (1, 2, 3)]


@pytest.fixture
async def engine(base: Path) -> AsyncIterator[EmbeddedBackend]:
    backend = EmbeddedBackend(EmbeddedBackendConfig(name="student", model_path=str(base), threads=1))
    await backend.start()
    yield backend
    await backend.aclose()


def _registry(tmp_path: Path, base: Path, adapters: list[Path]) -> AdapterRegistry:
    reg = AdapterRegistry(str(tmp_path / "registry"), str(base))
    for i, a in enumerate(adapters):
        reg.register(
            a,
            AdapterCard(
                base_model=str(base), eval={"candidate": {"heldout": {"exact_match": 0.5 + i / 10, "n": 10}}}
            ),
        )
    return reg


def _sync(
    reg: AdapterRegistry, engine: EmbeddedBackend, tmp_path: Path, **kw: float
) -> tuple[RegistrySync, Baselines]:
    swapper = HotSwapper(engine, StudentTarget())
    baselines = Baselines()
    return RegistrySync(lambda: reg, swapper, baselines, AdapterCache(tmp_path / "cache"), **kw), baselines


async def test_the_gateway_follows_live_canary_and_baselines(
    tmp_path: Path,
    base: Path,
    adapters: list[Path],
    engine: EmbeddedBackend,
    fresh_metrics: CollectorRegistry,
) -> None:
    reg = _registry(tmp_path, base, adapters)
    sync, baselines = _sync(reg, engine, tmp_path, unload_after_s=3600)
    target = sync.swapper.target
    assert await sync.sync_once() and target.live is None  # no state yet: nothing to follow
    reg.mark_live("v1", by="test", baseline=0.5)
    assert await sync.sync_once() and target.live == "student@v1"
    assert baselines.seen == {"student@v1": 0.5}
    reg.mark_canary("v2", 0.25, by="test", baseline=0.6)
    assert await sync.sync_once()
    assert (target.live, target.canary, target.canary_share) == ("student@v1", "student@v2", 0.25)
    assert sorted(await engine.list_adapters()) == ["student@v1", "student@v2"]
    reg.mark_live("v2", by="test")  # the canary promoted: it stops being a canary
    assert await sync.sync_once() and (target.live, target.canary) == ("student@v2", None)
    reg.mark_live("v1", by="test", reason="rollback")
    assert await sync.sync_once() and target.live == "student@v1"
    # Nothing was unloaded: the registry retired v2 less than unload_after_s ago.
    assert sorted(await engine.list_adapters()) == ["student@v1", "student@v2"]
    assert sample(fresh_metrics, "distillserve_registry_syncs_total", outcome="applied") == 4
    assert sample(fresh_metrics, "distillserve_registry_in_sync") == 1
    # Convergence times are those of changes seen while running: not the first state, at start.
    assert sample(fresh_metrics, "distillserve_registry_convergence_seconds_count") == 3


async def test_a_retired_version_is_unloaded_after_the_grace_period(
    tmp_path: Path, base: Path, adapters: list[Path], engine: EmbeddedBackend
) -> None:
    reg = _registry(tmp_path, base, adapters)
    sync, _ = _sync(reg, engine, tmp_path, unload_after_s=0.5)
    reg.mark_live("v1", by="test")
    await sync.sync_once()
    reg.mark_live("v2", by="test")
    await sync.sync_once()
    assert sorted(await engine.list_adapters()) == ["student@v1", "student@v2"]
    await asyncio.sleep(0.6)
    await sync.sync_once()  # unchanged state: this poll retires what is due
    await sync.swapper.wait_idle()
    assert await engine.list_adapters() == ["student@v2"]


async def test_a_corrupt_live_version_is_refused_and_the_old_one_keeps_serving(
    tmp_path: Path,
    base: Path,
    adapters: list[Path],
    engine: EmbeddedBackend,
    fresh_metrics: CollectorRegistry,
) -> None:
    reg = _registry(tmp_path, base, adapters)
    sync, _ = _sync(reg, engine, tmp_path)
    reg.mark_live("v1", by="test")
    await sync.sync_once()
    weights = Path(reg.version_path("v2"), "adapter_model.safetensors")
    weights.write_bytes(weights.read_bytes()[:-8])  # truncated after it was registered
    reg.mark_live("v2", by="a hand edit of state.json, no gateway checked it")
    assert await sync.sync_once() is False
    assert sync.swapper.target.live == "student@v1"
    assert sample(fresh_metrics, "distillserve_registry_syncs_total", outcome="refused") == 1
    assert sample(fresh_metrics, "distillserve_registry_in_sync") == 0
    assert await sync.sync_once() is False  # not retried at every poll ...
    assert sample(fresh_metrics, "distillserve_registry_syncs_total", outcome="refused") == 1
    reg.mark_live("v3", by="test")  # ... but the next change is applied
    assert await sync.sync_once() and sync.swapper.target.live == "student@v3"
