"""What shadow sampling costs the client: the same student-routed chat requests through a
gateway without shadowing and through one that also sends every request to the teacher in
the background (``monitoring.shadow_rate: 1.0``), interleaved in one run.

The student and the teacher are the testbed oracle served as their own processes; the
teacher answers after ``--teacher-delay`` seconds, like a slow reasoning model. Prints one
JSON object: per gateway p50/p99 client latency, and the added latency with shadowing.

    .venv/bin/python bench/shadow_overhead.py [--requests 400] [--concurrency 8] [--teacher-delay 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.percentiles import pct
from tests.support.prometheus import sample, scrape
from tests.support.servers import Server, start_gateway, start_testbed_teacher


def config(tmp: Path, student: Server, teacher: Server, rate: float) -> dict:
    return {
        "student": {"kind": "openai", "name": "student", "url": student.url},
        "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url, "timeout_s": 60},
        "teacher_log": {"sink": "none"},
        "monitoring": {"shadow_rate": rate, "shadow_max_concurrency": 64, "shadow_timeout_s": 30},
    }


async def round_trip(client: httpx.AsyncClient, url: str, i: int) -> float:
    body = {"model": "student", "messages": [{"role": "user", "content": f"copy: word{i}"}]}
    t0 = time.perf_counter()
    r = await client.post(url, json=body)
    r.raise_for_status()
    return time.perf_counter() - t0


async def load(url: str, n: int, concurrency: int) -> list[float]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(i: int) -> float:
            async with sem:
                return await round_trip(client, url, i)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--teacher-delay", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with (
            start_testbed_teacher(tmp, "--first-token-delay", str(args.teacher_delay)) as teacher,
            start_testbed_teacher(tmp, name="student") as student,
            start_gateway(tmp, config(tmp, student, teacher, 0.0)) as plain,
            start_gateway(tmp, config(tmp, student, teacher, 1.0)) as shadowed,
        ):
            lat: dict[str, list[float]] = {"plain": [], "shadow": []}
            per_round = args.requests // args.rounds
            for _ in range(args.rounds):  # interleaved: both sides see the same machine load
                for name, gw in (("plain", plain), ("shadow", shadowed)):
                    lat[name] += asyncio.run(load(f"{gw.url}/chat/completions", per_round, args.concurrency))
            time.sleep(args.teacher_delay + 1)
            s = scrape(f"http://127.0.0.1:{shadowed.port}/metrics")
            pairs = {
                o: sample(s, "distillserve_shadow_pairs_total", outcome=o)
                for o in ("agree", "disagree", "skipped_busy", "teacher_timeout", "teacher_error")
            }
    out: dict[str, object] = {
        "requests_per_side": len(lat["plain"]),
        "concurrency": args.concurrency,
        "teacher_delay_s": args.teacher_delay,
        "shadow_pairs": pairs,
    }
    for name, xs in lat.items():
        out[name] = {"p50_ms": round(pct(xs, 0.5) * 1e3, 2), "p99_ms": round(pct(xs, 0.99) * 1e3, 2)}
    out["added_p50_ms"] = round((pct(lat["shadow"], 0.5) - pct(lat["plain"], 0.5)) * 1e3, 2)
    out["added_p99_ms"] = round((pct(lat["shadow"], 0.99) - pct(lat["plain"], 0.99)) * 1e3, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
