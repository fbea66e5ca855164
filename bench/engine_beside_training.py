"""Embedded engine latency while the distiller trains on the same cores: engine threads 0 vs 1.

The demo runs the gateway's embedded student and the distiller on one machine. This starts a
real distiller training run (``bench/distiller_settings.py``: the HF Trainer path, one thread)
in the background and, while it runs, measures chat requests (4 in flight, 16 tokens) on the
testbed student with torch's default thread count and with ``threads=1``. Each side runs in a
fresh process (torch fixes a thread's team size at its first op, so two engines in one process
would share one setting), alternating in rounds so both see the same load. Prints JSON:
latency percentiles per side and their ratio. ``--no-training`` gives the quiet reference.

    .venv/bin/python bench/engine_beside_training.py [--rounds 3] [--no-training]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.percentiles import pct
from distillserve.launchers.child_process import stop_process

ROOT = Path(__file__).resolve().parents[1]
TRAINING = '{"optim": {"epochs": 1000, "lr_scheduler": "cosine"}, "replay": {"ratio": 1.5}}'


async def _latencies(threads: int, requests: int, concurrency: int) -> list[float]:
    from distillserve.engine.engine import EmbeddedEngine
    from distillserve.engine.sampling import SamplingParams
    from distillserve.testbed.tasks import BASE_TASKS, sample

    engine = EmbeddedEngine("testbed-student", threads=threads)
    await asyncio.to_thread(engine.start)
    params = SamplingParams(temperature=0.0, max_tokens=16)
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> float:
        ids = engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_dict=True
        )["input_ids"]
        async with gate:
            t0 = time.perf_counter()
            async for _ in engine.generate(list(ids), params):
                pass
            return time.perf_counter() - t0

    try:
        await one("copy: warm")
        return list(await asyncio.gather(*(one(p) for p, _ in sample(BASE_TASKS, requests, seed=5))))
    finally:
        engine.close()


def measure_side(threads: int, requests: int, concurrency: int) -> list[float]:
    cmd = [sys.executable, __file__, "--side", str(threads), "--requests", str(requests)]
    cmd += ["--concurrency", str(concurrency)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def summary(xs: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in xs]
    return {"n": len(ms), **{f"p{q}": round(pct(ms, q / 100), 1) for q in (50, 90, 99)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-training", action="store_true")
    ap.add_argument("--side", type=int, default=None, help=argparse.SUPPRESS)  # internal: one side
    args = ap.parse_args()
    if args.side is not None:
        print(json.dumps(asyncio.run(_latencies(args.side, args.requests, args.concurrency))))
        return
    trainer = None
    if not args.no_training:
        cmd = [sys.executable, str(ROOT / "bench/distiller_settings.py"), TRAINING]
        trainer = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(15)  # past loading and encoding: training steps are running
    got: dict[str, list[float]] = {"threads_default": [], "threads_1": []}
    try:
        for _ in range(args.rounds):
            got["threads_default"] += measure_side(0, args.requests, args.concurrency)
            got["threads_1"] += measure_side(1, args.requests, args.concurrency)
        if trainer is not None and trainer.poll() is not None:
            raise RuntimeError("the training run ended before the measurement did")
    finally:
        if trainer is not None:
            stop_process(trainer)
    sides = {k: summary(v) for k, v in got.items()}
    ratio = {q: round(sides["threads_default"][q] / sides["threads_1"][q], 2) for q in ("p50", "p90", "p99")}
    result = {"training_alongside": trainer is not None, "concurrency": args.concurrency, "sides": sides}
    print(json.dumps({**result, "ratio_default_over_1": ratio}, indent=2))


if __name__ == "__main__":
    main()
