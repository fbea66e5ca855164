"""Triton backend vs OpenAI HTTP backend: the same oracle behind both, in one run, interleaved.

The testbed oracle answers in microseconds, so what is measured is each path's transport:
gRPC stream to a real tritonserver (PyTriton, the vLLM-backend tensor interface) vs SSE
over HTTP to the oracle's own OpenAI-compatible server. Backends are driven in-process
(no gateway), sequentially and with concurrency. Prints one JSON object.

    .venv/bin/python bench/triton_backend.py [--requests 300] [--concurrency 16]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.percentiles import pct
from distillserve.backends.factory import build_backend
from distillserve.config import OpenAIBackendConfig, TritonBackendConfig
from distillserve.protocol.backend import Backend
from distillserve.protocol.schema import ChatCompletionRequest
from tests.support.servers import start_testbed_teacher
from tests.support.triton_server import start_triton

PROMPT = "reverse: distillation"


async def one(backend: Backend, stream: bool) -> tuple[float, float]:
    req = ChatCompletionRequest(
        model="teacher", messages=[{"role": "user", "content": PROMPT}], stream=stream
    )
    t0 = time.perf_counter()
    if not stream:
        body = await backend.chat(req)
        assert body["choices"][0]["message"]["content"] == PROMPT.split(": ")[1][::-1]
        dt = time.perf_counter() - t0
        return dt, dt
    ttft = None
    async for chunk in backend.chat_stream(req):
        if ttft is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            ttft = time.perf_counter() - t0
    return time.perf_counter() - t0, ttft or 0.0


async def run(backend: Backend, n: int, concurrency: int, stream: bool) -> dict[str, float]:
    lat: list[float] = []
    ttfts: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def task() -> None:
        async with sem:
            total, first = await one(backend, stream)
            lat.append(total)
            ttfts.append(first)

    t0 = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(n)))
    wall = time.perf_counter() - t0
    return {
        "p50_ms": round(statistics.median(lat) * 1000, 2),
        "p99_ms": round(pct(lat, 0.99) * 1000, 2),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 2),
        "req_per_s": round(n / wall, 1),
    }


async def bench(
    triton_cfg: TritonBackendConfig, http_cfg: OpenAIBackendConfig, n: int, concurrency: int
) -> dict:
    backends = {"triton": build_backend(triton_cfg), "openai_http": build_backend(http_cfg)}
    for b in backends.values():
        await b.start()
        await one(b, True)  # warm-up: connections, metadata, template
    out: dict = {}
    try:
        for label, stream, conc in (
            ("blocking_seq", False, 1),
            ("stream_seq", True, 1),
            ("stream_conc", True, concurrency),
        ):
            for name, b in backends.items():
                out.setdefault(label, {})[name] = await run(b, n, conc, stream)
            t, h = out[label]["triton"], out[label]["openai_http"]
            out[label]["triton_over_http_p50"] = round(t["p50_ms"] / h["p50_ms"], 2)
            out[label]["triton_over_http_throughput"] = round(t["req_per_s"] / h["req_per_s"], 2)
    finally:
        for b in backends.values():
            await b.aclose()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with (
            start_triton(tmp, {"teacher": {"kind": "testbed", "name": "teacher"}}) as tr,
            start_testbed_teacher(tmp) as t,
        ):
            triton_cfg = TritonBackendConfig(
                name="teacher",
                url=tr.http_url,
                triton_grpc_url=tr.grpc_url,
                chat_template="{% for m in messages %}{{ m.content }}\n{% endfor %}",
            )
            http_cfg = OpenAIBackendConfig(name="teacher", url=t.url)
            result = asyncio.run(bench(triton_cfg, http_cfg, args.requests, args.concurrency))
    print(
        json.dumps(
            {"requests": args.requests, "concurrency": args.concurrency, "answer_chars": 12, **result},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
