"""Rolling student/teacher agreement per adapter, and drift below each adapter's baseline.

The baseline is what the promotion path measured for the adapter (``set_baseline`` with its
eval agreement); without one, the first full window after the adapter went live becomes
its baseline. Drift is how far the rolling agreement has fallen below the baseline.
Only the most recently seen adapters keep their series, so labels stay bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from contextlib import suppress
from dataclasses import dataclass

from distillserve.monitoring import metrics


@dataclass
class _Window:
    pairs: deque[bool]
    agreed: int = 0
    baseline: float | None = None
    baseline_source: str | None = None  # "promotion" or "first_window"

    def add(self, agreed: bool) -> None:
        if len(self.pairs) == self.pairs.maxlen:
            self.agreed -= self.pairs[0]
        self.pairs.append(agreed)
        self.agreed += agreed

    @property
    def full(self) -> bool:
        return len(self.pairs) == self.pairs.maxlen

    @property
    def rate(self) -> float | None:
        return self.agreed / len(self.pairs) if self.pairs else None


class AgreementTracker:
    def __init__(self, window: int, max_adapters: int = 4) -> None:
        if window < 1:
            raise ValueError(f"agreement window must be at least 1, got {window}")
        self.window = window
        self.max_adapters = max_adapters
        self._adapters: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()  # the promotion path may call set_baseline from another thread

    def _get(self, adapter: str) -> _Window:
        w = self._adapters.get(adapter)
        if w is None:
            w = self._adapters[adapter] = _Window(deque(maxlen=self.window))
            while len(self._adapters) > self.max_adapters:
                old, _ = self._adapters.popitem(last=False)
                self._remove_series(old)
        self._adapters.move_to_end(adapter)
        return w

    def set_baseline(self, adapter: str, value: float) -> None:
        """The agreement ``adapter`` reached when it was promoted (e.g. its eval agreement with the teacher)."""
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"baseline agreement must be in [0, 1], got {value}")
        with self._lock:
            w = self._get(adapter)
            w.baseline, w.baseline_source = value, "promotion"
            self._export(adapter, w)

    def record(self, adapter: str, agreed: bool) -> None:
        # The counter is what the fleet's drift rule sums over gateways; the window gauges are this pod's.
        metrics.STUDENT_AGREEMENT_PAIRS_TOTAL.labels(
            adapter=adapter, agreed="true" if agreed else "false"
        ).inc()
        with self._lock:
            w = self._get(adapter)
            w.add(agreed)
            if w.baseline is None and w.full:
                w.baseline, w.baseline_source = w.rate, "first_window"
            self._export(adapter, w)

    def agreement(self, adapter: str) -> float | None:
        w = self._adapters.get(adapter)
        return w.rate if w else None

    def baseline(self, adapter: str) -> float | None:
        w = self._adapters.get(adapter)
        return w.baseline if w else None

    def drift(self, adapter: str) -> float | None:
        w = self._adapters.get(adapter)
        if w is None or w.baseline is None or w.rate is None:
            return None
        return max(0.0, w.baseline - w.rate)

    @staticmethod
    def _export(adapter: str, w: _Window) -> None:
        metrics.STUDENT_AGREEMENT_PAIRS.labels(adapter=adapter).set(len(w.pairs))
        if w.rate is not None:
            metrics.STUDENT_AGREEMENT.labels(adapter=adapter).set(w.rate)
        if w.baseline is not None:
            metrics.STUDENT_AGREEMENT_BASELINE.labels(adapter=adapter).set(w.baseline)
            if w.rate is not None:
                metrics.STUDENT_DRIFT.labels(adapter=adapter).set(max(0.0, w.baseline - w.rate))

    @staticmethod
    def _remove_series(adapter: str) -> None:
        for g in (
            metrics.STUDENT_AGREEMENT,
            metrics.STUDENT_AGREEMENT_BASELINE,
            metrics.STUDENT_DRIFT,
            metrics.STUDENT_AGREEMENT_PAIRS,
        ):
            with suppress(KeyError):
                g.remove(adapter)
