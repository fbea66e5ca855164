"""Mixed-difficulty traffic sent through the OpenAI endpoint with the official SDK, as an
application would, and graded against the testbed's exact answers."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import openai

from distillserve.testbed.tasks import TASKS


@dataclass(frozen=True)
class Outcome:
    t: float  # seconds since the traffic started
    task: str
    route: str
    model: str
    correct: bool
    latency_s: float
    ttft_s: float
    error: str | None = None
    prompt: str = ""
    answer: str = ""


@dataclass(frozen=True)
class TrafficMix:
    """Task name -> weight."""

    weights: dict[str, float]

    def draw(self, rng: random.Random) -> tuple[str, str, str]:
        names = list(self.weights)
        task = rng.choices(names, weights=[self.weights[n] for n in names])[0]
        prompt, answer = TASKS[task].prompt(rng)
        return task, prompt, answer


DEFAULT_MIX = TrafficMix({"copy": 0.1, "upper": 0.1, "first": 0.05, "reverse": 0.6, "add": 0.15})


async def one_request(
    client: openai.AsyncOpenAI, task: str, prompt: str, answer: str, started: float, model: str = "auto"
) -> Outcome:
    t0 = time.perf_counter()
    ttft = 0.0
    text, route, served = "", "error", ""
    try:
        resp = await client.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0.0,
            max_tokens=32,
            stream=True,
        )
        route = resp.headers.get("x-distillserve-route", "?")
        served = resp.headers.get("x-distillserve-model", "")
        async for chunk in resp.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                if not ttft:
                    ttft = time.perf_counter() - t0
                text += chunk.choices[0].delta.content
    except openai.APIError as exc:
        return Outcome(
            t0 - started,
            task,
            "error",
            "",
            False,
            time.perf_counter() - t0,
            0.0,
            str(exc)[:200],
            prompt,
            answer,
        )
    return Outcome(
        t0 - started,
        task,
        route,
        served,
        text.strip() == answer,
        time.perf_counter() - t0,
        ttft or 0.0,
        None,
        prompt,
        answer,
    )


async def drive(
    client: openai.AsyncOpenAI,
    *,
    duration_s: float,
    rate_per_s: float,
    mix: TrafficMix = DEFAULT_MIX,
    seed: int = 0,
    concurrency: int = 16,
    on_outcome: Callable[[Outcome], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[Outcome]:
    """Open-loop traffic at ``rate_per_s`` (Poisson arrivals) for ``duration_s``."""
    rng = random.Random(seed)
    sem = asyncio.Semaphore(concurrency)
    outcomes: list[Outcome] = []
    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()

    async def run(task: str, prompt: str, answer: str) -> None:
        async with sem:
            o = await one_request(client, task, prompt, answer, started)
        outcomes.append(o)
        if on_outcome:
            on_outcome(o)

    while time.perf_counter() - started < duration_s and not (stop and stop.is_set()):
        t = asyncio.create_task(run(*mix.draw(rng)))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        await asyncio.sleep(rng.expovariate(rate_per_s))
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    return sorted(outcomes, key=lambda o: o.t)
