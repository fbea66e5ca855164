"""``server.workers: 2``: the gateway runs two uvicorn worker processes on one port, each built from
the parent's settings (secrets included), and both serve streamed answers from a real upstream
(the testbed teacher as its own server) through the official ``openai`` SDK."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai
import pytest

from tests.support.servers import start_gateway, start_testbed_teacher


def worker_pids(parent: int) -> set[int]:
    """Child processes of the gateway's parent that run the app (uvicorn's spawned workers)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {int(c) for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()}


async def test_two_workers_serve_streams(tmp_path: Path) -> None:
    with start_testbed_teacher(tmp_path) as up:
        cfg = {
            "student": {"kind": "testbed", "name": "student"},
            "teacher": {"kind": "openai", "name": "teacher", "url": up.url},
            "teacher_log": {"sink": "none"},
            "server": {"workers": 2, "api_keys": ["sk-workers"]},
        }
        with start_gateway(tmp_path, cfg, timeout=300) as gw:  # two spawned workers import it all
            deadline = time.monotonic() + 60
            while len(worker_pids(gw.pid)) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert len(worker_pids(gw.pid)) == 2
            client = openai.AsyncOpenAI(base_url=gw.url, api_key="sk-workers", max_retries=0)

            async def ask(i: int) -> str:
                stream = await client.chat.completions.create(
                    model="teacher", messages=[{"role": "user", "content": f"reverse: ab{i}"}], stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

            answers = await asyncio.gather(*(ask(i) for i in range(16)))
            assert answers == [f"ab{i}"[::-1] for i in range(16)]
            # The key reached the workers: a wrong one is refused by them too.
            bad = openai.AsyncOpenAI(base_url=gw.url, api_key="sk-wrong", max_retries=0)
            with pytest.raises(openai.AuthenticationError):
                await bad.chat.completions.create(
                    model="teacher", messages=[{"role": "user", "content": "copy: a"}]
                )
            # /metrics is answered by one worker at a time, and each reports both workers' requests.
            scrapes = [await _requests_total(gw.url) for _ in range(12)]
            assert scrapes == [16.0] * 12, scrapes
            # The gauges combine across workers: one build-info series, not one per worker.
            text = await _metrics_text(gw.url)
            assert len([ln for ln in text.splitlines() if ln.startswith("distillserve_build_info{")]) == 1


async def _metrics_text(gateway_v1: str) -> str:
    import httpx

    async with httpx.AsyncClient() as client:  # a new connection: uvicorn's workers share the socket
        r = await client.get(gateway_v1.removesuffix("/v1") + "/metrics")
    r.raise_for_status()
    return r.text


async def _requests_total(gateway_v1: str) -> float:
    """Requests answered by the teacher route with status 200, summed over every series."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(await _metrics_text(gateway_v1)):
        for s in family.samples:
            if s.name == "distillserve_requests_total" and s.labels.get("status") == "200":
                total += s.value
    return total
