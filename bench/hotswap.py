"""Hot-swap on a real vLLM (CPU build here): how soon the new version serves after a promote,
how many requests fail during swaps, and what the gateway adds over calling vLLM directly.

One run, one vLLM server on the testbed student, the gateway in front of it, adapters
trained with peft to answer with one repeated digit (so each chunk's version is known).

1. Overhead: the same blocking chat requests straight to vLLM (``model: student@v1``) and
   through the gateway (``model: student``), interleaved rounds, at each concurrency.
2. Swaps: ``--swaps`` promotes through the admin API while ``--clients`` streaming clients
   run without pause. Per swap: the admin call's duration (validate, load, probe, switch)
   and the time from the promote until the first chunk of the new version reaches a
   client; over all swaps: requests started, failed, success rate.

Prints one JSON object.

    .venv/bin/python bench/hotswap.py [--swaps 5] [--clients 16] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.percentiles import pct
from distillserve.backends.vllm_engine_args import VLLMEngineArgs
from distillserve.launchers.vllm_process import VLLMProcess
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.adapters import train_answer_adapter
from tests.support.processes import free_port
from tests.support.servers import start_gateway, start_testbed_teacher

ADMIN = "adm-bench"
MAX_TOKENS = 16
ARGS = VLLMEngineArgs(max_lora_rank=16, max_loras=2, max_model_len=512)


def body(model: str, content: str, stream: bool = False) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": stream,
    }


# -- 1. overhead ---------------------------------------------------------------------------------
async def run_path(url: str, model: str, n: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        sem = asyncio.Semaphore(concurrency)
        lat: list[float] = []

        async def one(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await client.post(url, json=body(model, f"copy: word{i % 89}"))
                r.raise_for_status()
                lat.append(time.perf_counter() - t0)

        await asyncio.gather(*(one(i) for i in range(concurrency)))  # warm connections
        lat.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    return {
        "p50_ms": statistics.median(lat) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "requests_per_s": n / wall,
    }


async def overhead(direct: str, gateway: str, n: int, concurrency: int, rounds: int) -> dict[str, object]:
    d_runs, g_runs = [], []
    for _ in range(rounds):  # interleaved, so both paths see the same machine noise
        d_runs.append(await run_path(direct + "/chat/completions", "student@v1", n // rounds, concurrency))
        g_runs.append(await run_path(gateway + "/chat/completions", "student", n // rounds, concurrency))

    def avg(runs: list[dict[str, float]]) -> dict[str, float]:
        return {k: round(statistics.mean(r[k] for r in runs), 3) for k in runs[0]}

    d, g = avg(d_runs), avg(g_runs)
    return {
        "concurrency": concurrency,
        "requests": n,
        "direct_vllm": d,
        "gateway": g,
        "latency_ratio_p50": round(g["p50_ms"] / d["p50_ms"], 3),
        "latency_ratio_p99": round(g["p99_ms"] / d["p99_ms"], 3),
        "added_p50_ms": round(g["p50_ms"] - d["p50_ms"], 3),
        "throughput_ratio": round(g["requests_per_s"] / d["requests_per_s"], 3),
    }


# -- 2. swaps under load -------------------------------------------------------------------------
@dataclass
class Outcome:
    started: float
    first_chunk: float | None = None
    model: str | None = None
    text: str = ""
    error: str | None = None


async def stream_forever(
    client: httpx.AsyncClient, url: str, i: int, stop: asyncio.Event, out: list[Outcome]
) -> None:
    while not stop.is_set():
        o = Outcome(time.perf_counter())
        out.append(o)
        try:
            async with client.stream("POST", url, json=body("student", f"copy: c{i}", stream=True)) as r:
                if r.status_code != 200:
                    o.error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                    continue
                async for line in r.aiter_lines():
                    if not line.startswith("data: {"):
                        continue
                    event = json.loads(line[6:])
                    if "error" in event:
                        o.error = str(event["error"])
                        break
                    if o.first_chunk is None:
                        o.first_chunk, o.model = time.perf_counter(), event.get("model")
                    for c in event.get("choices") or []:
                        o.text += (c.get("delta") or {}).get("content") or ""
        except httpx.HTTPError as exc:
            o.error = f"{type(exc).__name__}: {exc}"
        if o.error is None and not (o.text and set(o.text) <= set("123")):
            o.error = f"unexpected answer {o.text!r}"


async def swaps(
    gw_port: int, gw_url: str, adapters: dict[str, Path], n_swaps: int, clients: int
) -> dict[str, object]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    out: list[Outcome] = []
    stop = asyncio.Event()
    per_swap = []
    async with (
        httpx.AsyncClient(limits=limits, timeout=120) as client,
        httpx.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {ADMIN}"}) as admin,
    ):
        workers = [
            asyncio.create_task(stream_forever(client, gw_url + "/chat/completions", i, stop, out))
            for i in range(clients)
        ]
        await asyncio.sleep(3.0)  # load is flowing
        window_start = time.perf_counter()
        for k in range(n_swaps):
            name, path = f"student@s{k}", adapters["v2" if k % 2 == 0 else "v3"]
            t0 = time.perf_counter()
            r = await admin.post(
                f"http://127.0.0.1:{gw_port}/admin/student/activate", json={"name": name, "path": str(path)}
            )
            t1 = time.perf_counter()
            r.raise_for_status()
            await asyncio.sleep(2.0)  # serve on the new version, let the old one drain and unload
            firsts = [o.first_chunk for o in out if o.model == name and o.first_chunk]
            per_swap.append(
                {
                    "name": name,
                    "promote_call_s": round(t1 - t0, 4),
                    "new_version_first_chunk_after_promote_s": round(min(firsts) - t0, 4) if firsts else None,
                }
            )
        stop.set()
        await asyncio.gather(*workers)
    during = [o for o in out if o.started >= window_start]
    failed = [o for o in during if o.error]
    serving = [s["new_version_first_chunk_after_promote_s"] for s in per_swap]
    return {
        "swaps": n_swaps,
        "streaming_clients": clients,
        "requests_during_swaps": len(during),
        "failed": len(failed),
        "success_rate": round(1 - len(failed) / max(1, len(during)), 6),
        "failure_examples": [o.error for o in failed[:3]],
        "promote_call_s": {
            "median": round(statistics.median(s["promote_call_s"] for s in per_swap), 4),
            "max": max(s["promote_call_s"] for s in per_swap),
        },
        "new_version_serving_after_promote_s": {
            "median": round(statistics.median(x for x in serving if x is not None), 4)
            if any(serving)
            else None,
            "max": max((x for x in serving if x is not None), default=None),
        },
        "per_swap": per_swap,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--swaps", type=int, default=5)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=200, help="per concurrency, for the overhead part")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    base = ensure_testbed_student(pretrain=False)  # adapters decide every answer here
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        engine = VLLMProcess(base, port=free_port(), served_name="base", args=ARGS, log_path=tmp / "vllm.log")
        engine.start()
        try:
            t_train = time.perf_counter()
            adapters = {
                f"v{i}": train_answer_adapter(base, tmp / f"v{i}", str(i) * 24, seed=i) for i in (1, 2, 3)
            }
            train_s = time.perf_counter() - t_train
            startup_s = engine.wait_ready(900)
            with start_testbed_teacher(tmp) as teacher:
                cfg = {
                    "server": {"admin_key": ADMIN},
                    "admin": {"adapter_roots": [str(tmp)]},  # where the versions were trained
                    "student": {
                        "kind": "vllm",
                        "name": "student",
                        "url": engine.url,
                        "upstream_model": "base",
                        "vllm_args": ARGS.model_dump(),
                        "live_adapter": "student@v1",
                        "live_adapter_path": str(adapters["v1"]),
                    },
                    "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url},
                    "teacher_log": {"sink": "none"},
                }
                with start_gateway(tmp, cfg) as gw:
                    deadline = time.monotonic() + 300
                    while time.monotonic() < deadline:
                        st = httpx.get(
                            f"http://127.0.0.1:{gw.port}/admin/student",
                            headers={"Authorization": f"Bearer {ADMIN}"},
                        ).json()
                        if st["live"] == "student@v1":
                            break
                        time.sleep(0.5)
                    results = [
                        asyncio.run(overhead(engine.url, gw.url, args.requests, c, args.rounds))
                        for c in args.concurrency
                    ]
                    swap = asyncio.run(swaps(gw.port, gw.url, adapters, args.swaps, args.clients))
        finally:
            engine.stop()
    print(
        json.dumps(
            {
                "benchmark": "hotswap",
                "vllm_startup_s": round(startup_s, 1),
                "adapter_training_s": round(train_s, 1),
                "overhead": results,
                "hotswap": swap,
                "targets": {"new_version_serving_after_promote_s": 1.0, "failed": 0},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
