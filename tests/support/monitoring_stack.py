"""A gateway under real traffic, scraped by a real Prometheus: what the dashboard test and
the dashboard snapshot (bench/dashboard_snapshot.py) look at.

Processes: the testbed teacher, a student that gets ``reverse`` wrong (so agreement and
drift have something to show), the gateway with shadow sampling on every student request,
and Prometheus scraping the gateway every second with the shipped rules. The distiller,
the Kafka sink and vLLM are not part of it (see the tests for what that leaves empty).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai

from tests.support.flawed_student import start_flawed_student
from tests.support.prometheus import Prometheus, start_prometheus
from tests.support.servers import Server, start_gateway, start_testbed_teacher

KEY = "sk-monitoring"
HARD = (
    "Prove step by step that the algorithm below is optimal, analyze its complexity, and explain why "
    "every invariant holds?\n" + "x = y + z * 2 - w / 3\n" * 6 + "reverse: hello"
)
WORDS = ["alpha", "bravo", "delta", "gamma", "kilo", "lima", "mike", "oscar", "papa", "romeo"]


@dataclass
class Stack:
    gateway: Server
    prometheus: Prometheus


@contextlib.contextmanager
def monitoring_stack(tmp: Path, *, agreement_window: int = 10) -> Iterator[Stack]:
    with (
        start_testbed_teacher(tmp) as teacher,
        start_flawed_student(tmp, wrong="reverse") as student,
        start_gateway(
            tmp,
            {
                "server": {"api_keys": [KEY]},
                "student": {"kind": "openai", "name": "student", "url": student.url, "timeout_s": 10},
                "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url, "timeout_s": 10},
                "router": {"scorer": "heuristic", "policy": "threshold", "threshold": 0.5},
                "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
                "monitoring": {"shadow_rate": 1.0, "agreement_window": agreement_window},
            },
        ) as gw,
        start_prometheus(tmp, {"distillserve-gateway": [f"127.0.0.1:{gw.port}"]}) as prom,
    ):
        prom.wait_scraped()
        yield Stack(gw, prom)


def drive_traffic(
    gw: Server, *, rounds: int = 3, per_round: int = 12, pause: float = 1.5, reverse_from_round: int = 0
) -> dict[str, int]:
    """Mixed traffic through the official SDK: easy prompts (student; from ``reverse_from_round``
    on a third of them are reverse, which this student gets wrong), hard ones (teacher),
    streamed and not, and one request for an unknown model per round."""
    client = openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0)
    counts = {"student": 0, "teacher": 0, "errors": 0}
    for r in range(rounds):
        for i in range(per_round):
            hard = i % 4 == 3
            task = ("copy", "upper", "reverse" if r >= reverse_from_round else "copy")[i % 3]
            prompt = HARD if hard else f"{task}: {WORDS[(r * per_round + i) % len(WORDS)]}"
            messages = [{"role": "user", "content": prompt}]
            if i % 2:
                with client.chat.completions.with_streaming_response.create(
                    model="auto", messages=messages, stream=True, stream_options={"include_usage": True}
                ) as resp:
                    route = resp.headers["x-distillserve-route"]
                    for _ in resp.parse():
                        pass
            else:
                raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
                route = raw.headers["x-distillserve-route"]
            counts[route] += 1
        try:
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        except openai.NotFoundError:
            counts["errors"] += 1
        time.sleep(pause)
    return counts
