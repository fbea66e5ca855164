"""The recorded labelled answer set (tests/fixtures/grading/labelled_answers.jsonl) and per-grader
accuracy on it. Groups: ``math`` (R1 traces with a boxed result, GSM8K ``####``, chatty
SmolLM2-style solutions), ``choice`` (multiple choice), ``json`` (extraction), ``chat``
(short factual answers). Each label says whether the candidate is as good as the reference,
decided by hand."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from distillserve.grading import Grade
from distillserve.grading.calibration import LabelledPair, load_pairs

LABELLED = Path(__file__).resolve().parents[1] / "fixtures" / "grading" / "labelled_answers.jsonl"


def labelled() -> list[LabelledPair]:
    return load_pairs(LABELLED)


def accuracy_by_group(pairs: Sequence[LabelledPair], grades: Sequence[Grade]) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for p, g in zip(pairs, grades, strict=True):
        hits[p.group].append(g.verdict == p.label)
        hits["all"].append(g.verdict == p.label)
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(hits.items())}
