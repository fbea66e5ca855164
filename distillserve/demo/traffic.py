"""Mixed-difficulty traffic sent through the OpenAI endpoint with the official SDK, as an
application would, and graded against the testbed's exact answers.

Two workloads: the synthetic tasks (``reverse: abc``, graded by exact match) for the tiny testbed
student, and the natural-language ones (word problems, conversions, dates, JSON extraction, each
tagged ``metadata.task`` and graded by its own ``final_answer`` or ``json`` grader) for a real
LLM student such as SmolLM2.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import openai

from distillserve.grading.final_answer import FinalAnswerGrader
from distillserve.grading.grade import Grader
from distillserve.grading.json_answer import JsonGrader
from distillserve.testbed import language
from distillserve.testbed.tasks import TASKS

# The graders the natural-language items name; the synthetic ones compare the bare text exactly.
GRADERS: dict[str, Grader] = {"final_answer": FinalAnswerGrader(), "json": JsonGrader()}


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
    answer: str = ""  # the reference
    grader: str = "exact"
    text: str = ""  # what was served: a wrong answer can be read in outcomes.jsonl


@dataclass(frozen=True)
class TrafficItem:
    task: str
    prompt: str
    answer: str  # the testbed teacher's exact answer
    grader: str = "exact"  # "exact" (synthetic tasks), "final_answer" or "json"

    @property
    def metadata(self) -> dict[str, str] | None:
        # Natural-language requests say their task, so the gateway grades them by its rule.
        return {"task": self.task} if self.task in language.FAMILIES else None

    def is_correct(self, text: str) -> bool:
        if self.grader == "exact":
            return text.strip() == self.answer
        return GRADERS[self.grader].grade(self.prompt, self.answer, text).verdict

    @classmethod
    def of(cls, outcome: Outcome) -> TrafficItem:
        return cls(outcome.task, outcome.prompt, outcome.answer, outcome.grader)


def draw_item(task: str, rng: random.Random) -> TrafficItem:
    if task in language.FAMILIES:
        item = language.draw_item(task, rng)
        return TrafficItem(task, item.prompt, item.answer, item.grader)
    prompt, answer = TASKS[task].prompt(rng)
    return TrafficItem(task, prompt, answer)


@dataclass(frozen=True)
class TrafficMix:
    """Task name (a synthetic task or a natural-language family) -> weight."""

    weights: dict[str, float]
    # Room for the answer: a worked natural-language answer is a few hundred characters.
    max_tokens: int = 32
    # Tasks the student can learn from the teacher: the report's held-out before -> after.
    learnable: tuple[str, ...] = ()
    # What two cores sustain by default: arrivals per second, and requests in flight at once.
    rate_per_s: float = 4.0
    concurrency: int = 8
    # The report's first and last windows: about 120 requests or more, so that one wrong answer
    # moves the last window's quality by under a point.
    window_s: float = 30.0

    def draw(self, rng: random.Random) -> TrafficItem:
        names = list(self.weights)
        task = rng.choices(names, weights=[self.weights[n] for n in names])[0]
        return draw_item(task, rng)


DEFAULT_MIX = TrafficMix(
    {"copy": 0.1, "upper": 0.1, "first": 0.05, "reverse": 0.6, "add": 0.15}, learnable=("reverse",)
)
# Half the traffic is the family SmolLM2-135M learns from the teacher's answers (bench/RESULTS.md,
# "LoRA probe"): the router can only hand the student what it learned, and the target is a
# 30-point drop of the teacher share. The other families stay with the teacher.
LANGUAGE_MIX = TrafficMix(
    {"field_extraction": 0.5, "word_problem": 0.2, "unit_conversion": 0.15, "date_arithmetic": 0.15},
    max_tokens=400,
    learnable=("field_extraction",),
    # SmolLM2 on one engine thread beside training answers ~40-token JSON in seconds, not ms: at
    # 4/s with 8 in flight its p50 was 15.5 s and the client's queue grew without bound (run 1 of
    # bench/RESULTS.md "SmolLM2 demo"); 16 in flight let the engine batch more.
    rate_per_s=2.0,
    concurrency=16,
    window_s=60.0,
)


async def one_request(
    client: openai.AsyncOpenAI,
    item: TrafficItem,
    started: float,
    model: str = "auto",
    max_tokens: int = 32,
) -> Outcome:
    t0 = time.perf_counter()
    ttft = 0.0
    text, route, served = "", "error", ""
    task, prompt, answer = item.task, item.prompt, item.answer
    try:
        resp = await client.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0.0,
            max_tokens=max_tokens,
            stream=True,
            **({"metadata": item.metadata} if item.metadata else {}),
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
            item.grader,
        )
    return Outcome(
        t0 - started,
        task,
        route,
        served,
        item.is_correct(text),
        time.perf_counter() - t0,
        ttft or 0.0,
        None,
        prompt,
        answer,
        item.grader,
        text,
    )


async def ask_each(
    client: openai.AsyncOpenAI, items: list[TrafficItem], model: str, max_tokens: int, concurrency: int = 8
) -> list[Outcome]:
    """Each item once, pinned to ``model`` (no router), at most ``concurrency`` at a time; greedy,
    as the traffic is. The demo's own measurements: the held-out probe and the teacher-only baseline."""
    sem = asyncio.Semaphore(concurrency)

    async def one(item: TrafficItem) -> Outcome:
        async with sem:
            return await one_request(client, item, 0.0, model=model, max_tokens=max_tokens)

    return list(await asyncio.gather(*(one(i) for i in items)))


@dataclass
class Traffic:
    outcomes: list[Outcome]
    # Arrivals the client did not send: it already had ``concurrency`` requests in flight and as
    # many waiting. Open-loop arrivals into a capped client otherwise queue without bound when
    # the server is slower than the rate, and the queue keeps "arriving" long after the run ended.
    not_sent: int = 0


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
) -> Traffic:
    """Open-loop traffic at ``rate_per_s`` (Poisson arrivals) for ``duration_s``."""
    rng = random.Random(seed)
    sem = asyncio.Semaphore(concurrency)
    traffic = Traffic([])
    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()

    async def run(item: TrafficItem) -> None:
        async with sem:
            o = await one_request(client, item, started, max_tokens=mix.max_tokens)
        traffic.outcomes.append(o)
        if on_outcome:
            on_outcome(o)

    while time.perf_counter() - started < duration_s and not (stop and stop.is_set()):
        item = mix.draw(rng)  # drawn either way: the prompts do not depend on the server's speed
        if len(tasks) >= 2 * concurrency:
            traffic.not_sent += 1
        else:
            t = asyncio.create_task(run(item))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.sleep(rng.expovariate(rate_per_s))
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    traffic.outcomes.sort(key=lambda o: o.t)
    return traffic
