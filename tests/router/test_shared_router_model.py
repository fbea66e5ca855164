"""The learned router's classifier is the fleet's, kept in the registry: a classifier one gateway's
scorer fitted and published is loaded by another's within the poll bound, both score every prompt
alike, and a scorer that starts later loads it instead of cold-starting. On a local registry and on
a real S3 server (moto in server mode). The real MiniLM embeds; the labels are the testbed tasks
a student 'knows' (``task_labelled``), so the classifier is a real, non-trivial one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from distillserve.adapters.adapter_cache import AdapterCache
from distillserve.adapters.hotswap import HotSwapper
from distillserve.adapters.registry import AdapterCard, AdapterRegistry, StaleRouterModel
from distillserve.adapters.registry_sync import RegistrySync, StateWatcher
from distillserve.adapters.student_target import StudentTarget
from distillserve.backends.testbed_teacher import TestbedTeacher as OracleStudent
from distillserve.config import RouterConfig
from distillserve.router.embedding_scorer import EmbeddingScorer
from distillserve.router.published_model import PublishedRouterModel
from distillserve.router.refresh_loop import RouterRefresher
from distillserve.router.router import Router
from distillserve.router.sentence_embedder import SentenceEmbedder
from distillserve.testbed.tasks import BASE_TASKS, TASKS, sample
from tests.router.test_embedding_scorer import task_labelled
from tests.support.adapter_host import FakeAdapterHost
from tests.support.metrics import sample as metric
from tests.support.s3 import start_s3

BASE = "tiny-base"
POLL_S = 0.2
BOUND_S = 5.0  # the fleet's convergence target (issue 19)
PROMPTS = [p for p, _ in sample(list(TASKS), 40, seed=99)]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    e = SentenceEmbedder()
    e.load()
    return e


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with start_s3(tmp_path_factory.mktemp("moto")) as server:
        server.create_bucket("router")
        yield server.storage_options()


@pytest.fixture(params=["local", "s3"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    if request.param == "local":
        return str(tmp_path / "registry"), {}
    options = request.getfixturevalue("s3")
    return f"s3://router/{tmp_path.name}", options


def open_registry(url_and_options: tuple[str, dict]) -> AdapterRegistry:
    url, options = url_and_options
    return AdapterRegistry(url, BASE, storage_options=options)


class Gateway:
    """What one gateway holds of the router: a scorer and its registry follower."""

    def __init__(
        self, embedder: SentenceEmbedder, where: tuple[str, dict], tmp: Path, *, publishes: bool
    ) -> None:
        self.scorer = EmbeddingScorer(
            RouterConfig(), embedder=embedder, classifier_path=tmp / "clf.npz", load_saved=False
        )
        self.shared = PublishedRouterModel(
            StateWatcher(lambda: open_registry(where)), self.scorer, publishes=publishes
        )

    async def scores(self) -> np.ndarray:
        return await self.scorer.score_many(PROMPTS)


@pytest.fixture
async def two(
    embedder: SentenceEmbedder, registry_url: tuple[str, dict], tmp_path: Path
) -> AsyncIterator[tuple[Gateway, Gateway]]:
    a = Gateway(embedder, registry_url, tmp_path / "a", publishes=True)
    b = Gateway(embedder, registry_url, tmp_path / "b", publishes=False)
    yield a, b
    await a.scorer.aclose()
    await b.scorer.aclose()


async def follow_until_loaded(g: Gateway, sha: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < BOUND_S:
        await g.shared.follow()
        if g.shared.loaded is not None and g.shared.loaded.sha256 == sha:
            return time.monotonic() - started
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"classifier {sha[:12]} not loaded within {BOUND_S}s")


async def test_a_published_classifier_is_loaded_by_the_other_gateway_and_scores_alike(
    two: tuple[Gateway, Gateway],
    registry_url: tuple[str, dict],
    fresh_metrics: CollectorRegistry,
    tmp_path: Path,
) -> None:
    a, b = two
    await b.shared.follow()  # nothing published yet: b cold-starts
    assert b.scorer.classifier is None

    await a.scorer.retrain(task_labelled(160, seed=0, easy=BASE_TASKS), adapter=None, save=False)
    ref = await a.shared.publish(None)
    assert ref is not None and ref.adapter_version is None
    took = await follow_until_loaded(b, ref.sha256)
    print(f"\nfollower loaded the published classifier {took:.2f}s after the write (poll {POLL_S}s)")

    sa, sb = await a.scores(), await b.scores()
    np.testing.assert_array_equal(sa, sb)  # the same weights, bit for bit
    assert set((sa >= 0.5).tolist()) == {False, True}, (
        "a classifier that routes everything one way proves nothing"
    )
    assert metric(fresh_metrics, "distillserve_router_model_loads_total", outcome="loaded") == 1
    assert metric(fresh_metrics, "distillserve_router_model_publishes_total", outcome="published") == 1

    reg = open_registry(registry_url)
    assert reg.state().router_model == ref
    card = reg.router_model_card(ref)
    assert card["sha256"] == ref.sha256 and card["examples"] == 160

    # A gateway started later loads it at once, before any traffic.
    c = Gateway(b.scorer.embedder, registry_url, tmp_path / "c", publishes=False)
    assert await c.shared.follow() == ref
    np.testing.assert_array_equal(await c.scores(), sa)
    await c.scorer.aclose()


def register_version(reg: AdapterRegistry, tmp: Path) -> str:
    """A version for the state to name (the router test needs its name, not its weights)."""
    d = tmp / "adapter"
    d.mkdir(exist_ok=True)
    (d / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (d / "adapter_model.safetensors").write_bytes(b"weights")
    return reg.register(d, AdapterCard(base_model=BASE)).version


async def test_a_classifier_fitted_to_a_version_no_longer_live_is_not_published(
    two: tuple[Gateway, Gateway],
    registry_url: tuple[str, dict],
    fresh_metrics: CollectorRegistry,
    tmp_path: Path,
) -> None:
    a, _ = two
    reg = open_registry(registry_url)
    v1, v2 = register_version(reg, tmp_path), register_version(reg, tmp_path)
    reg.mark_live(v1, by="test")
    await a.scorer.retrain(task_labelled(60, seed=1, easy=BASE_TASKS), save=False)
    assert (await a.shared.publish(reg.adapter_name(v1))) is not None
    reg.mark_live(v2, by="test")  # promoted while the next fit for v1 ran
    assert await a.shared.publish(reg.adapter_name(v1)) is None
    assert metric(fresh_metrics, "distillserve_router_model_publishes_total", outcome="stale") == 1
    with pytest.raises(StaleRouterModel):
        reg.publish_router_model(b"x", {}, adapter_version=v1, by="test")
    state = reg.state()
    assert state.live == v2 and state.router_model is not None and state.router_model.adapter_version == v1


async def test_a_corrupt_published_classifier_is_refused_and_the_old_one_kept(
    two: tuple[Gateway, Gateway], registry_url: tuple[str, dict], fresh_metrics: CollectorRegistry
) -> None:
    a, b = two
    reg = open_registry(registry_url)
    await a.scorer.retrain(task_labelled(60, seed=2, easy=BASE_TASKS), save=False)
    first = await a.shared.publish(None)
    assert first is not None
    await follow_until_loaded(b, first.sha256)
    before = await b.scores()

    await a.scorer.retrain(task_labelled(60, seed=3, easy=["copy"]), save=False)
    second = await a.shared.publish(None)
    assert second is not None
    reg.fs.pipe_file(reg._p(second.folder, "classifier.npz"), b"not the published bytes")
    await b.shared.follow()
    assert b.shared.loaded == first
    np.testing.assert_array_equal(await b.scores(), before)
    assert metric(fresh_metrics, "distillserve_router_model_loads_total", outcome="refused") == 1


async def test_the_refresher_publishes_its_fit_and_a_following_refresher_only_loads(
    embedder: SentenceEmbedder, registry_url: tuple[str, dict], tmp_path: Path
) -> None:
    """The gateway's loop: the publisher fits from its own teacher answers and publishes; the
    follower never fits, and ``prime`` (at gateway start) loads what is published."""
    cfg = RouterConfig(scorer="embedding", retrain={"min_examples": 30})
    target, student = StudentTarget(), OracleStudent("student")
    loops = []
    for name, publishes in (("pub", True), ("fol", False)):
        g = Gateway(embedder, registry_url, tmp_path / name, publishes=publishes)
        router = Router(cfg, scorer=g.scorer)
        loops.append(
            RouterRefresher(router, student, target, every=0, min_examples=30, poll_s=POLL_S, shared=g.shared)
        )
    pub, fol = loops
    for prompt, answer in sample(BASE_TASKS, 30, seed=5):
        for loop in loops:  # both saw the same traffic: only one may fit on it
            loop.router.remember_teacher_answer([{"role": "user", "content": prompt}], answer)
    assert pub.due() and not fol.due()
    await pub.refresh_once()
    assert pub.fits == 1 and pub.shared is not None and pub.shared.loaded is not None
    await fol.prime()
    assert fol.shared is not None and fol.shared.loaded == pub.shared.loaded
    assert fol.fits == 0 and not fol.due()
    # The publisher restarts with the same traffic in memory: it loads its published classifier,
    # fitted to the student that serves, and has nothing to re-fit.
    again = Gateway(embedder, registry_url, tmp_path / "again", publishes=True)
    restarted = RouterRefresher(
        Router(cfg, scorer=again.scorer), student, target, every=0, min_examples=30, shared=again.shared
    )
    for prompt, answer in sample(BASE_TASKS, 30, seed=6):
        restarted.router.remember_teacher_answer([{"role": "user", "content": prompt}], answer)
    await restarted.prime()
    assert again.shared.loaded == pub.shared.loaded and not restarted.due()
    for loop in (*loops, restarted):
        await loop.router.aclose()


class _Baselines:
    def set_drift_baseline(self, adapter: str, agreement: float | None) -> None:
        pass


async def test_naming_a_new_classifier_makes_no_gateway_reload_its_adapters(
    tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    """A state write that only names a router classifier is no adapter change: the adapter sync
    takes its fingerprint and loads, probes and switches nothing (the engine here is the in-memory
    adapter host of ``tests/support``: what is counted is the sync's own work, not a model's)."""
    reg = open_registry((str(tmp_path / "registry"), {}))
    v1, v2 = register_version(reg, tmp_path), register_version(reg, tmp_path)
    reg.mark_live(v1, by="test")
    reg.mark_canary(v2, 0.1, by="test")
    engine = FakeAdapterHost()
    sync = RegistrySync(
        lambda: reg, HotSwapper(engine, StudentTarget()), _Baselines(), AdapterCache(tmp_path / "cache")
    )
    assert await sync.sync_once()
    applied = metric(fresh_metrics, "distillserve_registry_syncs_total", outcome="applied")
    calls = list(engine.calls)
    assert applied == 1 and calls == [("load", reg.adapter_name(v1)), ("load", reg.adapter_name(v2))]

    reg.publish_router_model(b"classifier", {}, adapter_version=v1, by="test")
    assert await sync.sync_once()
    assert metric(fresh_metrics, "distillserve_registry_syncs_total", outcome="applied") == applied
    assert engine.calls == calls
    assert metric(fresh_metrics, "distillserve_registry_convergence_seconds_count") == 0
    reg.mark_canary(None, 0.0, by="test")  # a real change still goes through
    assert await sync.sync_once()
    assert metric(fresh_metrics, "distillserve_registry_syncs_total", outcome="applied") == applied + 1
