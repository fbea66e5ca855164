"""Keep the learned scorer in step with the live student.

The gateway remembers the last teacher answers it served (``RecentTeacherAnswers``). When a
new adapter goes live, ``relabel`` asks the *new* student the same conversations, grades each
answer against the teacher's (agreement), and the scorer retrains on those fresh pairs: what
the old student got wrong but the new one gets right now scores easy, so the router sends
the student more.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distillserve.router.labelled_example import LabelledExample, agreement, prompt_of_messages
from distillserve.router.student_answers import ask_many
from distillserve.serving.backends.base import Backend


@dataclass(frozen=True)
class TeacherAnswer:
    messages: list[dict[str, Any]]
    answer: str


class RecentTeacherAnswers:
    """A bounded, thread-safe window of the latest teacher answers (conversation + answer)."""

    def __init__(self, size: int) -> None:
        self._items: deque[TeacherAnswer] = deque(maxlen=max(size, 0))
        self._lock = threading.Lock()
        self.total = 0  # answers ever added, so a refresher can tell how many are new

    def add(self, messages: list[dict[str, Any]], answer: str) -> None:
        if self._items.maxlen == 0:
            return
        with self._lock:
            self._items.append(TeacherAnswer(messages, answer))
            self.total += 1

    def snapshot(self) -> list[TeacherAnswer]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


async def relabel(
    student: Backend, answers: Sequence[TeacherAnswer], *, adapter: str | None = None, concurrency: int = 16
) -> list[LabelledExample]:
    """Fresh shadow pairs: the current student's answers to conversations the teacher answered."""
    replies = await ask_many(student, [a.messages for a in answers], model=adapter, concurrency=concurrency)
    return [
        LabelledExample(
            prompt=prompt_of_messages(a.messages),
            student_answer=r.text,
            teacher_answer=a.answer,
            student_quality=agreement(r.text, a.answer),
            student_logprobs=r.logprobs,
        )
        for a, r in zip(answers, replies, strict=True)
    ]
