"""How an adapter card keeps its evaluation: ``{set name: {"exact_match": x, "n": k}}`` per
model ("candidate", "live"). The gate reads it to decide; promotion reads the drift baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: This run's held-out teacher records: the skill a candidate was trained for.
NEW_SKILL_SET = "heldout"
#: Sets a candidate must not lose on: the fixed base-skill set and earlier runs' held-out records.
REGRESSION_SETS = ("regression", "past_heldout")


def exact_match_of(scores: Mapping[str, Mapping[str, Any]], name: str) -> float | None:
    """One set's exact match in a ``{set: {"exact_match": ..., "n": ...}}`` score map, if scored."""
    s = scores.get(name)
    return None if s is None else float(s["exact_match"])
