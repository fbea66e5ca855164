"""The target-share policy holds the fleet's share: two gateways' policies pool their windows in a
real Redis (Debian's ``redis-server`` on a free port). One gateway sees only easy prompts, the
other only hard ones; the fleet must send the target share to the teacher, taken from the hard
side, and both gateways must agree on the threshold. Without pooling, each holds the target on its
own traffic, so the easy gateway sends easy prompts to the teacher: the case the pooling fixes.

The scores are drawn from seeded generators (uniform on [0, 0.5) and [0.5, 1)), so the run is
deterministic; the bounds are far wider than the sampling spread of 2,000 decisions (≈1 point).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from distillserve.config.router import FleetShareConfig
from distillserve.router.fleet_share import FleetShare
from distillserve.router.policy import TargetSharePolicy
from tests.support.metrics import sample as metric
from tests.support.redis import running_redis

TARGET = 0.2
ROUNDS, PER_ROUND = 40, 50  # 2,000 decisions per gateway, an exchange every 50


@pytest.fixture
async def redis_url(tmp_path: Path) -> AsyncIterator[str]:
    with running_redis(tmp_path) as url:
        yield url


def policy(seed: int) -> TargetSharePolicy:
    return TargetSharePolicy(TARGET, window=500, initial_threshold=0.5, rng=random.Random(seed))


def route(p: TargetSharePolicy, rng: random.Random, low: float) -> bool:
    score = low + 0.5 * rng.random()
    p.observe(score)
    return p.decide(score) == "teacher"


async def run(pooled: bool, redis_url: str) -> tuple[float, float, list[FleetShare]]:
    """Teacher shares of the easy and the hard gateway over the last half of the run."""
    easy, hard = policy(1), policy(2)
    cfg = FleetShareConfig(redis_url=redis_url, key=f"test:{pooled}")
    shares = [FleetShare(easy, cfg, "easy"), FleetShare(hard, cfg, "hard")] if pooled else []
    rng_e, rng_h = random.Random(11), random.Random(12)
    sent_e = sent_h = 0
    for r in range(ROUNDS):
        te = sum(route(easy, rng_e, 0.0) for _ in range(PER_ROUND))
        th = sum(route(hard, rng_h, 0.5) for _ in range(PER_ROUND))
        if r >= ROUNDS // 2:  # after the windows filled
            sent_e, sent_h = sent_e + te, sent_h + th
        for s in shares:
            await s.sync_once()
    n = PER_ROUND * ROUNDS // 2
    if pooled:
        assert abs(easy.threshold() - hard.threshold()) < 0.02  # one fleet, one threshold
    return sent_e / n, sent_h / n, shares


async def test_pooled_windows_hold_the_fleet_share_and_take_it_from_the_hard_traffic(
    redis_url: str, fresh_metrics: CollectorRegistry
) -> None:
    alone_e, alone_h, _ = await run(False, redis_url)
    assert alone_e == pytest.approx(TARGET, abs=0.03) and alone_h == pytest.approx(TARGET, abs=0.03)

    easy, hard, shares = await run(True, redis_url)
    fleet = (easy + hard) / 2
    print(f"\nteacher share: easy gateway {easy:.3f}, hard gateway {hard:.3f}, fleet {fleet:.3f}")
    assert fleet == pytest.approx(TARGET, abs=0.03)
    assert easy < 0.02  # its prompts are all easier than the fleet's threshold
    assert hard == pytest.approx(2 * TARGET, abs=0.05)
    assert metric(fresh_metrics, "distillserve_router_fleet_share_gateways") == 2
    assert (
        metric(fresh_metrics, "distillserve_router_fleet_share_syncs_total", outcome="synced") == 2 * ROUNDS
    )
    for s in shares:
        await s.aclose()


async def test_a_silent_gateway_drops_out_of_the_pool(redis_url: str) -> None:
    cfg = FleetShareConfig(redis_url=redis_url, key="test:stale", stale_after_s=0.5)
    a, b = policy(1), policy(2)
    rng = random.Random(5)
    for _ in range(200):
        route(a, rng, 0.0)
        route(b, rng, 0.5)
    sa, sb = FleetShare(a, cfg, "a"), FleetShare(b, cfg, "b")
    await sb.sync_once()
    assert await sa.sync_once() == 2
    assert a.threshold() > 0.5  # pooled: the hard gateway's scores set the quantile
    await asyncio.sleep(0.6)  # b falls silent (partitioned, or killed without a goodbye)
    assert await sa.sync_once() == 1
    assert a.threshold() < 0.5  # alone again: its own 80th percentile
    assert await sa.redis.hkeys(cfg.key) == [b"a"]  # the stale window was removed
    await sb.aclose()
    await sa.aclose()
