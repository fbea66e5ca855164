"""The student's own confidence, from the log-probabilities of the tokens it generated.

The statistic is the minimum (default: one shaky token is enough to doubt an exact answer)
or the mean token log-probability; an answer is *unsure* when it falls below
``router.cascade.min_logprob``. As a difficulty score it is ``1 - exp(statistic)``:
one minus the probability of the least likely token (or the geometric-mean token probability).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from distillserve.config import RouterConfig
from distillserve.router.scoring import Score

Statistic = Literal["min", "mean"]


def confidence_statistic(logprobs: Sequence[float], kind: Statistic = "min") -> float:
    """The statistic over an answer's token log-probabilities; ``-inf`` for an empty answer."""
    if not logprobs:
        return -math.inf
    return min(logprobs) if kind == "min" else sum(logprobs) / len(logprobs)


def difficulty_from_statistic(statistic: float) -> float:
    return 1.0 - math.exp(min(0.0, statistic)) if statistic > -math.inf else 1.0


def chunk_logprobs(choice: dict[str, Any]) -> list[float]:
    """Token log-probabilities in one choice (a whole answer or a stream chunk), chat or completions format."""
    lp = choice.get("logprobs") or {}
    if lp.get("content"):  # chat: [{"token", "logprob", ...}]
        return [float(e["logprob"]) for e in lp["content"] if e.get("logprob") is not None]
    if lp.get("token_logprobs"):  # completions: parallel lists
        return [float(x) for x in lp["token_logprobs"] if x is not None]
    return []


class ConfidenceCascade:
    def __init__(self, cfg: RouterConfig) -> None:
        self.threshold = cfg.cascade.min_logprob
        self.statistic: Statistic = cfg.cascade.statistic
        self.decide_after_tokens = cfg.cascade.decide_after_tokens

    def is_unsure(self, logprobs: Sequence[float]) -> bool:
        return confidence_statistic(logprobs, self.statistic) < self.threshold

    def unsure_already(self, logprobs: Sequence[float]) -> bool:
        """True when the answer so far is unsure whatever follows (only the min statistic can know early)."""
        return self.statistic == "min" and bool(logprobs) and min(logprobs) < self.threshold

    def score(self, logprobs: Sequence[float]) -> Score:
        stat = confidence_statistic(logprobs, self.statistic)
        return Score(
            value=difficulty_from_statistic(stat),
            scorer="cascade",
            features={
                f"{self.statistic}_logprob": stat if stat > -math.inf else -1e9,
                "tokens": len(logprobs),
            },
        )
