"""Routing policies: turn a difficulty score into a route. The threshold comparison lives here only."""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections import deque
from typing import Literal

Route = Literal["student", "teacher"]


class RoutingPolicy(ABC):
    @abstractmethod
    def threshold(self) -> float:
        """Scores at or above this go to the teacher."""

    def observe(self, score: float) -> None:  # noqa: B027 - stateless policies ignore it
        """Feed one score into the policy's recent-score window."""

    def decide(self, score: float, threshold: float | None = None) -> Route:
        t = self.threshold() if threshold is None else threshold
        return "teacher" if score >= t else "student"


class ThresholdPolicy(RoutingPolicy):
    def __init__(self, threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self._threshold = threshold

    def threshold(self) -> float:
        return self._threshold


class TargetSharePolicy(RoutingPolicy):
    """Keeps the teacher's share near a target by setting the threshold at the matching
    quantile of the recent score distribution (a sliding window)."""

    def __init__(self, target_share: float, window: int = 500, initial_threshold: float = 0.5) -> None:
        if not 0.0 <= target_share <= 1.0:
            raise ValueError(f"target_teacher_share must be in [0, 1], got {target_share}")
        self.target_share = target_share
        self._recent: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []
        self._threshold = initial_threshold

    def observe(self, score: float) -> None:
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        n = len(self._sorted)
        if self.target_share <= 0.0:
            self._threshold = 1.0 + 1e-9
        elif self.target_share >= 1.0:
            self._threshold = 0.0
        else:
            # The (1 - share) quantile: that share of recent scores lies at or above it.
            k = min(n - 1, max(0, round((1.0 - self.target_share) * n)))
            self._threshold = self._sorted[k]

    def threshold(self) -> float:
        return self._threshold
