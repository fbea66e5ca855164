"""Shadow sampling: a share of student-served requests is also sent to the teacher in the
background, the pair is scored for agreement, and the result feeds the drift tracker and
the teacher log (records of kind "shadow", with the student's answer, for the learned
router and the distiller).

The client never waits for any of it: ``maybe_shadow`` only draws a number and schedules a
task; at most ``max_concurrency`` comparisons run at once (more samples are skipped and
counted), each is abandoned after ``timeout_s``, and every failure stays inside the task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from distillserve.config import Settings
from distillserve.monitoring import metrics
from distillserve.monitoring.agreement import AgreementScorer, configured_scorer, request_class
from distillserve.monitoring.cost import CostLedger
from distillserve.monitoring.drift import AgreementTracker
from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import APIError
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.serving.keys.call_context import current_tenant
from distillserve.teacher_log.answer import AnswerOrigin, TeacherAnswer
from distillserve.teacher_log.intake import log_answer
from distillserve.teacher_log.sink import TeacherLogSink

log = logging.getLogger(__name__)


class ShadowSampler:
    """The gateway's ``ShadowHook``."""

    def __init__(
        self,
        teacher: Backend,
        sink: TeacherLogSink,
        scorer: AgreementScorer,
        tracker: AgreementTracker,
        *,
        rate: float,
        max_concurrency: int = 4,
        timeout_s: float = 60.0,
        student_name: str = "student",
        log_pairs: bool = True,
        rng: random.Random | None = None,
        cost: CostLedger | None = None,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"shadow rate must be in [0, 1], got {rate}")
        self.teacher = teacher
        self.sink = sink
        self.scorer = scorer
        self.tracker = tracker
        self.rate = rate
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.student_name = student_name
        self.log_pairs = log_pairs
        self._rng = rng or random.Random()
        self.cost = cost
        self._tasks: set[asyncio.Task[None]] = set()
        # Also told every teacher answer a shadow got: the learned router re-fits on them, so it keeps
        # seeing prompts that the student now serves (they no longer reach the teacher otherwise).
        self.on_teacher_answer: Callable[[list[dict[str, Any]], str, str | None], None] | None = None

    def set_baseline(self, adapter: str | None, value: float) -> None:
        """For the promotion path: the agreement ``adapter`` reached in its evaluation."""
        self.tracker.set_baseline(adapter or metrics.BASE_VERSION, value)

    # -- the hook ---------------------------------------------------------------------------------
    def maybe_shadow(self, request: ChatCompletionRequest, student_text: str, adapter: str | None) -> None:
        if self.rate <= 0.0 or self._rng.random() >= self.rate:
            return
        if len(self._tasks) >= self.max_concurrency:
            metrics.SHADOW_PAIRS.labels(outcome="skipped_busy").inc()
            return
        task = asyncio.get_running_loop().create_task(self._compare(request, student_text, adapter))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- one comparison ---------------------------------------------------------------------------
    def _teacher_request(self, request: ChatCompletionRequest) -> ChatCompletionRequest:
        # Top-k logprobs for the log are the teacher backend's own business
        # (``backends.teacher_logprobs``): the same for shadows as for requests it serves.
        update: dict[str, Any] = {"model": self.teacher.name, "stream": False, "stream_options": None}
        return request.model_copy(update=update)

    async def _compare(self, request: ChatCompletionRequest, student_text: str, adapter: str | None) -> None:
        started = time.perf_counter()
        metrics.SHADOW_IN_FLIGHT.inc()
        try:
            outcome = await self._compare_once(request, student_text, adapter)
        except Exception:  # a shadow must never surface anywhere but in its own counters
            log.exception("shadow comparison failed")
            outcome = "scoring_error"
        finally:
            metrics.SHADOW_IN_FLIGHT.dec()
            metrics.SHADOW_DURATION.observe(time.perf_counter() - started)
        metrics.SHADOW_PAIRS.labels(outcome=outcome).inc()

    async def _compare_once(
        self, request: ChatCompletionRequest, student_text: str, adapter: str | None
    ) -> str:
        shadow_req = self._teacher_request(request)
        try:
            body = await asyncio.wait_for(self.teacher.chat(shadow_req), self.timeout_s)
        except TimeoutError:
            return "teacher_timeout"
        except APIError as exc:
            log.info("shadow teacher call failed: %s", exc.message)
            return "teacher_error"
        except Exception:  # a backend bug must not look like a scoring failure
            log.exception("shadow teacher call failed")
            return "teacher_error"
        if self.cost is not None:  # runs in a copy of the request's context: its tenant pays
            self.cost.spend("teacher", "shadow", body.get("usage"), current_tenant())
        answer = TeacherAnswer.from_body(shadow_req, self._origin(adapter, student_text), body)
        text = answer.text
        try:  # the grader for this request's class (grading rules), the student as the candidate
            grade = await self.scorer.grade(request, student_text, text)
        except Exception:
            log.exception("agreement scorer %s failed", self.scorer.name)
            return "scoring_error"
        agreed = grade.verdict
        if self.on_teacher_answer is not None:
            messages = [m.model_dump(exclude_none=True) for m in shadow_req.messages]
            self.on_teacher_answer(messages, text, request_class(request).task)
        metrics.SHADOW_SIMILARITY.labels(scorer=grade.grader).observe(grade.score)
        self.tracker.record(adapter or metrics.BASE_VERSION, agreed)
        if self.log_pairs:
            self._log_pair(answer)
        return "agree" if agreed else "disagree"

    def _origin(self, adapter: str | None, student_text: str) -> AnswerOrigin:
        return AnswerOrigin(
            teacher_model=self.teacher.name,
            teacher_backend=self.teacher.kind,
            route="shadow",
            kind="shadow",
            student_model=adapter or self.student_name,
            student_text=student_text,
        )

    def _log_pair(self, answer: TeacherAnswer) -> None:
        # The same record builder as for teacher-served requests, so both kinds share one shape.
        try:
            log_answer(self.sink, dataclasses.replace(answer, tenant=current_tenant()))
        except Exception:  # the sink counts its own drops; a record we cannot build is logged
            log.exception("could not log a shadow pair")

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.rate > 0.0:
            await asyncio.to_thread(self.scorer.warm_up)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Let running comparisons finish (their records reach the sink), then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def build_shadow(settings: Settings, teacher: Backend, sink: TeacherLogSink) -> ShadowSampler | None:
    """The configured shadow sampler, or None when ``monitoring.shadow_rate`` is 0."""
    m = settings.monitoring
    if m.shadow_rate <= 0.0:
        return None
    return ShadowSampler(
        teacher,
        sink,
        configured_scorer(settings),
        AgreementTracker(m.agreement_window),
        rate=m.shadow_rate,
        max_concurrency=m.shadow_max_concurrency,
        timeout_s=m.shadow_timeout_s,
        student_name=settings.student.name,
        log_pairs=settings.teacher_log.enabled,
        cost=CostLedger.from_settings(settings),
    )
