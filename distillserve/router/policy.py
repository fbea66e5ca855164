"""Routing policies: turn a difficulty score into a route. The threshold comparison lives here only."""

from __future__ import annotations

import bisect
import math
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
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
    quantile of the recent score distribution (a sliding window of ``window`` scores).

    Scores exactly at the threshold are split at random in the proportion that makes the
    expected share hit the target: a coarse scorer (many equal scores) would otherwise send
    a whole tie group to one side and miss the target by the size of that group.

    The window lags when the traffic mix shifts, so the share actually given to the teacher
    over the same window feeds back: the quantile aims at ``target + gain * (target - realised)``,
    which pays back an overshoot during a shift instead of letting it stand.

    Across a fleet (``pool``) the window is every gateway's recent scores, so the threshold is the
    fleet's quantile and the feedback the fleet's realised share: gateways that see harder traffic
    send more of it to the teacher, and the fleet as a whole holds the target.
    """

    def __init__(
        self,
        target_share: float,
        window: int = 500,
        initial_threshold: float = 0.5,
        rng: random.Random | None = None,
        gain: float = 2.0,
    ) -> None:
        if not 0.0 <= target_share <= 1.0:
            raise ValueError(f"target_teacher_share must be in [0, 1], got {target_share}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.target_share = target_share
        self._recent: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []
        self._threshold = initial_threshold
        self._tie_share = 1.0  # probability that a score equal to the threshold goes to the teacher
        self._rng = rng or random.Random()
        self.gain = gain
        self._routed: deque[bool] = deque(maxlen=window)  # True = sent to the teacher
        # The other gateways' recent decisions (teacher, all), when the window is pooled (``pool``).
        self._others_routed = (0, 0)

    def observe(self, score: float) -> None:
        if math.isnan(score):
            return
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        self._recalibrate()

    # -- the fleet's share (``router.fleet_share``) ---------------------------------------------------
    def window(self) -> tuple[list[float], int, int]:
        """This gateway's own recent scores, and how many of its recent decisions went to the teacher
        out of how many: what it shares with the other gateways."""
        return list(self._recent), sum(self._routed), len(self._routed)

    def pool(self, scores: Sequence[float], teacher: int, decided: int) -> None:
        """Aim at the fleet's share: set the threshold on this gateway's window together with the
        other gateways' ``scores``, and feed back their ``teacher`` of ``decided`` decisions too.
        Called at each exchange; ``pool([], 0, 0)`` goes back to this gateway alone."""
        self._sorted = sorted([*self._recent, *(s for s in scores if not math.isnan(s))])
        self._others_routed = (teacher, decided)
        if self._sorted:
            self._recalibrate()

    def _recalibrate(self) -> None:
        n = len(self._sorted)
        if self.target_share <= 0.0:
            self._threshold, self._tie_share = math.inf, 0.0
            return
        if self.target_share >= 1.0:
            self._threshold, self._tie_share = -math.inf, 1.0
            return
        aim = self.target_share
        teacher, decided = self._others_routed
        if self._routed or decided:
            realised = (sum(self._routed) + teacher) / (len(self._routed) + decided)
            aim = min(1.0, max(0.0, aim + self.gain * (self.target_share - realised)))
        wanted = aim * n  # how many of the recent scores the teacher should take
        # The score at the boundary: the (1 - share) quantile, taken from the top.
        k = min(n - 1, max(0, n - math.ceil(wanted)))
        t = self._sorted[k]
        above = n - bisect.bisect_right(self._sorted, t)
        ties = bisect.bisect_right(self._sorted, t) - bisect.bisect_left(self._sorted, t)
        self._threshold = t
        self._tie_share = min(1.0, max(0.0, (wanted - above) / ties))

    def threshold(self) -> float:
        return self._threshold

    def decide(self, score: float, threshold: float | None = None) -> Route:
        if threshold is not None:  # a per-key threshold overrides the calibration
            return super().decide(score, threshold)
        teacher = score > self._threshold or (
            score == self._threshold and self._rng.random() < self._tie_share
        )
        self._routed.append(teacher)
        return "teacher" if teacher else "student"
