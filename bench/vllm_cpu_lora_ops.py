"""vLLM's CPU LoRA ops against distillserve's grouped ones, side by side in one process.

One LoRA projection pair (shrink then expand, ``add_inputs``) on SmolLM2's hidden size (576), one
adapter in the batch (the demo's case), at a decode batch (8 tokens) and prefill sizes (256, 1024
tokens), one thread. vLLM calls this pair for every LoRA-wrapped projection of every layer on
every step (SmolLM2: 30 layers). Prints JSON: ms per pair for each, and upstream / grouped.

    .venv/bin/python bench/vllm_cpu_lora_ops.py [--rank 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from vllm.lora.ops.torch_ops import lora_ops as upstream

from distillserve.vllm_plugins import cpu_lora

HIDDEN, SLOTS = 576, 2


def ms_per_pair(
    shrink: Callable[..., None], expand: Callable[..., None], tokens: int, rank: int, repeats: int
) -> float:
    a = torch.randn(SLOTS, 1, rank, HIDDEN, dtype=torch.bfloat16) * 0.01
    b = torch.randn(SLOTS, 1, HIDDEN, rank, dtype=torch.bfloat16) * 0.01
    x = torch.randn(tokens, HIDDEN, dtype=torch.bfloat16)
    idx = torch.zeros(tokens, dtype=torch.long)
    mid = torch.zeros(tokens, rank, dtype=torch.float32)
    out = torch.zeros(tokens, HIDDEN, dtype=torch.bfloat16)
    shrink(x, a, mid, idx, 1.0)  # warm-up
    expand(mid, b, out, idx, True)
    t0 = time.perf_counter()
    for _ in range(repeats):
        shrink(x, a, mid, idx, 1.0)
        expand(mid, b, out, idx, True)
    return (time.perf_counter() - t0) / repeats * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, default=16, help="vLLM pads adapters to --max-lora-rank")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for tokens in (8, 256, 1024):
        repeats = 200 if tokens <= 8 else 20
        up = ms_per_pair(upstream.bgmv_shrink, upstream.bgmv_expand, tokens, a.rank, repeats)
        ours = ms_per_pair(cpu_lora.bgmv_shrink, cpu_lora.bgmv_expand, tokens, a.rank, repeats)
        rows[str(tokens)] = {
            "upstream_ms": round(up, 3),
            "grouped_ms": round(ours, 3),
            "upstream_over_grouped": round(up / ours, 1),
        }
    print(json.dumps({"rank": a.rank, "hidden": HIDDEN, "threads": 1, "tokens": rows}, indent=2))


if __name__ == "__main__":
    main()
