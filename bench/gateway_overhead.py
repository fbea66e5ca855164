"""Gateway overhead, side by side: the same streaming workload sent straight to an upstream
OpenAI-compatible server, through distillserve, and through a LiteLLM proxy on the same upstream,
in one run, interleaved round by round.

The upstream is the testbed teacher served as its own process (answers in microseconds, so what
we measure is the gateway). Per concurrency: for every path the median over rounds of p50/p99
latency, TTFT and throughput, with their spread (min–max over rounds), and the added latency
and throughput ratio against direct, computed round by round (same machine noise) and then
taken as a median. Prints one JSON object.

LiteLLM is a peer, never a dependency: it lives in its own venv under ``.cache/bench-venvs``
(created on first use with ``--install-litellm``; without it and without the venv, LiteLLM is
skipped and the command to create it is printed).

    .venv/bin/python bench/gateway_overhead.py [--requests 400] [--concurrency 1 32] [--rounds 5]
        [--workers 1] [--install-litellm | --no-litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.percentiles import pct  # noqa: E402
from tests.support.processes import free_port, running  # noqa: E402
from tests.support.servers import start_gateway, start_testbed_teacher  # noqa: E402

LITELLM_VERSION = "1.80.0"  # pinned (1.107.0 was reported compromised)
LITELLM_VENV = ROOT / ".cache" / "bench-venvs" / f"litellm-{LITELLM_VERSION}"
LITELLM_INSTALL = (
    f"python3 -m venv {LITELLM_VENV} && {LITELLM_VENV}/bin/pip install 'litellm[proxy]=={LITELLM_VERSION}'"
)


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


def median_and_spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


async def compare(
    paths: dict[str, tuple[str, str]], n: int, concurrency: int, rounds: int
) -> dict[str, object]:
    """``paths``: name -> (chat URL, model); ``direct`` is the reference."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    for r in range(rounds):
        # Rotate the order each round so no path always runs right after another's load.
        names = list(paths)[r % len(paths) :] + list(paths)[: r % len(paths)]
        for name in names:
            url, model = paths[name]
            runs[name].append(await run_path(url, model, n, concurrency))
    out: dict[str, object] = {"concurrency": concurrency, "requests_per_round": n, "rounds": rounds}
    for name, rs in runs.items():
        out[name] = {k: median_and_spread([x[k] for x in rs]) for k in rs[0]}
    direct = runs["direct"]
    for name, rs in runs.items():
        if name == "direct":
            continue
        out[f"{name}_vs_direct"] = {
            "added_p50_ms": median_and_spread(
                [g["p50_ms"] - d["p50_ms"] for g, d in zip(rs, direct, strict=True)]
            ),
            "added_p99_ms": median_and_spread(
                [g["p99_ms"] - d["p99_ms"] for g, d in zip(rs, direct, strict=True)]
            ),
            "throughput_ratio": median_and_spread(
                [g["requests_per_s"] / d["requests_per_s"] for g, d in zip(rs, direct, strict=True)]
            ),
        }
    return out


def ensure_litellm(install: bool) -> Path | None:
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    if not install:
        print(
            f"LiteLLM skipped: no venv at {LITELLM_VENV}; create it with\n  {LITELLM_INSTALL}",
            file=sys.stderr,
        )
        return None
    subprocess.run(["python3", "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]
    subprocess.run(pip, check=True)
    return exe


@contextlib.contextmanager
def start_litellm(exe: Path, tmp: Path, upstream: str) -> Iterator[str]:
    """A LiteLLM proxy (one worker) in front of ``upstream``; yields its chat URL."""
    port = free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: teacher\n"
        "    litellm_params:\n"
        "      model: openai/teacher\n"
        f"      api_base: {upstream}\n"
        "      api_key: none\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "NO_PROXY": "127.0.0.1"}
    args = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    with running(
        args,
        ready_url=f"http://127.0.0.1:{port}/health/liveliness",
        timeout=180,
        env=env,
        log_path=tmp / "litellm.log",
    ):
        yield f"http://127.0.0.1:{port}/v1/chat/completions"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400, help="requests per path per round")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1, help="distillserve gateway workers")
    ap.add_argument("--install-litellm", action="store_true", help=f"create {LITELLM_VENV} if missing")
    ap.add_argument("--no-litellm", action="store_true")
    args = ap.parse_args()
    litellm = None if args.no_litellm else ensure_litellm(args.install_litellm)
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        tmp = Path(d)
        up = stack.enter_context(start_testbed_teacher(tmp))
        cfg = {
            "student": {"kind": "testbed", "name": "student"},
            "teacher": {"kind": "openai", "name": "teacher", "url": up.url},
            "teacher_log": {"sink": "none"},
            "server": {"workers": args.workers},
        }
        gw = stack.enter_context(start_gateway(tmp, cfg))
        paths = {
            "direct": (f"{up.url}/chat/completions", "teacher"),
            "distillserve": (f"{gw.url}/chat/completions", "teacher"),
        }
        if litellm is not None:
            paths["litellm"] = (stack.enter_context(start_litellm(litellm, tmp, up.url)), "teacher")
        results = [asyncio.run(compare(paths, args.requests, c, args.rounds)) for c in args.concurrency]
    report = {
        "benchmark": "gateway_overhead",
        "workers": args.workers,
        "load_average": os.getloadavg(),
        "litellm": LITELLM_VERSION if litellm else None,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
