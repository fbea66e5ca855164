"""The judge's mechanics: both orders, the position-bias cancellation, the cache, the concurrency
bound, and its calls and tokens in metrics.

The endpoint here is a scripted OpenAI-compatible HTTP server (real sockets, real httpx client) on
purpose: a real LLM judge cannot be made to prefer a position, stall, or fail on demand. What a
real model (SmolLM2-135M-Instruct) does as a judge is in ``test_judge_smollm2.py`` and
bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from distillserve.grading.judge import JudgeEndpoint, JudgeError, judge_messages, parse_preference
from distillserve.grading.judge_grader import JudgeGrader
from distillserve.monitoring.graders import PrometheusJudgeMeter
from tests.support.metrics import sample
from tests.support.processes import free_port


@dataclass
class Script:
    """How the scripted judge answers: ``policy`` is "right" (prefers the answer holding ``right``),
    "first" (always [[A]]: pure position bias), "mumble" (no verdict) or "fail" (HTTP 500)."""

    policy: str = "right"
    right: str = "72"
    delay_s: float = 0.0
    asked: list[tuple[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


def _answers(messages: list[dict[str, str]]) -> tuple[str, str]:
    text = messages[-1]["content"]
    a = text.split("[The Start of Answer A]\n")[1].split("\n[The End of Answer A]")[0]
    b = text.split("[The Start of Answer B]\n")[1].split("\n[The End of Answer B]")[0]
    return a, b


def scripted_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        script.in_flight += 1
        script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            await asyncio.sleep(script.delay_s)
            a, b = _answers(body["messages"])
            script.asked.append((a, b))
            if script.policy == "fail":
                return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)
            verdict = {
                "first": "[[A]]",
                "mumble": "Both answers have merits.",
                "right": "[[C]]"
                if (script.right in a) == (script.right in b)
                else ("[[A]]" if script.right in a else "[[B]]"),
            }[script.policy]
            return JSONResponse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": verdict},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105},
                }
            )
        finally:
            script.in_flight -= 1

    return app


@pytest.fixture
def judge_server() -> Iterator[tuple[str, Script]]:
    script = Script()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(scripted_app(script), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "scripted judge did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1", script
    finally:
        server.should_exit = True
        thread.join(10)


def grader(url: str, **kw: Any) -> JudgeGrader:
    return JudgeGrader(JudgeEndpoint(url, "judge-model"), meter=PrometheusJudgeMeter(), **kw)


Q = "Natalia sold 48 clips in April and half as many in May. How many altogether?"
REF = "<think>48/2 = 24, 48 + 24 = 72</think>She sold 48 + 24 = 72 clips. \\boxed{72}"
RIGHT = "Sure! 48 + 24 = 72 clips in total. I hope this helps!"
WRONG = "She sold 48 x 2 = 96 clips in May, so 144 in total."


async def test_both_orders_are_asked_and_traces_are_not_shown(judge_server: tuple[str, Script]) -> None:
    url, script = judge_server
    g = await grader(url).agrade(Q, REF, RIGHT)
    assert (g.score, g.verdict) == (1.0, True)
    shown_ref = "She sold 48 + 24 = 72 clips. \\boxed{72}"
    assert sorted(script.asked) == sorted([(shown_ref, RIGHT), (RIGHT, shown_ref)])
    bad = await grader(url).agrade(Q, REF, WRONG)
    assert (bad.score, bad.verdict) == (0.0, False)


async def test_a_position_biased_judge_agrees_with_nothing(judge_server: tuple[str, Script]) -> None:
    url, script = judge_server
    script.policy = "first"
    for candidate in (RIGHT, WRONG):
        g = await grader(url).agrade(Q, REF, candidate)
        assert (g.score, g.verdict) == (0.5, False)  # one order for, one against: cancelled
    assert (await grader(url, threshold=0.5).agrade(Q, REF, WRONG)).verdict  # unless asked to trust one order


async def test_verdicts_are_cached_by_content(
    judge_server: tuple[str, Script], fresh_metrics: CollectorRegistry
) -> None:
    url, script = judge_server
    g = grader(url)
    first = await g.agrade(Q, REF, RIGHT)
    again = await g.agrade(Q, REF, RIGHT)
    assert first == again and len(script.asked) == 2 and len(g.cache) == 2
    assert sample(fresh_metrics, "distillserve_judge_cache_lookups_total", result="hit") == 2
    assert sample(fresh_metrics, "distillserve_judge_cache_lookups_total", result="miss") == 2
    await g.agrade(Q + " ", REF, RIGHT)  # other content, other key
    assert len(script.asked) == 4


async def test_concurrency_is_bounded(judge_server: tuple[str, Script]) -> None:
    url, script = judge_server
    script.delay_s = 0.1
    g = grader(url, max_concurrency=2)
    grades = await asyncio.gather(*(g.agrade(f"{Q} ({i})", REF, RIGHT) for i in range(6)))
    assert all(x.verdict for x in grades) and len(script.asked) == 12
    assert script.max_in_flight == 2


async def test_calls_and_tokens_are_metered(
    judge_server: tuple[str, Script], fresh_metrics: CollectorRegistry
) -> None:
    url, script = judge_server
    await grader(url).agrade(Q, REF, RIGHT)
    calls = {
        o: sample(fresh_metrics, "distillserve_llm_calls_total", purpose="judge", outcome=o)
        for o in ("ok", "unparsed", "error")
    }
    assert calls == {"ok": 2, "unparsed": 0, "error": 0}
    assert sample(fresh_metrics, "distillserve_llm_tokens_total", purpose="judge", kind="prompt") == 200
    assert sample(fresh_metrics, "distillserve_llm_tokens_total", purpose="judge", kind="completion") == 10
    script.policy = "mumble"
    g = await grader(url).agrade(Q, REF, WRONG)
    assert not g.verdict and "None" in g.detail
    assert sample(fresh_metrics, "distillserve_llm_calls_total", purpose="judge", outcome="unparsed") == 2
    script.policy = "fail"
    with pytest.raises(JudgeError, match="judge-model"):
        await grader(url).agrade(Q, "a", "b")
    assert sample(fresh_metrics, "distillserve_llm_calls_total", purpose="judge", outcome="error") == 2


def test_blocking_grade_outside_a_loop(judge_server: tuple[str, Script]) -> None:
    url, _ = judge_server
    g = grader(url)
    assert g.grade(Q, REF, RIGHT).verdict and g.grade(Q, REF, RIGHT).verdict  # a new loop each time


@pytest.mark.parametrize(
    ("reply", "preference"),
    [
        ("After comparing both, answer B is correct. [[B]]", "B"),
        ("<think>A says 72, B says 96. [[B]]? no, A is right.</think>\nFinal verdict: [[A]]", "A"),
        ("[[C]]", "tie"),
        ("A", "A"),
        ("Tie.", "tie"),
        ("Both answers are good.", None),
    ],
)
def test_parse_preference(reply: str, preference: str | None) -> None:
    assert parse_preference(reply) == preference


def test_the_prompt_holds_both_answers_in_order() -> None:
    system, user = judge_messages("Q?", "first answer", "second answer")
    assert "[[A]]" in system["content"] and "[[C]]" in system["content"]
    assert user["content"].index("first answer") < user["content"].index("second answer")
