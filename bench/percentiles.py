"""The percentile every benchmark here reports: nearest rank on the sorted sample."""

from __future__ import annotations


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]
