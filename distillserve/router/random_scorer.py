"""Random routing: RouteLLM's baseline. Every quality/cost curve should beat its straight line."""

from __future__ import annotations

import random

from distillserve.router.scoring import DifficultyScorer, Score, register_scorer


@register_scorer("random")
class RandomScorer(DifficultyScorer):
    def __init__(self, *, seed: int | None = None, **_: object) -> None:
        self._rng = random.Random(seed)

    async def score(self, prompt: str) -> Score:
        return Score(value=self._rng.random(), scorer=self.name)
