"""Embedded engine throughput: N concurrent requests at batch size 1 vs ``--batch`` in one run.

Every request generates exactly ``--tokens`` tokens (greedy, end-of-sequence ignored), so
both sides do the same work; prints JSON with generated tokens/s for each and their ratio.

    .venv/bin/python bench/embedded_engine.py [--model testbed-student] [--requests 16] [--batch 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.engine.engine import EmbeddedEngine
from distillserve.engine.sampling import SamplingParams
from distillserve.testbed.tasks import BASE_TASKS, sample


async def workload(engine: EmbeddedEngine, prompts: list[str], tokens: int) -> dict[str, float]:
    params = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True)
    tok = engine.tokenizer

    async def one(prompt: str) -> tuple[int, float]:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_dict=True
        )["input_ids"]
        t0 = time.perf_counter()
        ttft = None
        n = 0
        async for _ in engine.generate(list(ids), params):
            ttft = ttft or time.perf_counter() - t0
            n += 1
        return n, ttft or 0.0

    start = time.perf_counter()
    results = await asyncio.gather(*(one(p) for p in prompts))
    wall = time.perf_counter() - start
    generated = sum(n for n, _ in results)
    return {
        "generated_tokens": generated,
        "seconds": round(wall, 3),
        "tokens_per_s": round(generated / wall, 1),
        "mean_ttft_s": round(sum(t for _, t in results) / len(results), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="testbed-student")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="alternate the two sides this many times")
    args = ap.parse_args()
    prompts = [p for p, _ in sample(BASE_TASKS, args.requests, seed=3)]
    engines = {size: EmbeddedEngine(args.model, max_batch_size=size) for size in (1, args.batch)}
    for e in engines.values():
        e.start()
    try:
        for e in engines.values():  # warm-up: first calls pay one-off allocation costs
            asyncio.run(workload(e, prompts[:2], 4))
        runs: dict[int, list[dict[str, float]]] = {size: [] for size in engines}
        for _ in range(args.rounds):
            for size, e in engines.items():
                runs[size].append(asyncio.run(workload(e, prompts, args.tokens)))
    finally:
        for e in engines.values():
            e.close()
    best = {size: max(r, key=lambda x: x["tokens_per_s"]) for size, r in runs.items()}
    print(
        json.dumps(
            {
                "model": args.model,
                "requests": args.requests,
                "tokens_per_request": args.tokens,
                "batch_1": best[1],
                f"batch_{args.batch}": best[args.batch],
                "throughput_ratio": round(best[args.batch]["tokens_per_s"] / best[1]["tokens_per_s"], 2),
                "all_runs": {str(k): v for k, v in runs.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
