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
