"""How close an export stays to its source: greedy answers on the regression set, compared.

Two figures: ``agreement`` (the export's answer is the same text as the source's, item by item:
the strictest check, 1.0 for an exact conversion) and the score of each against the reference
answers, graded as the distiller gates versions (``distiller.evaluation.grade_set``), so the
drop is in the same units as the version's own regression score.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from distillserve.distiller.evaluation import grade_set
from distillserve.distiller.examples import TrainingExample
from distillserve.export.card import AccuracyReport
from distillserve.export.runtimes import GreedyRunner
from distillserve.grading import GraderSelection
from distillserve.grading.text import ExactGrader


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    return sum(x.strip() == y.strip() for x, y in zip(a, b, strict=True)) / len(a)


def measure(
    runner: GreedyRunner,
    items: Sequence[TrainingExample],
    source_answers: Sequence[str],
    described: dict[str, Any],
    graders: GraderSelection | None = None,
) -> tuple[AccuracyReport, list[str]]:
    """The export's report against the source's answers, and the export's own answers."""
    graders = graders or GraderSelection.only(ExactGrader())
    started = time.perf_counter()
    answers = runner.answers(items)
    seconds = time.perf_counter() - started
    tokens = sum(len(runner.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    source = grade_set(graders, items, source_answers)
    export = grade_set(graders, items, answers)
    report = AccuracyReport(
        n=len(items),
        agreement=round(agreement(source_answers, answers), 4),
        source_score=round(source.score, 4),
        export_score=round(export.score, 4),
        grader=export.grader,
        regression_set=described,
        max_new_tokens=runner.max_new_tokens,
        runtime=runner.runtime,
        generated_tokens=tokens,
        tokens_per_s=round(tokens / seconds, 2) if seconds > 0 else 0.0,
        threads=runner.threads,
    )
    return report, answers
