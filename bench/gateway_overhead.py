"""Gateway overhead: the same streaming workload sent straight to an upstream
OpenAI-compatible server and through the gateway, in one run, interleaved.

The upstream is the testbed teacher served as its own process (answers in microseconds,
so what we measure is the gateway). Prints one JSON object: per path p50/p99 latency,
TTFT and throughput, plus the added latency and the throughput ratio.

    .venv/bin/python bench/gateway_overhead.py [--requests 2000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.percentiles import pct
from tests.support.servers import start_gateway, start_testbed_teacher


async def one(client: httpx.AsyncClient, url: str, model: str, prompt: str) -> tuple[float, float]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True}
    t0 = time.perf_counter()
    ttft = None
    async with client.stream("POST", url, json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if ttft is None and '"content":"' in line and '"content":""' not in line:
                ttft = time.perf_counter() - t0
            if line == "data: [DONE]":
                break
    return time.perf_counter() - t0, ttft or 0.0


async def run_path(url: str, model: str, n: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(one(client, url, model, "copy: warm") for _ in range(concurrency)))
        sem = asyncio.Semaphore(concurrency)
        lat: list[float] = []
        ttft: list[float] = []

        async def task(i: int) -> None:
            async with sem:
                total, first = await one(client, url, model, f"reverse: word{i % 97}")
                lat.append(total)
                ttft.append(first)

        t0 = time.perf_counter()
        await asyncio.gather(*(task(i) for i in range(n)))
        wall = time.perf_counter() - t0
    return {
        "p50_ms": statistics.median(lat) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "ttft_p50_ms": statistics.median(ttft) * 1e3,
        "requests_per_s": n / wall,
    }


async def compare(direct: str, via: str, n: int, concurrency: int, rounds: int) -> dict[str, object]:
    # Interleave rounds so both paths see the same machine noise.
    d_runs, g_runs = [], []
    for _ in range(rounds):
        d_runs.append(await run_path(direct, "teacher", n // rounds, concurrency))
        g_runs.append(await run_path(via, "teacher", n // rounds, concurrency))

    def avg(runs: list[dict[str, float]]) -> dict[str, float]:
        return {k: round(statistics.mean(r[k] for r in runs), 3) for k in runs[0]}

    d, g = avg(d_runs), avg(g_runs)
    return {
        "concurrency": concurrency,
        "requests": n,
        "direct": d,
        "gateway": g,
        "added_p50_ms": round(g["p50_ms"] - d["p50_ms"], 3),
        "added_p99_ms": round(g["p99_ms"] - d["p99_ms"], 3),
        "throughput_ratio": round(g["requests_per_s"] / d["requests_per_s"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with start_testbed_teacher(tmp) as up:
            cfg = {
                "student": {"kind": "testbed", "name": "student"},
                "teacher": {"kind": "openai", "name": "teacher", "url": up.url},
                "teacher_log": {"sink": "none"},
            }
            with start_gateway(tmp, cfg) as gw:
                results = []
                for c in args.concurrency:
                    n = args.requests if c > 1 else max(200, args.requests // 5)
                    results.append(
                        asyncio.run(
                            compare(
                                f"{up.url}/chat/completions", f"{gw.url}/chat/completions", n, c, args.rounds
                            )
                        )
                    )
    print(json.dumps({"benchmark": "gateway_overhead", "results": results}, indent=2))


if __name__ == "__main__":
    main()
