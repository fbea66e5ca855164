"""vLLM's CPU build serving SmolLM2 while LoRA training runs on the same cores: pinned or not.

``distillserve demo --student vllm`` runs vLLM and the distiller on one machine. vLLM's CPU
worker runs an OpenMP team bound to cores (``VLLM_CPU_OMP_THREADS_BIND``; default ``auto``:
every core), and a team waits for its slowest thread, so a training thread that preempts one of
its members stalls every decode step. Sides, each with a fresh vLLM:

- ``auto``: vLLM on every core, training (1 thread) wherever the scheduler puts it;
- ``pinned``: vLLM on core 0 (``cpu_omp_threads_bind: "0"``), training on core 1
  (``distiller.cpu_affinity: [1]``) — what the vLLM demo does.

Each side measures chat requests (``--concurrency`` in flight, greedy, ``--max-tokens``) quiet
first, then beside a SmolLM2 LoRA training loop (the real model, batch 4 × 64 tokens, one thread),
and counts the training steps done meanwhile. Prints JSON.

``--lora`` adds two pinned sides that answer through a rank-8 LoRA adapter (the demo's), loaded
by the admin call the gateway makes: vLLM's CPU build has no LoRA kernels (it falls back to
PyTorch ops for punica) and pads every adapter to ``--max-lora-rank``, so one side runs the demo's
default 16, the other 8 (``--lora-side RANK:DTYPE`` picks others, e.g. ``8:float32``: the
fallback's ops in float32 rather than bfloat16; ``16:auto:upstream``: vLLM's own per-token LoRA
ops rather than distillserve's grouped ones, ``distillserve/vllm_plugins/cpu_lora.py``).

    .venv/bin/python bench/vllm_beside_training.py [--requests 24] [--concurrency 4] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import httpx

from bench.percentiles import pct
from distillserve.backends.vllm_engine_args import VLLMEngineArgs
from distillserve.launchers.child_process import free_port, stop_process
from distillserve.launchers.vllm_process import VLLMProcess
from distillserve.models.prepared import ensure_smollm2
from distillserve.vllm_plugins import cpu_lora

PROMPTS = [
    "What is 17 + 25? Answer with the number.",
    "Name three colours of the rainbow.",
    "Convert 3 km to metres.",
    "What weekday comes after Tuesday?",
]


def train_forever(steps_file: Path, cores: list[int] | None) -> None:
    """The training side: SmolLM2 + LoRA, one thread, steps counted in ``steps_file``."""
    import torch

    from distillserve.config import LoraAdapterConfig
    from distillserve.distiller.trainer import load_model, with_adapter

    if cores:
        os.sched_setaffinity(0, cores)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = with_adapter(load_model(ensure_smollm2(), "cpu"), LoraAdapterConfig(rank=8, alpha=16), None)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 49152, (4, 64))
    steps = 0
    while True:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        steps += 1
        steps_file.write_text(str(steps))


def write_adapter(out: Path) -> Path:
    """A rank-8 LoRA on SmolLM2 (the demo's config), its B matrices nudged off zero so the adapter
    is not a no-op; what it answers does not matter here, only what serving it costs."""
    import torch

    from distillserve.config import LoraAdapterConfig
    from distillserve.distiller.trainer import load_model, with_adapter

    torch.manual_seed(0)
    model = with_adapter(load_model(ensure_smollm2(), "cpu"), LoraAdapterConfig(rank=8, alpha=16), None)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1e-3)
    model.save_pretrained(str(out))
    return out


def load_adapter(url: str, name: str, path: Path) -> None:
    r = httpx.post(
        url.removesuffix("/v1") + "/v1/load_lora_adapter",
        json={"lora_name": name, "lora_path": str(path)},
        timeout=120,
    )
    r.raise_for_status()


async def chat_latencies(
    url: str, requests: int, concurrency: int, max_tokens: int, model: str = "base"
) -> dict[str, float]:
    gate = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(client: httpx.AsyncClient, i: int) -> float:
        nonlocal tokens
        async with gate:
            t0 = time.perf_counter()
            r = await client.post(
                f"{url}/chat/completions",
                json={
                    "model": model,
                    "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "ignore_eos": True,  # every request decodes max_tokens: comparable sides
                },
            )
            r.raise_for_status()
            tokens += r.json()["usage"]["completion_tokens"]
            return time.perf_counter() - t0

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as client:
        lat = await asyncio.gather(*(one(client, i) for i in range(requests)))
    wall = time.perf_counter() - started
    ms = [x * 1000 for x in lat]
    return {
        "p50_ms": round(pct(ms, 0.5), 1),
        "p99_ms": round(pct(ms, 0.99), 1),
        "tokens_per_s": round(tokens / wall, 2),
        "seconds": round(wall, 1),
    }


def start_training(steps_file: Path, cores: list[int] | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--train", str(steps_file)]
    if cores:
        cmd += ["--cores", ",".join(map(str, cores))]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for_steps(steps_file: Path, at_least: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if steps_file.is_file() and steps_file.read_text() and int(steps_file.read_text()) >= at_least:
            return
        time.sleep(1)
    raise RuntimeError("the training side did not start")


def steps(steps_file: Path) -> int:
    return int(steps_file.read_text() or 0)


def side(
    name: str,
    bind: str | None,
    train_cores: list[int] | None,
    a: argparse.Namespace,
    tmp: Path,
    *,
    adapter: Path | None = None,
    max_lora_rank: int = 16,
    dtype: str = "auto",
    lora_ops: str = "grouped",
) -> dict[str, Any]:
    args = VLLMEngineArgs(
        max_model_len=512, cpu_omp_threads_bind=bind, max_lora_rank=max_lora_rank, dtype=dtype
    )
    engine = VLLMProcess(
        ensure_smollm2(),
        port=free_port(),
        args=args,
        log_path=tmp / f"vllm-{name}.log",
        env={**os.environ, cpu_lora.SWITCH: lora_ops},  # this side's engine only, not the bench's process
    )
    engine.start()
    trainer = None
    model = "base"
    try:
        engine.wait_ready(900)
        if adapter is not None:
            model = "student@v1"
            load_adapter(engine.url, model, adapter)

        def measure() -> dict[str, float]:
            return asyncio.run(chat_latencies(engine.url, a.requests, a.concurrency, a.max_tokens, model))

        asyncio.run(chat_latencies(engine.url, 4, a.concurrency, a.max_tokens, model))  # warm-up
        quiet = measure()
        steps_file = tmp / f"steps-{name}"
        trainer = start_training(steps_file, train_cores)
        wait_for_steps(steps_file, 2)
        before, t0 = steps(steps_file), time.perf_counter()
        busy = measure()
        rate = (steps(steps_file) - before) / (time.perf_counter() - t0)
        if trainer.poll() is not None:
            raise RuntimeError("the training side ended early")
    finally:
        if trainer is not None:
            stop_process(trainer)
        engine.stop()
    return {"vllm_bind": bind or "auto", "train_cores": train_cores or "any", "model": model,
            "max_lora_rank": max_lora_rank, "dtype": dtype, "lora_ops": lora_ops, "quiet": quiet, "beside_training": busy,
            "training_steps_per_s": round(rate, 3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--lora", action="store_true", help="also the pinned sides through a LoRA adapter")
    ap.add_argument("--only-lora", action="store_true", help="the LoRA sides alone")
    ap.add_argument(
        "--lora-side",
        action="append",
        default=None,
        metavar="RANK:DTYPE[:OPS]",
        help="a LoRA side's --max-lora-rank, --dtype and CPU LoRA ops, grouped (distillserve's "
        "plugin, the default) or upstream (vLLM's own); repeatable (default 16:auto:upstream, "
        "16:auto and 8:auto)",
    )
    ap.add_argument("--train", type=Path, default=None, help=argparse.SUPPRESS)  # internal: the trainer
    ap.add_argument("--cores", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.train is not None:
        train_forever(a.train, [int(c) for c in a.cores.split(",")] if a.cores else None)
        return
    import tempfile

    cores = sorted(os.sched_getaffinity(0))
    pin, rest = str(cores[0]), cores[1:] or cores
    with tempfile.TemporaryDirectory(prefix="vllm-beside-training-") as tmp:
        sides: dict[str, dict[str, Any]] = {}
        if not a.only_lora:
            sides["auto"] = side("auto", None, None, a, Path(tmp))
            sides["pinned"] = side("pinned", pin, rest, a, Path(tmp))
        if a.lora or a.only_lora:
            adapter = write_adapter(Path(tmp) / "adapter")
            for spec in a.lora_side or ["16:auto:upstream", "16:auto", "8:auto"]:
                rank, dtype, ops = (spec + ":grouped").split(":")[:3]
                name = f"pinned_lora_max_rank_{rank}" + ("" if dtype == "auto" else f"_{dtype}")
                name += "_upstream_ops" if ops == "upstream" else ""
                sides[name] = side(
                    name, pin, rest, a, Path(tmp), adapter=adapter, max_lora_rank=int(rank), dtype=dtype,
                    lora_ops=ops,
                )  # fmt: skip
    out: dict[str, Any] = {"cores": len(cores), "sides": sides}
    pairs = [("pinned", "auto")] + [(n, "pinned") for n in sides if n.startswith("pinned_lora")]
    pairs += [(n, "pinned_lora_max_rank_16") for n in sides if n.startswith("pinned_lora_max_rank_8")]
    pairs += [("pinned_lora_max_rank_16", "pinned_lora_max_rank_16_upstream_ops")]
    for num, den in pairs:
        if num in sides and den in sides:
            out[f"{num}_over_{den}_beside_training"] = {
                k: round(sides[num]["beside_training"][k] / sides[den]["beside_training"][k], 2)
                for k in ("p50_ms", "tokens_per_s")
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
