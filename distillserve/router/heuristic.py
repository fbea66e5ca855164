"""A cheap difficulty score from surface features of the prompt (microseconds, no model)."""

from __future__ import annotations

import math
import re

from distillserve.router.scoring import DifficultyScorer, Score, register_scorer

_HARD_WORDS = re.compile(
    r"\b(prove|proof|derive|explain why|step by step|analy[sz]e|compare|design|optimi[sz]e|"
    r"theorem|integral|algorithm|complexity|reason|justify|debug|refactor)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"```|\bdef |\bclass |[{};]\s*$", re.MULTILINE)
_MATH = re.compile(r"[=+\-*/^√∑∫]")

# Weights of a logistic model over the features; chosen by hand so that one-line
# lookups score low and long multi-part reasoning prompts score high.
_BIAS = -2.2
_WEIGHTS = {
    "log_chars": 0.55,
    "hard_words": 1.4,
    "code": 1.0,
    "math_density": 6.0,
    "questions": 0.35,
    "lines": 0.08,
}


@register_scorer("heuristic")
class HeuristicScorer(DifficultyScorer):
    def __init__(self, **_: object) -> None:
        pass

    def features(self, prompt: str) -> dict[str, float]:
        n = len(prompt)
        return {
            "log_chars": math.log1p(n) / math.log(10),
            "hard_words": float(len(_HARD_WORDS.findall(prompt[:20_000]))),
            "code": 1.0 if _CODE.search(prompt[:20_000]) else 0.0,
            "math_density": len(_MATH.findall(prompt[:20_000])) / max(n, 1),
            "questions": float(prompt.count("?")),
            "lines": float(prompt.count("\n")),
        }

    def score_sync(self, prompt: str) -> Score:
        f = self.features(prompt)
        z = _BIAS + sum(_WEIGHTS[k] * v for k, v in f.items())
        z = max(-30.0, min(30.0, z))
        return Score(value=1.0 / (1.0 + math.exp(-z)), scorer=self.name, features=f)

    async def score(self, prompt: str) -> Score:
        return self.score_sync(prompt)
