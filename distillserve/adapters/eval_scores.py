"""How an adapter card keeps its evaluation: ``{set name: {"score": x, "grader": g, "n": k}}`` per
model ("candidate", "live"); ``score`` is the share of items the configured grader passed. The
gate reads it to decide; promotion reads the drift baseline. Cards written before graders kept
``exact_match`` instead of ``score``: it is read the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: This run's held-out teacher records: the skill a candidate was trained for.
NEW_SKILL_SET = "heldout"
#: Sets a candidate must not lose on: the fixed base-skill set and earlier runs' held-out records.
REGRESSION_SETS = ("regression", "past_heldout")


def score_of(scores: Mapping[str, Mapping[str, Any]], name: str) -> float | None:
    """One set's score in a ``{set: {"score": ..., "n": ...}}`` score map, if scored."""
    s = scores.get(name)
    if s is None:
        return None
    value = s.get("score", s.get("exact_match"))
    return None if value is None else float(value)
