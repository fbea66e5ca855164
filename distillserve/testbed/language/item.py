"""The natural-language testbed's types: a problem (wordings, values, solver), a task family of
problems, the teacher's worked solution and a sampled item with its exact answer and grader."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from distillserve.testbed.language.templates import PromptTemplate

Values = Mapping[str, str]


@dataclass(frozen=True)
class Solution:
    steps: tuple[str, ...]  # the worked reasoning, one step a line
    final: str  # the bare result: "42", "Thursday", or compact JSON
    answer: str  # what the teacher says after thinking: "The answer is \\boxed{42}." or a JSON fence


@dataclass(frozen=True)
class Problem:
    """One kind of question, in several wordings that share the same slots."""

    name: str
    wordings: tuple[PromptTemplate, ...]
    draw: Callable[[random.Random], dict[str, str]]
    solve: Callable[[Values], Solution]


@dataclass(frozen=True)
class Family:
    task: str  # the request's ``metadata.task`` tag
    grader: str  # "final_answer" or "json"
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class LanguageItem:
    task: str
    grader: str
    prompt: str
    answer: str  # the reference answer text (the teacher's content without its reasoning)
    final: str
    problem: str = ""  # which kind of question of the family (``Problem.name``)

    @property
    def metadata(self) -> dict[str, str]:
        return {"task": self.task}


def boxed(final: str) -> str:
    return f"The answer is \\boxed{{{final}}}."


def decimal_text(x: Fraction) -> str:
    """An exact fraction with a terminating decimal, written without trailing zeros."""
    whole = x.numerator // x.denominator if x >= 0 else -((-x.numerator) // x.denominator)
    if x == whole:
        return str(whole)
    text = f"{float(x):.6f}".rstrip("0").rstrip(".")
    if Fraction(text) != x:
        raise ValueError(f"{x} has no short decimal")
    return text
