"""The target-share policy on the fleet's share: gateways pool their recent windows in Redis.

Every ``sync_interval_s`` a gateway writes its own window (recent scores, and how many of its
recent decisions went to the teacher) to one Redis hash field, reads every other gateway's, and
hands them to its ``TargetSharePolicy`` (``pool``): the threshold becomes the fleet's quantile and
the feedback the fleet's realised share. A gateway silent for ``stale_after_s`` drops out.

Why Redis and not the other two ways:
- the share read from Prometheus lags by a scrape interval plus the rate window (tens of seconds
  to minutes): a feedback loop that slow overshoots and oscillates, and routing would then
  depend on the monitoring stack being up;
- one pod holding the state needs an election and a call per decision or per batch to that
  pod, and the fleet loses the policy when that pod restarts;
- Redis is already the fleet's shared store (``keys.storage`` for rate limits), a round trip a
  second per gateway costs nothing, and the exchange is off the request path: when Redis does not
  answer (counted in ``distillserve_router_fleet_share_syncs_total{outcome="unreachable"}``) each
  gateway keeps the last pooled window, then after ``stale_after_s`` goes on alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

import orjson

from distillserve.background_task import BackgroundTask
from distillserve.config.router import FleetShareConfig
from distillserve.monitoring import metrics
from distillserve.router.policy import TargetSharePolicy

log = logging.getLogger(__name__)


def gateway_id() -> str:
    """This gateway among the others (its field in Redis, the publisher on a router card)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class FleetShare:
    def __init__(
        self, policy: TargetSharePolicy, cfg: FleetShareConfig, gateway: str, client: Any = None
    ) -> None:
        if cfg.redis_url is None and client is None:
            raise ValueError("router.fleet_share needs redis_url")
        if client is None:
            import redis.asyncio as aioredis  # only gateways that pool their share need the client

            client = aioredis.Redis.from_url(cfg.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.policy = policy
        self.cfg = cfg
        self.gateway = gateway
        self.redis = client
        self._last_ok = time.monotonic()
        self._task = BackgroundTask("router-fleet-share")

    async def sync_once(self) -> int:
        """Share this gateway's window and pool the others'; returns how many gateways were pooled
        (this one included). Raises ``redis.RedisError`` / ``OSError`` when Redis does not answer."""
        scores, teacher, decided = self.policy.window()
        now = time.time()
        mine = orjson.dumps({"at": now, "scores": scores, "teacher": teacher, "decided": decided})
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.cfg.key, self.gateway, mine)
            pipe.hgetall(self.cfg.key)
            _, fields = await pipe.execute()
        pooled, stale = self._pool(fields, now)
        if stale:
            await self.redis.hdel(self.cfg.key, *stale)
        metrics.FLEET_SHARE_SYNCS.labels(outcome="synced").inc()
        metrics.FLEET_SHARE_GATEWAYS.set(pooled)
        self._last_ok = time.monotonic()
        return pooled

    def _pool(self, fields: dict[bytes, bytes], now: float) -> tuple[int, list[bytes]]:
        scores: list[float] = []
        teacher = decided = 0
        stale: list[bytes] = []
        others = 0
        for name, raw in fields.items():
            if name.decode() == self.gateway:
                continue
            try:
                other = orjson.loads(raw)
                fresh = now - float(other["at"]) < self.cfg.stale_after_s
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("fleet share: unreadable window of %r dropped", name)
                fresh, other = False, None
            if not fresh:
                stale.append(name)
                continue
            scores += other["scores"]
            teacher += int(other["teacher"])
            decided += int(other["decided"])
            others += 1
        self.policy.pool(scores, teacher, decided)
        return others + 1, stale

    async def _run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except Exception as exc:  # redis errors, and anything else: routing must go on
                metrics.FLEET_SHARE_SYNCS.labels(outcome="unreachable").inc()
                log.warning("fleet share: Redis did not answer (%s); the last pooled window stands", exc)
                if time.monotonic() - self._last_ok > self.cfg.stale_after_s:
                    self.policy.pool([], 0, 0)  # the others' windows are stale: this gateway alone
                    metrics.FLEET_SHARE_GATEWAYS.set(1)
            await asyncio.sleep(self.cfg.sync_interval_s)

    def start(self) -> None:
        self._task.start(self._run)

    async def aclose(self) -> None:
        await self._task.aclose()
        with contextlib.suppress(Exception):  # closing a client whose server is gone
            await self.redis.hdel(self.cfg.key, self.gateway)
        await self.redis.aclose()
