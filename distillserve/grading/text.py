"""Graders that compare answer text: ``exact`` and ``normalized``.

Both compare only the answer: a reasoning trace (``<think>…</think>``) is dropped first. ``exact``
also ignores surrounding whitespace and runs of whitespace (what the router and the gate have always
compared: on the testbed it is the right oracle); ``normalized`` also ignores case, Unicode form and
trailing punctuation.
"""

from __future__ import annotations

import re
import unicodedata

from distillserve.grading.grade import Grade, Grader
from distillserve.protocol.reasoning import split_think

_SPACE = re.compile(r"\s+")
_TRAILING_PUNCT = re.compile(r"[\s.!?。]+$")


def answer_text(text: str) -> str:
    """The answer part of a text that may open with a reasoning trace, whitespace collapsed."""
    return _SPACE.sub(" ", split_think(text)[1]).strip()


def normalize(text: str) -> str:
    """Case, Unicode form, runs of whitespace and trailing punctuation do not change an answer."""
    t = unicodedata.normalize("NFKC", text).casefold().strip()
    return _TRAILING_PUNCT.sub("", _SPACE.sub(" ", t))


class ExactGrader(Grader):
    name = "exact"

    def grade(self, prompt: str, reference: str, candidate: str) -> Grade:
        return self.verdict(1.0 if answer_text(candidate) == answer_text(reference) else 0.0)


class NormalizedGrader(Grader):
    name = "normalized"

    def grade(self, prompt: str, reference: str, candidate: str) -> Grade:
        same = normalize(answer_text(candidate)) == normalize(answer_text(reference))
        return self.verdict(1.0 if same else 0.0)
