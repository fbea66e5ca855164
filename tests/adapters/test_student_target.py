"""The canary split: deterministic by default (each gateway sends its share to within one
request, so a fleet is within one request per gateway), random when given an ``rng``."""

from __future__ import annotations

import random

import pytest

from distillserve.adapters.student_target import StudentTarget


@pytest.mark.parametrize("share", [0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1.0])
def test_the_deterministic_split_sends_the_share_to_within_one_request(share: float) -> None:
    target = StudentTarget("student@v1")
    target.set_canary("student@v2", share)
    for n in (1, 7, 10, 333, 1000):
        picks = [target.pick().canary for _ in range(n)]
        assert abs(sum(picks) - n * share) <= 1, (n, sum(picks))
        target.set_canary("student@v3", share)  # another split, then this one again: counted afresh
        target.set_canary("student@v2", share)


def test_a_new_split_restarts_its_count_and_no_canary_means_live() -> None:
    target = StudentTarget("student@v1")
    assert {target.pick().adapter for _ in range(10)} == {"student@v1"}
    target.set_canary("student@v2", 0.5)
    assert [target.pick().adapter for _ in range(4)] == ["student@v1", "student@v2"] * 2
    target.set_canary(None, 0.0)
    assert target.pick().adapter == "student@v1"


def test_a_random_split_when_given_an_rng() -> None:
    target = StudentTarget("student@v1", rng=random.Random(0))
    target.set_canary("student@v2", 0.1)
    share = sum(target.pick().canary for _ in range(10_000)) / 10_000
    assert 0.09 <= share <= 0.11  # binomial sd 0.003: ±3.3 sd
