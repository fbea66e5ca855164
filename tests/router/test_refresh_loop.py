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
from prometheus_client import CollectorRegistry

from distillserve.adapters.student_target import StudentTarget
from distillserve.backends.testbed_teacher import TestbedTeacher as OracleStudent
from distillserve.config import RouterConfig
from distillserve.protocol.errors import BackendTimeout
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.embedding_scorer import EmbeddingScorer
from distillserve.router.refresh_loop import RouterRefresher
from distillserve.router.router import Router
from distillserve.testbed.tasks import BASE_TASKS, sample
from tests.support.metrics import sample as metric


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


class SlowOnSomeStudent(CountingStudent):
    """The oracle student timing out on the conversations in ``slow``: a fake, to inject on demand
    the timeout a loaded vLLM gave one relabel in the SmolLM2 demo (which then failed the whole
    re-fit, twice, and the router never fitted to v1)."""

    def __init__(self, slow: set[str]) -> None:
        super().__init__()
        self.slow = slow

    async def chat(self, request: ChatCompletionRequest, *, model: str | None = None) -> dict[str, Any]:
        self.asked += 1
        if request.messages[-1].content in self.slow:
            raise BackendTimeout("student: upstream timed out")
        return await OracleStudent.chat(self, request, model=model)


async def test_a_relabel_timeout_costs_that_conversation_not_the_refit(
    router: Router, fresh_metrics: CollectorRegistry
) -> None:
    pairs = sample(BASE_TASKS, 30, seed=8)
    slow = {prompt for prompt, _ in pairs[:3]}
    student, target = SlowOnSomeStudent(slow), StudentTarget()
    refresher = RouterRefresher(router, student, target, every=0, min_examples=30)
    for prompt, answer in pairs:
        router.remember_teacher_answer([{"role": "user", "content": prompt}], answer)
    await refresher.refresh_once()
    assert refresher.fits == 1 and student.asked == 30
    assert metric(fresh_metrics, "distillserve_router_relabel_failures_total", reason="timeout") == 3
    assert metric(fresh_metrics, "distillserve_router_refits_total", outcome="fitted") == 1
    assert (await router.decide("copy: hello")).route == "student"  # fitted on the 27 answered

    student.slow = set()  # the next fit for this adapter asks only the three that timed out
    await refresher.refresh_once()
    assert student.asked == 33 and refresher.fits == 2


async def test_a_refit_with_every_answer_failed_keeps_the_old_classifier(
    router: Router, fresh_metrics: CollectorRegistry
) -> None:
    pairs = sample(BASE_TASKS, 30, seed=9)
    student = SlowOnSomeStudent({prompt for prompt, _ in pairs})
    refresher = RouterRefresher(router, student, StudentTarget(), every=0, min_examples=30)
    for prompt, answer in pairs:
        router.remember_teacher_answer([{"role": "user", "content": prompt}], answer)
    with pytest.raises(BackendTimeout):
        await refresher.refresh_once()
    assert refresher.fits == 0
    assert metric(fresh_metrics, "distillserve_router_relabel_failures_total", reason="timeout") == 30
    assert metric(fresh_metrics, "distillserve_router_refits_total", outcome="failed") == 1
    assert (await router.decide("copy: hello")).scorer == "cold_start"
