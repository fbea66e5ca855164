"""``distillserve demo``: the whole learning loop on this machine, measured.

Starts the stack (broker, testbed teacher, gateway with the embedded student, distiller),
drives mixed-difficulty traffic through the OpenAI endpoint with the official SDK, shows
a live view, then sends the same prompts to the teacher alone for the baseline and writes
the report. Everything started is stopped at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from distillserve.demo.heldout_probe import HeldoutResult, compare, draw_probe
from distillserve.demo.live_view import LiveView
from distillserve.demo.report import AdapterEvent, Summary, write_report
from distillserve.demo.report_cost import fetch_spend
from distillserve.demo.stack import EVAL_TENANT, STUDENT_NAME, Endpoints, demo_stack
from distillserve.demo.traffic import (
    DEFAULT_MIX,
    LANGUAGE_MIX,
    Outcome,
    TrafficItem,
    TrafficMix,
    ask_each,
    drive,
)
from distillserve.testbed.tasks import TASKS


@dataclass
class DemoOptions:
    out: Path
    duration_s: float = 300.0
    # None: the workload's own (``TrafficMix.rate_per_s`` / ``concurrency``).
    rate_per_s: float | None = None
    concurrency: int | None = None
    student: str = "embedded"
    seed: int = 0
    window_s: float | None = None  # None: the workload's own (``TrafficMix.window_s``)
    # None: the synthetic tasks for the testbed student, the natural-language ones for a real LLM.
    mix: TrafficMix | None = None
    # Keep the traffic going past ``duration_s`` until the registry holds this many versions (any
    # status), for at most ``max_wait_s`` more: a short smoke run waits for its first adapter.
    wait_for_versions: int = 0
    max_wait_s: float = 0.0
    # ...and until the first live version has served for this long, so the last window is measured
    # after the promotion on a slow machine too, not after a fixed wall time (bounded the same way).
    settle_after_live_s: float = 0.0
    # Held-out prompts per learnable task, asked of the student before and after (0: none).
    probe_per_task: int = 24
    # Deep-merged over the generated stack config (e.g. a faster distiller trigger for tests).
    config_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def workload(self) -> TrafficMix:
        return self.mix or mix_for(self.student)

    @property
    def window(self) -> float:
        return self.window_s or self.workload.window_s


class AdapterWatcher:
    """Polls the gateway's admin API and turns registry changes into report events."""

    def __init__(self, ep: Endpoints, started: float) -> None:
        self.ep = ep
        self.started = started
        self.seen: dict[str, str] = {}
        self.events: list[AdapterEvent] = []

    async def poll(self, client: httpx.AsyncClient) -> list[AdapterEvent]:
        try:
            r = await client.get(
                f"{self.ep.gateway_root}/admin/registry/versions",
                headers={"Authorization": f"Bearer {self.ep.admin_key}"},
            )
            r.raise_for_status()
        except httpx.HTTPError:
            return []
        new = []
        for v in r.json().get("data", []):
            version, status = v["version"], v["status"]
            if self.seen.get(version) == status:
                continue
            self.seen[version] = status
            evals = _numbers(v.get("eval") or {})
            e = AdapterEvent(time.perf_counter() - self.started, version, status, evals)
            self.events.append(e)
            new.append(e)
        return new


def _numbers(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of an eval card, keyed by their path (``holdout.exact_match``)."""
    out: dict[str, float] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _numbers(v, key + ".")
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = float(v)
    return out


async def _watch(watcher: AdapterWatcher, view: LiveView, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            for e in await watcher.poll(client):
                view.event(e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)


async def _end_traffic(opts: DemoOptions, watcher: AdapterWatcher, stop: asyncio.Event) -> None:
    """Ends the traffic after the duration, or later while the run still waits for its adapters."""
    while True:
        elapsed = time.perf_counter() - watcher.started
        enough = len(watcher.seen) >= opts.wait_for_versions and _settled(opts, watcher, elapsed)
        if elapsed >= opts.duration_s and (enough or elapsed >= opts.duration_s + opts.max_wait_s):
            stop.set()
            return
        await asyncio.sleep(1.0)


def _settled(opts: DemoOptions, watcher: AdapterWatcher, elapsed: float) -> bool:
    if opts.settle_after_live_s <= 0:
        return True
    live = next((e.t for e in watcher.events if e.status == "live"), None)
    return live is not None and elapsed - live >= opts.settle_after_live_s


def mix_for(student: str) -> TrafficMix:
    return DEFAULT_MIX if student == "embedded" else LANGUAGE_MIX


async def teacher_only(client: openai.AsyncOpenAI, outcomes: list[Outcome], max_tokens: int = 32) -> float:
    """Quality of the teacher alone on exactly the prompts the router served."""
    results = await ask_each(client, [TrafficItem.of(o) for o in outcomes], "teacher", max_tokens)
    return sum(r.correct for r in results) / len(results) if results else float("nan")


async def _run(opts: DemoOptions, view: LiveView) -> tuple[Summary, list[int]]:
    opts.out = opts.out.resolve()  # children run in the repo root
    opts.out.mkdir(parents=True, exist_ok=True)
    mix = opts.workload
    rate, concurrency = opts.rate_per_s or mix.rate_per_s, opts.concurrency or mix.concurrency
    view.set_status("starting broker, teacher, gateway, distiller")
    with demo_stack(opts.out, student=opts.student, config_overrides=opts.config_overrides) as (stack, ep):
        pids = stack.pids()
        client, evaluator = _clients(ep)
        probe = draw_probe(mix.learnable, opts.probe_per_task, opts.seed)
        view.set_status(f"held-out probe: {len(probe)} prompts to the base student")
        before = await ask_each(evaluator, probe, STUDENT_NAME, mix.max_tokens)
        started = time.perf_counter()
        view.started = started
        watcher = AdapterWatcher(ep, started)
        stop = asyncio.Event()
        watch = asyncio.create_task(_watch(watcher, view, stop))
        end_traffic = asyncio.Event()
        ender = asyncio.create_task(_end_traffic(opts, watcher, end_traffic))
        view.set_status("serving traffic")
        try:
            traffic = await drive(
                client,
                duration_s=opts.duration_s + opts.max_wait_s,
                stop=end_traffic,
                rate_per_s=rate,
                mix=mix,
                seed=opts.seed,
                concurrency=concurrency,
                on_outcome=view.add,
            )
            outcomes = traffic.outcomes
            stack.check_alive()
            # Before the demo's own requests below: they are no client traffic.
            spend = await fetch_spend(ep.gateway, exclude_tenants=(EVAL_TENANT,))
            view.set_status(f"held-out probe: the same {len(probe)} prompts to the student now")
            after = await ask_each(evaluator, probe, STUDENT_NAME, mix.max_tokens)
            view.set_status("teacher-only baseline on the same prompts")
            baseline = await teacher_only(evaluator, outcomes, mix.max_tokens)
        finally:
            stop.set()
            ender.cancel()
            await asyncio.gather(watch, ender, return_exceptions=True)
            await client.close()
            await evaluator.close()
        await _last_events(watcher, view)
    heldout: list[HeldoutResult] = compare(probe, before, after, outcomes)
    notes = _notes(opts, mix, rate, concurrency)
    summary = write_report(
        opts.out,
        outcomes,
        baseline,
        watcher.events,
        window_s=opts.window,
        notes=notes,
        spend=spend,
        heldout=heldout,
        not_sent=traffic.not_sent,
    )
    return summary, pids


async def _last_events(watcher: AdapterWatcher, view: LiveView) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for e in await watcher.poll(http):
            view.event(e)


def _clients(ep: Endpoints) -> tuple[openai.AsyncOpenAI, openai.AsyncOpenAI]:
    """The application's client, and the demo's own (a key whose traffic is never logged)."""
    return (
        openai.AsyncOpenAI(base_url=ep.gateway, api_key=ep.app_key, max_retries=0, timeout=120),
        openai.AsyncOpenAI(base_url=ep.gateway, api_key=ep.eval_key, max_retries=0, timeout=300),
    )


def _notes(opts: DemoOptions, mix: TrafficMix, rate: float, concurrency: int) -> list[str]:
    notes = [
        f"student: {opts.student}; traffic {rate}/s for {opts.duration_s:.0f} s, mix "
        + ", ".join(f"{t} {w:.0%}" for t, w in mix.weights.items()),
        f"client concurrency {concurrency}: an arrival is not sent while {concurrency} requests "
        f"are in flight and {concurrency} wait",
    ]
    if opts.student == "embedded":
        notes.append(
            "tasks the student must learn by distillation: "
            + ", ".join(n for n, t in TASKS.items() if t.difficulty == "learnable")
        )
    return notes


def run_demo(opts: DemoOptions) -> tuple[Summary, list[int]]:
    """Run the demo; returns the summary and the PIDs it started (all stopped by then)."""

    def _interrupt(*_: object) -> None:
        # Unwind through demo_stack, which stops every process; a second signal (a repeated
        # Ctrl-C, or `timeout` forwarding SIGTERM) must not cut that clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with LiveView(opts.duration_s, opts.window) as view:
            return asyncio.run(_run(opts, view))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
