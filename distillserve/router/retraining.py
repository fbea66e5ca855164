"""Keep the learned scorer in step with the live student.

The gateway remembers the last teacher answers it served (``RecentTeacherAnswers``). When a
new adapter goes live, ``relabel`` asks the *new* student the same conversations, grades each
answer against the teacher's with the configured grader for the conversation's class (the
``grading`` section: the same verdicts as the promotion gate and drift), and the scorer retrains on those fresh pairs: what
the old student got wrong but the new one gets right now scores easy, so the router sends
the student more.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from distillserve.grading import GraderSelection, Pair, RequestClass, grade_all
from distillserve.grading.text import ExactGrader
from distillserve.monitoring import metrics
from distillserve.protocol.backend import Backend
from distillserve.protocol.errors import APIError, BackendTimeout
from distillserve.router.labelled_example import LabelledExample, label_quality, prompt_of_messages
from distillserve.router.student_answers import StudentAnswer, UsageListener, ask_many

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherAnswer:
    messages: list[dict[str, Any]]
    answer: str
    task: str | None = None  # the request's ``metadata.task``, for the grading rules


class RecentTeacherAnswers:
    """A bounded, thread-safe window of the latest teacher answers (conversation + answer)."""

    def __init__(self, size: int) -> None:
        self._items: deque[TeacherAnswer] = deque(maxlen=max(size, 0))
        self._lock = threading.Lock()
        self.total = 0  # answers ever added, so a refresher can tell how many are new

    def add(self, messages: list[dict[str, Any]], answer: str, task: str | None = None) -> None:
        if self._items.maxlen == 0:
            return
        with self._lock:
            self._items.append(TeacherAnswer(messages, answer, task))
            self.total += 1

    def snapshot(self) -> list[TeacherAnswer]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


class GradedAnswers:
    """One adapter's graded answers to the conversations of the last re-fit.

    A periodic re-fit for the same live adapter then asks the student only the conversations it
    has not answered yet (greedy answers of one adapter do not change), instead of the whole
    window every time: a re-fit no longer floods the student that serves client requests. It
    keeps only the last snapshot's conversations, so it is never larger than the window.
    """

    def __init__(self) -> None:
        self._adapter: str | None = None
        self._by_key: dict[bytes, LabelledExample] = {}

    @staticmethod
    def key(answer: TeacherAnswer) -> bytes:
        return orjson.dumps([answer.messages, answer.answer, answer.task], option=orjson.OPT_SORT_KEYS)

    def known(self, adapter: str | None) -> dict[bytes, LabelledExample]:
        return self._by_key if adapter == self._adapter else {}

    def replace(self, adapter: str | None, graded: dict[bytes, LabelledExample]) -> None:
        self._adapter, self._by_key = adapter, graded


async def relabel(
    student: Backend,
    answers: Sequence[TeacherAnswer],
    *,
    adapter: str | None = None,
    concurrency: int = 16,
    graded: GradedAnswers | None = None,
    graders: GraderSelection | None = None,
    on_usage: UsageListener | None = None,
) -> list[LabelledExample]:
    """Fresh shadow pairs: the current student's answers to conversations the teacher answered
    (asked only for those ``graded`` does not already hold for ``adapter``), graded by ``graders``
    (default: exact answer text, the testbed's oracle).

    A conversation the student failed to answer (a timeout under load) is left out of this fit,
    counted in ``distillserve_router_relabel_failures_total``, and asked again at the next one;
    the others still count. Only when every asked conversation failed does the fit fail."""
    graders = graders or GraderSelection.only(ExactGrader())
    known = graded.known(adapter) if graded is not None else {}
    keys = [GradedAnswers.key(a) for a in answers]
    missing = [i for i, k in enumerate(keys) if k not in known]
    settled = await ask_many(
        student,
        [answers[i].messages for i in missing],
        model=adapter,
        concurrency=concurrency,
        on_usage=on_usage,
    )
    replies = {i: r for i, r in zip(missing, settled, strict=True) if isinstance(r, StudentAnswer)}
    errors = _count_failures(settled, answered=len(replies))
    prompts = {i: prompt_of_messages(answers[i].messages) for i in replies}
    pairs = [Pair(prompts[i], answers[i].answer, r.text) for i, r in replies.items()]
    chosen = [graders.for_request(RequestClass(prompts[i], answers[i].task)) for i in replies]
    grades = await grade_all(chosen, pairs)
    fresh = {
        keys[i]: LabelledExample(
            prompt=prompts[i],
            student_answer=r.text,
            teacher_answer=answers[i].answer,
            student_quality=label_quality(g),
            student_logprobs=r.logprobs,
        )
        for (i, r), g in zip(replies.items(), grades, strict=True)
    }
    labelled = {k: v for k in keys if (v := known.get(k) or fresh.get(k)) is not None}
    if graded is not None:
        graded.replace(adapter, labelled)
    log.info(
        "re-asked the student %d of %d recent conversations (%s); %d failed, asked again at the next fit",
        len(missing),
        len(keys),
        adapter or "base",
        len(errors),
    )
    return [
        labelled[k] for k in keys if k in labelled
    ]  # a conversation twice in the window counts twice, as before


def _count_failures(settled: Sequence[StudentAnswer | APIError], *, answered: int) -> list[APIError]:
    """The failed asks, each counted by reason; raises the first when none was answered."""
    errors = [r for r in settled if isinstance(r, APIError)]
    for exc in errors:
        metrics.ROUTER_RELABEL_FAILURES.labels(reason=_failure_reason(exc)).inc()
    if errors and not answered:
        raise errors[0]
    return errors


def _failure_reason(exc: APIError) -> str:
    return "timeout" if isinstance(exc, BackendTimeout) else "error"
