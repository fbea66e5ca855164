"""The learned scorer's mechanics on the real all-MiniLM-L6-v2 model: it learns from labelled
pairs, micro-batches concurrent calls, retrains and hot-swaps without stopping requests,
persists its classifier, and never makes routing fail (not ready, bad input).

Labels here come from the testbed tasks' known difficulty, so no student is needed; how it
does against the real student's answers is in ``test_router_learning.py``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from distillserve.config import RouterConfig
from distillserve.router.difficulty_classifier import DifficultyClassifier
from distillserve.router.embedding_scorer import EmbeddingScorer
from distillserve.router.evaluation import build_report
from distillserve.router.labelled_example import LabelledExample
from distillserve.router.router import Router
from distillserve.router.sentence_embedder import SentenceEmbedder
from distillserve.testbed.tasks import BASE_TASKS, TASKS, sample
from tests.router.test_policies import BAD_PROMPTS


def task_labelled(n: int, seed: int, easy: list[str]) -> list[LabelledExample]:
    """Prompts of every task; the student 'knows' exactly the tasks in ``easy``."""
    out = []
    for prompt, answer in sample(list(TASKS), n, seed):
        ok = prompt.split(":")[0] in easy
        out.append(LabelledExample(prompt, answer if ok else "?", answer, 1.0 if ok else 0.0))
    return out


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    e = SentenceEmbedder()
    e.load()
    return e


@pytest.fixture
async def scorer(embedder: SentenceEmbedder, tmp_path: Path) -> AsyncIterator[EmbeddingScorer]:
    s = EmbeddingScorer(RouterConfig(), embedder=embedder, classifier_path=tmp_path / "clf.npz")
    yield s
    await s.aclose()


def fallbacks(reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "distillserve_router_scorer_fallbacks_total", {"scorer": "embedding", "reason": reason}
        )
        or 0.0
    )


async def test_learns_which_tasks_the_student_knows(scorer: EmbeddingScorer, tmp_path: Path) -> None:
    report = await scorer.retrain(task_labelled(280, seed=0, easy=BASE_TASKS), adapter="v1")
    assert report.examples == 280 and report.path == str(tmp_path / "clf.npz")
    test = task_labelled(140, seed=1, easy=BASE_TASKS)
    scores = (await scorer.score_many([e.prompt for e in test])).tolist()
    result = build_report(test, {"embedding": scores})
    assert result.result("embedding").apgr > result.result("random").apgr + 0.2
    # Scores are probabilities: easy tasks low, hard tasks high.
    easy = [s for s, e in zip(scores, test, strict=True) if e.student_as_good]
    hard = [s for s, e in zip(scores, test, strict=True) if not e.student_as_good]
    assert max(easy) < 0.5 < min(hard)
    # The saved classifier scores the same after a restart.
    again = EmbeddingScorer(RouterConfig(), embedder=scorer.embedder, classifier_path=tmp_path / "clf.npz")
    assert again.classifier is not None and again.classifier.card["adapter"] == "v1"
    np.testing.assert_allclose(await again.score_many([test[0].prompt]), [scores[0]], atol=1e-5)
    await again.aclose()


async def test_concurrent_calls_are_micro_batched(scorer: EmbeddingScorer) -> None:
    await scorer.retrain(task_labelled(70, seed=0, easy=BASE_TASKS), save=False)
    batcher = scorer._batcher
    b0, i0 = batcher.batches, batcher.items
    prompts = [p for p, _ in sample(list(TASKS), 64, seed=5)]
    scores = await asyncio.gather(*(scorer.score(p) for p in prompts))
    assert batcher.items - i0 == 64
    assert batcher.batches - b0 <= 16, "64 concurrent calls should share batches"
    # Batching does not change the answer.
    alone = await scorer.score(prompts[3])
    assert math.isclose(alone.value, scores[3].value, abs_tol=1e-5)


async def test_retrain_hot_swaps_while_requests_keep_being_scored(scorer: EmbeddingScorer) -> None:
    await scorer.retrain(task_labelled(140, seed=0, easy=BASE_TASKS), save=False)
    old = scorer.classifier
    probe = "reverse: abcdef"
    before = (await scorer.score(probe)).value
    # The student learned "reverse": retrain while requests keep arriving.
    stop = asyncio.Event()
    served: list[float] = []

    async def traffic() -> None:
        while not stop.is_set():
            served.append((await scorer.score(probe)).value)
            # A cached embedding answers without suspending: yield as a request's I/O would.
            await asyncio.sleep(0)

    task = asyncio.create_task(traffic())
    await scorer.retrain(task_labelled(280, seed=2, easy=[*BASE_TASKS, "reverse"]), adapter="v2")
    stop.set()
    await task
    assert scorer.classifier is not old and len(served) > 0
    after = (await scorer.score(probe)).value
    assert before > 0.5 > after


async def test_not_ready_falls_back_to_heuristic_and_is_counted(tmp_path: Path) -> None:
    cold = EmbeddingScorer(RouterConfig(), classifier_path=tmp_path / "none.npz")
    router = Router(RouterConfig(scorer="embedding"), scorer=cold)
    before = fallbacks("not_ready")
    d = await router.decide("copy: abc")
    assert d.scorer == "heuristic" and d.route == "student"
    assert fallbacks("not_ready") == before + 1
    await router.aclose()


async def test_bad_input_gets_a_score_and_a_route(scorer: EmbeddingScorer) -> None:
    await scorer.retrain(task_labelled(70, seed=0, easy=BASE_TASKS), save=False)
    router = Router(RouterConfig(scorer="embedding", scorer_timeout_s=5.0), scorer=scorer)
    for prompt in BAD_PROMPTS:
        d = await router.decide(prompt)
        assert d.scorer == "embedding", prompt[:20]
        assert d.route in ("student", "teacher") and 0.0 <= d.score <= 1.0


async def test_corrupt_classifier_file_is_ignored(tmp_path: Path, embedder: SentenceEmbedder) -> None:
    path = tmp_path / "clf.npz"
    path.write_bytes(b"not an npz")
    s = EmbeddingScorer(RouterConfig(), embedder=embedder, classifier_path=path)
    assert s.classifier is None
    await s.retrain(task_labelled(70, seed=0, easy=BASE_TASKS))
    assert DifficultyClassifier.load(path).card["examples"] == 70
    await s.aclose()
