"""The gateway keeps its learned router fitted to the live student: cold start to the teacher,
first fit from the gateway's own traffic, re-fit every N answers and when the live adapter changes.

The student here is the testbed oracle served under the student's name: a student that already
knows every task, so after its first fit the router must stop sending work to the teacher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from distillserve.adapters.student_target import StudentTarget
from distillserve.backends.testbed_teacher import TestbedTeacher as OracleStudent
from distillserve.config import RouterConfig
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.embedding_scorer import EmbeddingScorer
from distillserve.router.refresh_loop import RouterRefresher
from distillserve.router.router import Router
from distillserve.testbed.tasks import BASE_TASKS, sample


@pytest.fixture
async def router(tmp_path: Path) -> AsyncIterator[Router]:
    cfg = RouterConfig(scorer="embedding", cold_start="teacher", retrain={"min_examples": 30, "every": 20})
    scorer = EmbeddingScorer(cfg, classifier_path=tmp_path / "clf.npz", load_saved=False)
    await scorer.wait_ready()
    r = Router(cfg, scorer=scorer)
    yield r
    await r.aclose()


def remember(router: Router, n: int, seed: int) -> None:
    for prompt, answer in sample(BASE_TASKS, n, seed):
        router.remember_teacher_answer([{"role": "user", "content": prompt}], answer)


async def test_cold_start_goes_to_teacher_until_the_first_fit(router: Router) -> None:
    student, target = OracleStudent("student"), StudentTarget()
    refresher = RouterRefresher(router, student, target, every=20, min_examples=30)

    d = await router.decide("copy: hello")
    assert (d.route, d.scorer) == ("teacher", "cold_start")

    remember(router, 29, seed=1)
    assert not refresher.due()
    remember(router, 1, seed=2)
    assert refresher.due()
    await refresher.refresh_once()
    assert refresher.fits == 1 and not refresher.due()

    d = await router.decide("copy: hello")
    assert (d.route, d.scorer) == ("student", "embedding")


async def test_refits_after_new_answers_and_when_the_live_adapter_changes(router: Router) -> None:
    student, target = OracleStudent("student"), StudentTarget()
    refresher = RouterRefresher(router, student, target, every=20, min_examples=30)
    remember(router, 30, seed=3)
    await refresher.refresh_once()

    remember(router, 19, seed=4)
    assert not refresher.due()
    remember(router, 1, seed=5)
    assert refresher.due()
    await refresher.refresh_once()

    target.set_live("student@v1")
    assert refresher.due(), "a new live adapter must trigger a re-fit"
    await refresher.refresh_once()
    assert refresher.fits == 3 and not refresher.due()


class CountingStudent(OracleStudent):
    """The oracle student, counting the conversations it is asked."""

    def __init__(self) -> None:
        super().__init__("student")
        self.asked = 0

    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        self.asked += 1
        return await super().chat(request, model=model)


async def test_a_refit_asks_the_same_adapter_only_the_new_conversations(router: Router) -> None:
    student, target = CountingStudent(), StudentTarget()
    refresher = RouterRefresher(router, student, target, every=20, min_examples=30)
    remember(router, 30, seed=6)
    await refresher.refresh_once()
    assert student.asked == 30
    remember(router, 20, seed=7)
    await refresher.refresh_once()
    assert student.asked == 50, "the 30 conversations graded for this adapter are not asked again"
    target.set_live("student@v1")
    await refresher.refresh_once()
    assert student.asked == 100, "a new adapter answers every conversation afresh"
    d = await router.decide("copy: hello")
    assert d.route == "student"
