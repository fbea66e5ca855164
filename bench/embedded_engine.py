"""Embedded engine throughput against plain transformers ``model.generate``, side by side in one run.

Four sides, on the same model, dtype (fp32 on CPU), torch thread count and chat-templated prompts,
greedy, every request generating exactly ``--tokens`` new tokens (the engine ignores end-of-sequence;
``generate`` gets ``min_new_tokens = max_new_tokens``), so every side does the same work:

- ``engine_batch_1``: the engine with ``max_batch_size=1``, requests sent one after another;
- ``generate_batch_1``: ``model.generate`` on one prompt at a time;
- ``engine_batch_N``: the engine with ``max_batch_size=N`` and all ``--requests`` sent at once;
- ``generate_batch_N``: ``model.generate`` on static, left-padded batches of N prompts.

The sides alternate over ``--rounds`` (so a noisy neighbour hurts all of them alike); the JSON
gives each side's median and every run, the engine/generate ratios, and the engine's own
batch-N/batch-1 ratio; the same per CPU-second of the process, a steadier comparison on a busy machine. Run it on a quiet machine for figures worth quoting:

    .venv/bin/python bench/embedded_engine.py --model smollm2 --requests 16 --batch 8 \\
        --tokens 64 --rounds 3 --threads 2

``--model`` takes what the engine takes: a model directory or an alias (``testbed-student``,
``smollm2``). Set ``HF_HUB_OFFLINE=1`` where nothing may be downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch

from distillserve.engine.engine import EmbeddedEngine
from distillserve.engine.sampling import SamplingParams
from distillserve.models.prepared import resolve_model
from distillserve.testbed.tasks import BASE_TASKS, sample

Run = dict[str, float]


def chat_ids(tokenizer: Any, prompt: str) -> list[int]:
    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_dict=True
    )
    return list(enc["input_ids"])


def _summary(generated: int, wall: float, cpu: float, ttfts: list[float] | None = None) -> Run:
    run: Run = {
        "generated_tokens": generated,
        "seconds": round(wall, 3),
        "tokens_per_s": round(generated / wall, 1),
        # Process CPU time (all threads): on a busy machine, where wall time is noise, the
        # tokens per CPU-second still compare the work each side does per token.
        "cpu_seconds": round(cpu, 3),
        "tokens_per_cpu_s": round(generated / cpu, 1),
    }
    if ttfts:
        run["mean_ttft_s"] = round(sum(ttfts) / len(ttfts), 3)
    return run


async def engine_workload(
    engine: EmbeddedEngine, prompts: list[list[int]], tokens: int, *, concurrent: bool
) -> Run:
    params = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True)

    async def one(ids: list[int]) -> tuple[int, float]:
        t0 = time.perf_counter()
        ttft = None
        n = 0
        async for _ in engine.generate(ids, params):
            ttft = ttft or time.perf_counter() - t0
            n += 1
        return n, ttft or 0.0

    start, cpu = time.perf_counter(), time.process_time()
    if concurrent:
        results = await asyncio.gather(*(one(p) for p in prompts))
    else:
        results = [await one(p) for p in prompts]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return _summary(sum(n for n, _ in results), wall, cpu, [t for _, t in results])


def generate_workload(model: Any, tokenizer: Any, prompts: list[list[int]], tokens: int, batch: int) -> Run:
    """``model.generate`` on static batches of ``batch`` prompts (left-padded), one batch after another."""
    generated = 0
    start, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for i in range(0, len(prompts), batch):
            chunk = prompts[i : i + batch]
            enc = tokenizer.pad({"input_ids": chunk}, padding=True, return_tensors="pt")
            out = model.generate(
                **enc,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
            generated += (out.shape[1] - enc["input_ids"].shape[1]) * len(chunk)
    return _summary(generated, time.perf_counter() - start, time.process_time() - cpu)


def _median(runs: list[Run], key: str = "tokens_per_s") -> float:
    return round(statistics.median(r[key] for r in runs), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="testbed-student")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="alternate the sides this many times")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, the same for every side")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)  # generate runs on this thread; the engines set their own
    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prompts = [chat_ids(tokenizer, p) for p, _ in sample(BASE_TASKS, args.requests, seed=3)]

    engines = {
        size: EmbeddedEngine(path, max_batch_size=size, dtype="float32", device="cpu", threads=args.threads)
        for size in (1, args.batch)
    }
    for e in engines.values():
        e.start()
    n = args.batch
    sides: dict[str, Callable[[list[list[int]], int], Run]] = {
        "engine_batch_1": lambda ps, t: asyncio.run(engine_workload(engines[1], ps, t, concurrent=False)),
        "generate_batch_1": lambda ps, t: generate_workload(model, tokenizer, ps, t, 1),
        f"engine_batch_{n}": lambda ps, t: asyncio.run(engine_workload(engines[n], ps, t, concurrent=True)),
        f"generate_batch_{n}": lambda ps, t: generate_workload(model, tokenizer, ps, t, n),
    }
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    try:
        for side in sides.values():  # warm-up: first calls pay one-off allocation costs
            side(prompts[:2], 4)
        for _ in range(args.rounds):
            for name, side in sides.items():
                runs[name].append(side(prompts, args.tokens))
    finally:
        for e in engines.values():
            e.close()

    med = {name: _median(r) for name, r in runs.items()}
    cpu_med = {name: _median(r, "tokens_per_cpu_s") for name, r in runs.items()}
    print(
        json.dumps(
            {
                "model": args.model,
                "requests": args.requests,
                "tokens_per_request": args.tokens,
                "batch": n,
                "threads": args.threads,
                "rounds": args.rounds,
                "median_tokens_per_s": med,
                "engine_over_generate": {
                    "batch_1": round(med["engine_batch_1"] / med["generate_batch_1"], 2),
                    f"batch_{n}": round(med[f"engine_batch_{n}"] / med[f"generate_batch_{n}"], 2),
                },
                "engine_batch_ratio": round(med[f"engine_batch_{n}"] / med["engine_batch_1"], 2),
                "median_tokens_per_cpu_s": cpu_med,
                "engine_over_generate_per_cpu_s": {
                    "batch_1": round(cpu_med["engine_batch_1"] / cpu_med["generate_batch_1"], 2),
                    f"batch_{n}": round(cpu_med[f"engine_batch_{n}"] / cpu_med[f"generate_batch_{n}"], 2),
                },
                "all_runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
