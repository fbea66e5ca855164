"""The Grader seam: did a candidate answer as well as the reference (the teacher's answer)?

``grade(prompt, reference, candidate)`` returns a ``Grade``: a score in [0, 1] and a verdict.
It is the one place that decides it, for the router's labels, the distiller's promotion gate and
shadow agreement (drift) alike. Graders that only compare text implement the synchronous
``grade``; those that call a model over the network (the judge) implement ``agrade``. Every caller
that may meet either awaits ``agrade`` (or uses ``grading.batch``), so the two never diverge.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Grade:
    score: float  # in [0, 1]; 1 = the candidate is as good as the reference
    verdict: bool  # the candidate agrees with (is as good as) the reference
    grader: str  # which grader decided, for metrics and cards
    detail: str = ""  # why, for people (e.g. the two extracted final answers)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"a grade's score must be in [0, 1], got {self.score}")


class Grader(ABC):
    """Compares a candidate with a reference answer to the same prompt."""

    name: str
    #: The verdict is ``score >= threshold``.
    threshold: float = 1.0
    #: True when ``grade`` is CPU-heavy (a model forward): async callers run it off the event loop.
    blocking: bool = False

    @abstractmethod
    def grade(self, prompt: str, reference: str, candidate: str) -> Grade:
        """Grade synchronously (graders that need the network may refuse inside an event loop)."""

    async def agrade(self, prompt: str, reference: str, candidate: str) -> Grade:
        if self.blocking:
            return await asyncio.to_thread(self.grade, prompt, reference, candidate)
        return self.grade(prompt, reference, candidate)

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Load whatever the grader needs before the first pair arrives."""

    def verdict(self, score: float, detail: str = "") -> Grade:
        return Grade(score, score >= self.threshold, self.name, detail)
