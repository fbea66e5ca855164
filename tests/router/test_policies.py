"""Routing policies and the router's guarantees, without models: fixed threshold, calibration to a
target teacher share, per-key overrides, the force header, bad input, scorer fallback."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from prometheus_client import REGISTRY

from distillserve.config import RouterConfig
from distillserve.router.heuristic import HeuristicScorer
from distillserve.router.policy import TargetSharePolicy, ThresholdPolicy
from distillserve.router.router import Router
from distillserve.router.scoring import DifficultyScorer, Score, build_scorer
from distillserve.testbed.tasks import TASKS, sample

LONG_REASONING = (
    "Prove step by step that the algorithm below is optimal, analyze its complexity and explain why?\n"
    + "x = y + z * 2 - w / 3\n" * 4
)


def mixed_prompts(n: int, seed: int, hard_share: float) -> list[str]:
    """Testbed prompts of every task plus long reasoning prompts, shuffled."""
    rng = random.Random(seed)
    easy = [p for p, _ in sample(list(TASKS), n, seed)]
    out = [LONG_REASONING + p if rng.random() < hard_share else p for p in easy]
    rng.shuffle(out)
    return out


def fallbacks(scorer: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "distillserve_router_scorer_fallbacks_total", {"scorer": scorer, "reason": reason}
        )
        or 0.0
    )


async def teacher_share(router: Router, prompts: list[str]) -> float:
    routes = [(await router.decide(p)).route for p in prompts]
    return routes.count("teacher") / len(routes)


@pytest.mark.parametrize("target", [0.2, 0.5])
async def test_target_share_holds_within_5_points_over_a_mixed_stream(target: float) -> None:
    cfg = RouterConfig(policy="target_share", target_teacher_share=target, window=300)
    router = Router(cfg, policy=TargetSharePolicy(target, 300, rng=random.Random(1)))
    await teacher_share(router, mixed_prompts(300, seed=0, hard_share=0.3))  # fill the window
    # The mix shifts twice; the share must follow the target, not the mix.
    for seed, hard in ((1, 0.1), (2, 0.6), (3, 0.3), (4, 0.9), (5, 0.0)):
        share = await teacher_share(router, mixed_prompts(900, seed=seed, hard_share=hard))
        assert abs(share - target) <= 0.05, (seed, hard, share)


def test_target_share_splits_ties_so_a_coarse_scorer_still_hits_the_target() -> None:
    policy = TargetSharePolicy(0.3, window=200, rng=random.Random(0))
    rng = random.Random(0)
    routes = []
    for _ in range(4000):
        s = rng.choice([0.1, 0.5, 0.5, 0.5, 0.9])  # 60% of scores are one tied value
        policy.observe(s)
        routes.append(policy.decide(s))
    share = routes[200:].count("teacher") / len(routes[200:])
    assert abs(share - 0.3) <= 0.03, share
    assert policy.threshold() == 0.5


@pytest.mark.parametrize("target", [0.0, 1.0])
def test_target_share_extremes(target: float) -> None:
    policy = TargetSharePolicy(target, window=10)
    for s in (0.0, 0.3, 1.0, 0.7):
        policy.observe(s)
    assert {policy.decide(s) for s in (0.0, 0.5, 1.0)} == {"teacher" if target else "student"}


def test_policies_reject_bad_settings() -> None:
    with pytest.raises(ValueError):
        ThresholdPolicy(1.5)
    with pytest.raises(ValueError):
        TargetSharePolicy(-0.1)
    with pytest.raises(ValueError):
        build_scorer("no-such-scorer")


async def test_fixed_threshold_routes_by_score() -> None:
    router = Router(RouterConfig(threshold=0.5))
    easy, hard = await router.decide("copy: hello"), await router.decide(LONG_REASONING)
    assert (easy.route, hard.route) == ("student", "teacher")
    assert easy.score < 0.5 <= hard.score and easy.reason == hard.reason == "score"
    strict = Router(RouterConfig(threshold=0.0))
    assert (await strict.decide("copy: hello")).route == "teacher"


async def test_force_header_values_and_per_key_overrides() -> None:
    cfg = RouterConfig(
        threshold=0.5, key_overrides={"sk-cheap": "student", "sk-vip": "teacher", "sk-picky": 0.01}
    )
    router = Router(cfg)
    assert (await router.decide(LONG_REASONING, forced="student")).route == "student"
    d = await router.decide("copy: a", forced=" Teacher ")
    assert (d.route, d.reason) == ("teacher", "forced")
    # An unknown header value is ignored: the scorer decides.
    assert (await router.decide("copy: a", forced="gpu-please")).reason == "score"
    assert (await router.decide(LONG_REASONING, api_key="sk-cheap")).route == "student"
    d = await router.decide("copy: a", api_key="sk-vip")
    assert (d.route, d.reason) == ("teacher", "key_override")
    # A float override is that key's threshold; the score is still computed.
    d = await router.decide("copy: a", api_key="sk-picky")
    assert (d.route, d.reason) == ("teacher", "score")
    assert (await router.decide("copy: a", api_key="sk-other")).route == "student"
    # The header wins over a key override.
    assert (await router.decide("copy: a", forced="student", api_key="sk-vip")).route == "student"


BAD_PROMPTS = [
    "",
    " \n\t ",
    "x" * 1_000_000,
    "?" * 200_000 + "\n" * 50_000,
    "把这个句子翻译成英文，然后解释语法。",
    "ترجم هذه الجملة إلى الإنجليزية",
    "🙂🔥💯" * 100,
    "\x00\x01\ufffd",
]


@pytest.mark.parametrize("scorer", ["heuristic", "random"])
async def test_bad_input_gets_a_score_and_a_route(scorer: str) -> None:
    router = Router(RouterConfig(scorer=scorer))
    for prompt in BAD_PROMPTS:
        d = await router.decide(prompt)
        assert d.route in ("student", "teacher")
        assert 0.0 <= d.score <= 1.0 and not math.isnan(d.score)


class BrokenScorer(DifficultyScorer):
    """A fake, only to inject the faults a real scorer cannot produce on demand."""

    name = "broken"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def score(self, prompt: str) -> Score:
        if self.mode == "slow":
            await asyncio.sleep(5)
        if self.mode == "nan":
            return Score(float("nan"), self.name)
        raise RuntimeError("scorer exploded")


@pytest.mark.parametrize(("mode", "reason"), [("error", "error"), ("slow", "timeout"), ("nan", "error")])
async def test_failing_scorer_falls_back_to_heuristic_and_is_counted(mode: str, reason: str) -> None:
    router = Router(RouterConfig(scorer_timeout_s=0.05), scorer=BrokenScorer(mode))
    before = fallbacks("broken", reason)
    d = await router.decide(LONG_REASONING)
    assert d.scorer == "heuristic" and d.route == "teacher"
    assert d.score == HeuristicScorer().score_sync(LONG_REASONING).value
    assert fallbacks("broken", reason) == before + 1
