"""The ``json`` grader: the candidate's JSON equals the reference's once parsed.

The JSON value is found the way extraction answers are written: inside a ```` ```json ```` fence,
or the first object/array that parses inside prose ("Here is the JSON: {...} Let me know…").
Key order, spacing and ``1`` vs ``1.0`` do not matter. With ``keys`` declared, only those
top-level keys are compared (the candidate must have each); extra keys are then allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from distillserve.grading.grade import Grade, Grader
from distillserve.grading.text import answer_text

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
_MISSING = object()


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (fenced first), or ``_MISSING``."""
    answer = answer_text(text)
    for block in [*_FENCE.findall(answer), answer]:
        for i, ch in enumerate(block):
            if ch not in "{[":
                continue
            try:
                value, _ = _DECODER.raw_decode(block, i)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict | list):
                return value
    return _MISSING


def json_found(value: Any) -> bool:
    return value is not _MISSING


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1`` (Python's ``==`` says ``True == 1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class JsonGrader(Grader):
    name = "json"

    def __init__(self, keys: Sequence[str] | None = None) -> None:
        self.keys = list(keys) if keys else None

    def grade(self, prompt: str, reference: str, candidate: str) -> Grade:
        ref, cand = extract_json(reference), extract_json(candidate)
        if not json_found(ref):
            return self.verdict(0.0, "no JSON in the reference")
        if not json_found(cand):
            return self.verdict(0.0, "no JSON in the candidate")
        if self.keys is None:
            return self.verdict(1.0 if same_json(ref, cand) else 0.0, "parsed equality")
        if not isinstance(ref, dict) or not isinstance(cand, dict):
            return self.verdict(0.0, "declared keys need JSON objects")
        wrong = [k for k in self.keys if k not in cand or k not in ref or not same_json(cand[k], ref[k])]
        score = 1.0 - len(wrong) / len(self.keys)
        # Partial credit is the score; the verdict needs every declared key right.
        return Grade(
            score, not wrong, self.name, f"keys differing: {wrong}" if wrong else "declared keys equal"
        )
