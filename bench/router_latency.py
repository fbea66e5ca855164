"""Router decision latency per scorer, on 2 cores: p50/p99 of ``Router.decide``.

- ``sequential``: one decision at a time (no concurrency, so no batching).
- ``open_loop``: decisions arrive as a Poisson process at each rate (like requests reaching a
  gateway) and run concurrently on one event loop; the embedding scorer is measured with
  micro-batching on (``max_batch`` 32) and off (1), interleaved in the same run.

The embedding scorer runs on each ``--runtimes`` (``torch``: sentence-transformers;
``onnx-none`` / ``onnx-int8``: ONNX Runtime, fp32 / int8), each with its LRU cache of embeddings
off, so every decision embeds; ``--repeat-share`` sends that share of prompts again (a cache
hit with the cache on). Prompts: testbed prompts of every task plus 20% long reasoning prompts
(cut to 128 tokens by the scorer). The learned scorer's classifier is fitted first on testbed labels. The process
pins itself to 2 CPU cores when it has more. Prints one JSON object.

    .venv/bin/python bench/router_latency.py [--seconds 4] [--rates 50,100,200,400]
        [--runtimes torch,onnx-none,onnx-int8] [--no-unbatched]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.percentiles import pct
from distillserve.config import RouterConfig
from distillserve.router.embedding_scorer import EmbeddingScorer
from distillserve.router.labelled_example import LabelledExample
from distillserve.router.router import Router
from distillserve.router.sentence_encoder import SentenceEncoder, build_sentence_encoder
from distillserve.testbed.tasks import BASE_TASKS, TASKS, sample

LONG = (
    "Explain step by step why the following algorithm terminates, analyze its complexity, "
    "and compare it with a greedy alternative. Consider the invariants and justify each step. "
)


def prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = [p for p, _ in sample(list(TASKS), n, seed)]
    return [LONG * 3 + p if rng.random() < 0.2 else p for p in out]


def summary(lat: list[float]) -> dict[str, float]:
    return {"n": len(lat), "p50_ms": 1000 * pct(lat, 0.5), "p99_ms": 1000 * pct(lat, 0.99)}


async def sequential(router: Router, ps: list[str]) -> dict[str, float]:
    lat = []
    for p in ps:
        t = time.perf_counter()
        await router.decide(p)
        lat.append(time.perf_counter() - t)
    return summary(lat)


async def open_loop(
    router: Router, ps: list[str], rate: float, seconds: float, seed: int
) -> dict[str, float]:
    rng = random.Random(seed)
    lat: list[float] = []
    fell_back = 0

    async def one(p: str) -> None:
        nonlocal fell_back
        t = time.perf_counter()
        d = await router.decide(p)
        lat.append(time.perf_counter() - t)
        fell_back += d.scorer != router.scorer.name

    tasks = []
    start = time.perf_counter()
    next_at = start
    i = 0
    while next_at - start < seconds:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(ps[i % len(ps)])))
        i += 1
        next_at += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {**summary(lat), "achieved_rps": len(lat) / elapsed, "fell_back": fell_back}


def encoder(runtime: str, max_tokens: int) -> SentenceEncoder:
    kind, _, quantization = runtime.partition("-")
    cfg = RouterConfig().embedding.model_copy(
        update={"runtime": kind, "quantization": quantization or "none", "max_tokens": max_tokens}
    )
    e = build_sentence_encoder(cfg)
    e.load()
    return e


async def build_routers(args: argparse.Namespace) -> dict[str, Router]:
    train = [
        LabelledExample(p, a, a, 1.0 if p.split(":")[0] in BASE_TASKS else 0.0)
        for p, a in sample(list(TASKS), 280, 0)
    ]
    # A generous timeout so every decision is measured, not replaced by the heuristic fallback.
    base = RouterConfig(scorer="embedding", scorer_timeout_s=5.0)
    routers = {"heuristic": Router(RouterConfig(scorer="heuristic"))}
    for runtime in args.runtimes.split(","):
        emb = encoder(runtime, args.max_tokens)
        cfg = base.model_copy(update={"embedding": base.embedding.model_copy(update={"cache_entries": 0})})
        batched = EmbeddingScorer(cfg, embedder=emb, load_saved=False)
        await batched.retrain(train, save=False)
        routers[f"embedding_{runtime}"] = Router(cfg, scorer=batched)
        if not args.no_unbatched:
            one = cfg.model_copy(update={"embedding": cfg.embedding.model_copy(update={"max_batch": 1})})
            unbatched = EmbeddingScorer(one, embedder=emb, classifier=batched.classifier, load_saved=False)
            routers[f"embedding_{runtime}_unbatched"] = Router(one, scorer=unbatched)
    return routers


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rates", default="50,100,200,400")
    ap.add_argument("--sequential", type=int, default=400)
    ap.add_argument("--max-tokens", type=int, default=128, help="router.embedding.max_tokens")
    ap.add_argument("--runtimes", default="torch,onnx-none,onnx-int8")
    ap.add_argument("--no-unbatched", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 2:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    routers = await build_routers(args)
    ps = prompts(2000, 1)
    for r in routers.values():  # warm-up
        await sequential(r, ps[:20])
    result: dict[str, object] = {
        "max_tokens": args.max_tokens,
        "cores": cores,
        "load_average": os.getloadavg(),
        "scorers": {},
    }
    for name, r in routers.items():
        result["scorers"][name] = {"sequential": await sequential(r, ps[: args.sequential])}  # type: ignore[index]
    for rate in [float(x) for x in args.rates.split(",")]:
        for name, r in routers.items():
            if name.endswith("_unbatched") and rate > 200:
                continue  # it cannot keep up: the queue only grows
            b0 = getattr(r.scorer, "_batcher", None)
            i0 = (b0.batches, b0.items) if b0 is not None else None
            stats = await open_loop(r, ps, rate, args.seconds, seed=int(rate))
            if b0 is not None and i0 is not None and b0.batches > i0[0]:
                stats["mean_batch"] = (b0.items - i0[1]) / (b0.batches - i0[0])
            result["scorers"][name][f"open_loop_{int(rate)}rps"] = stats  # type: ignore[index]
    for r in routers.values():
        await r.aclose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
