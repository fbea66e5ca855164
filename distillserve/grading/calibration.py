"""Calibrate a score threshold on labelled pairs instead of guessing it.

A labelled pair is ``{"prompt", "reference", "candidate", "label"}`` (label: does the candidate
answer as well as the reference?), one JSON object a line. ``calibrate_threshold`` picks the
threshold that classifies the pairs best: the midpoint of the widest gap between scores that
reaches the highest accuracy, so it sits as far from both classes as the data allow.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import orjson

#: The pairs shipped with the package: short chat and factual answers, paraphrased or wrong.
DEFAULT_CALIBRATION_SET = "embedding_pairs.jsonl"


@dataclass(frozen=True)
class LabelledPair:
    prompt: str
    reference: str
    candidate: str
    label: bool
    group: str = ""


@dataclass(frozen=True)
class Calibration:
    threshold: float
    accuracy: float  # on the pairs it was fitted on
    n: int


def load_pairs(path: str | Path | None = None) -> list[LabelledPair]:
    """Pairs from a JSON-lines file (default: the set shipped in ``distillserve/grading/data``)."""
    raw = (
        files("distillserve.grading").joinpath("data", DEFAULT_CALIBRATION_SET).read_bytes()
        if path is None
        else Path(path).read_bytes()
    )
    out = []
    for i, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            out.append(
                LabelledPair(
                    obj["prompt"],
                    obj["reference"],
                    obj["candidate"],
                    bool(obj["label"]),
                    obj.get("group", ""),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path or DEFAULT_CALIBRATION_SET}:{i}: not a labelled pair: {exc}") from None
    return out


def calibrate_threshold(scores: Sequence[float], labels: Sequence[bool]) -> Calibration:
    """The threshold (verdict = score >= threshold) with the best accuracy on these pairs."""
    if len(scores) != len(labels) or not scores:
        raise ValueError("calibration needs as many labels as scores, and at least one pair")
    if all(labels) or not any(labels):
        raise ValueError("calibration needs both agreeing and disagreeing pairs")
    values = sorted(set(scores))
    # Candidate thresholds: below every score, between each neighbouring pair, above every score.
    cuts = [values[0] - 1e-6] + [(a + b) / 2 for a, b in itertools.pairwise(values)] + [values[-1] + 1e-6]
    gaps = [0.0] + [b - a for a, b in itertools.pairwise(values)] + [0.0]

    def accuracy(t: float) -> float:
        return sum((s >= t) == y for s, y in zip(scores, labels, strict=True)) / len(scores)

    best = max(range(len(cuts)), key=lambda i: (accuracy(cuts[i]), gaps[i]))
    return Calibration(round(cuts[best], 4), accuracy(cuts[best]), len(scores))
