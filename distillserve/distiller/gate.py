"""The promotion gate: may a candidate replace the live version without a person deciding?

Scores are the share of items the configured grader (``grading`` section) found as good as the
reference, so a correct answer worded differently from the teacher's counts (see
``distiller.evaluation``). Yes only when it beats the live version on this run's held-out teacher records by at least
``promote_margin`` and loses no more than ``max_regression`` on any regression set (the fixed
base-skill set and earlier runs' held-out records). Anything else waits for a person; the
reasons are kept on the card. A poisoned batch (garbage teacher answers) fails here: garbage
cannot be learned well enough to gain on held-out garbage, and learning it costs old skills.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from distillserve.adapters.eval_scores import NEW_SKILL_SET, REGRESSION_SETS, score_of


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    gain: float | None = None
    regressions: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reasons": self.reasons,
            "gain": self.gain,
            "regressions": self.regressions,
        }


def decide(
    evaluation: Mapping[str, Mapping[str, Mapping[str, Any]]], *, promote_margin: float, max_regression: float
) -> GateDecision:
    cand, live = evaluation["candidate"], evaluation["live"]
    reasons: list[str] = []
    c_new, l_new = score_of(cand, NEW_SKILL_SET), score_of(live, NEW_SKILL_SET)
    gain = None
    if c_new is None or l_new is None:
        reasons.append("no held-out records to judge the candidate on")
    else:
        gain = round(c_new - l_new, 4)
        if gain < promote_margin:
            reasons.append(f"held-out gain {gain:+.3f} is below the margin {promote_margin:.3f}")
    regressions: dict[str, float] = {}
    for name in REGRESSION_SETS:
        c, l_ = score_of(cand, name), score_of(live, name)
        if c is None or l_ is None:
            continue
        drop = round(l_ - c, 4)
        regressions[name] = drop
        if drop > max_regression:
            reasons.append(f"{name} fell by {drop:.3f} (allowed {max_regression:.3f})")
    return GateDecision(not reasons, reasons, gain, regressions)
