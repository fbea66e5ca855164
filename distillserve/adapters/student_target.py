"""What the student route serves right now: the live adapter (or the base model), an
optional canary with its traffic share, and how many requests are in flight on each
adapter name (so a swap can wait for the old version to drain before unloading it)."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass


@dataclass(frozen=True)
class StudentChoice:
    adapter: str | None  # None = the base model
    canary: bool


class StudentTarget:
    """``rng``: draw the canary at random; without one the split is deterministic (the n-th
    request goes to the canary when ``floor(n * share)`` steps up), so every gateway sends
    exactly its share, within one request, and a fleet within one request per gateway."""

    def __init__(self, live: str | None = None, rng: random.Random | None = None) -> None:
        self.live = live
        self.canary: str | None = None
        self.canary_share = 0.0
        self._rng = rng
        self._picks = 0
        self._in_flight: Counter[str | None] = Counter()
        self._idle = asyncio.Event()

    def pick(self) -> StudentChoice:
        if self.canary is not None and self._canary_turn():
            return StudentChoice(self.canary, True)
        return StudentChoice(self.live, False)

    def _canary_turn(self) -> bool:
        if self._rng is not None:
            return self._rng.random() < self.canary_share
        n, self._picks = self._picks, self._picks + 1
        return math.floor((n + 1) * self.canary_share) > math.floor(n * self.canary_share)

    def set_live(self, adapter: str | None) -> str | None:
        """Point the route at ``adapter`` (one assignment, so atomic for the event loop); returns the old one."""
        old, self.live = self.live, adapter
        if self.canary == adapter:
            self.canary, self.canary_share = None, 0.0
        return old

    def set_canary(self, adapter: str | None, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"canary share must be in [0, 1], got {share}")
        if (adapter, share) != (self.canary, self.canary_share):
            self._picks = 0  # a new split starts its count afresh
        self.canary, self.canary_share = (adapter, share) if adapter else (None, 0.0)

    @contextmanager
    def in_flight(self, adapter: str | None) -> Iterator[None]:
        self._in_flight[adapter] += 1
        try:
            yield
        finally:
            self._in_flight[adapter] -= 1
            if self._in_flight[adapter] <= 0:
                del self._in_flight[adapter]
                self._idle.set()

    def busy(self, adapter: str | None) -> int:
        return self._in_flight.get(adapter, 0)

    async def drained(self, adapter: str | None, timeout: float) -> bool:
        """Wait until no request runs on ``adapter``; False if ``timeout`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.busy(adapter):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._idle.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), min(remaining, 0.5))
        return True
