"""Cost and savings of the confidence cascade through the real gateway, driven by the official
``openai`` SDK, against hand-computed dollars.

The real testbed student (embedded engine) answers first; when its token log-probabilities say it
is unsure, the testbed teacher answers instead. Savings count only what the student finally
served: an escalated request was paid on the teacher, so the student's attempt at it is spend and
saves nothing (and is never shadow-compared, since the client never saw it).

Every expected dollar comes from token counts the SDK read: the student's own answer to the same
prompt (pinned, greedy, so the cascade's attempt is the same tokens), and the teacher's usage in
the escalated answer, times round prices.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from distillserve.router.confidence import confidence_statistic
from distillserve.testbed.student_model import ensure_testbed_student
from distillserve.testbed.tasks import TASKS, sample
from tests.monitoring.test_cost_gateway import scrape, usd, value, wait_for
from tests.support.servers import Server, start_gateway

THRESHOLD = -0.5  # escalate when some token had probability below ~0.61 (as tests/router/test_cascade.py)
MAX_TOKENS = 32
TEACHER_IN, TEACHER_OUT = 3.0, 12.0  # $ per 1M tokens
STUDENT_IN, STUDENT_OUT = 0.2, 0.4
PRICING = {
    "models": {
        "teacher-llm": {"input_per_million": TEACHER_IN, "output_per_million": TEACHER_OUT},
        "student-gpu": {"input_per_million": STUDENT_IN, "output_per_million": STUDENT_OUT},
    },
    "teacher_model": "teacher-llm",
    "student_model": "student-gpu",
}
PROMPTS = [p for p, _ in sample(list(TASKS), 16, seed=7)]
SPEND, SAVINGS, SHADOWS = (
    "distillserve_spend_usd_total",
    "distillserve_savings_usd_total",
    "distillserve_shadow_pairs_total",
)


@dataclass(frozen=True)
class StudentAlone:
    """The student's own answer to a prompt: its usage and token log-probabilities."""

    prompt_tokens: int
    completion_tokens: int
    logprobs: list[float]

    @property
    def unsure(self) -> bool:
        return confidence_statistic(self.logprobs, "min") < THRESHOLD

    def dollars(self, rate_in: float, rate_out: float) -> float:
        return usd(self.prompt_tokens, self.completion_tokens, rate_in, rate_out)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("cost-cascade")
    config = {
        "student": {"kind": "embedded", "name": "student", "model_path": str(ensure_testbed_student())},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "router": {"scorer": "cascade", "cascade": {"min_logprob": THRESHOLD, "statistic": "min"}},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
        "monitoring": {"shadow_rate": 1.0},  # every answer the student serves is compared
        "pricing": PRICING,
    }
    # A generous start: the embedded student loads a model (slow on a busy 2-core CI machine).
    with start_gateway(tmp, config, ready_path="/readyz", timeout=600) as g:
        yield g


@pytest.fixture(scope="module")
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0)


def messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


@pytest.fixture(scope="module")
def alone(client: openai.OpenAI) -> dict[str, StudentAlone]:
    out = {}
    for p in PROMPTS:
        r = client.chat.completions.create(
            model="student", messages=messages(p), temperature=0, max_tokens=MAX_TOKENS, logprobs=True
        )
        assert r.usage is not None
        lps = [t.logprob for t in r.choices[0].logprobs.content]
        out[p] = StudentAlone(r.usage.prompt_tokens, r.usage.completion_tokens, lps)
    # Both kinds of request, or the test proves nothing.
    assert 0 < sum(a.unsure for a in out.values()) < len(out)
    return out


def shadow_total(samples: dict) -> float:
    return sum(v for (name, _), v in samples.items() if name == SHADOWS)


def settled(gw: Server, shadows: float, timeout: float = 60.0) -> dict:
    """A scrape once ``shadows`` comparisons are counted (they run in the background, after the
    answer; every sampled one is counted, whatever its outcome); the last scrape when time is up."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(gw)
        if shadow_total(samples) >= shadows or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_escalated_requests_are_spend_not_savings(
    gw: Server, client: openai.OpenAI, alone: dict[str, StudentAlone]
) -> None:
    before = settled(gw, len(PROMPTS))  # the pinned answers' shadows, all student-served
    student_spend = teacher_spend = savings = 0.0
    served_by_student = 0
    for p in PROMPTS:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=messages(p), temperature=0, max_tokens=MAX_TOKENS
        )
        body, a = raw.parse(), alone[p]
        student_spend += a.dollars(STUDENT_IN, STUDENT_OUT)  # the attempt is paid either way
        if a.unsure:
            assert raw.headers["x-distillserve-route"] == "teacher", p
            use = body.usage
            teacher_spend += usd(use.prompt_tokens, use.completion_tokens, TEACHER_IN, TEACHER_OUT)
        else:
            assert raw.headers["x-distillserve-route"] == "student", p
            assert (body.usage.prompt_tokens, body.usage.completion_tokens) == (
                a.prompt_tokens,
                a.completion_tokens,
            )
            savings += a.dollars(TEACHER_IN, TEACHER_OUT)
            served_by_student += 1
    after = settled(gw, shadow_total(before) + served_by_student)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(SPEND, route="student", tenant="", purpose="serve") == pytest.approx(student_spend, rel=1e-9)
    assert delta(SPEND, route="teacher", tenant="", purpose="serve") == pytest.approx(teacher_spend, rel=1e-9)
    assert delta(SAVINGS, tenant="") == pytest.approx(savings, rel=1e-9)
    # Only the answers the client got are shadow-compared: an escalated one already went to the teacher.
    assert shadow_total(after) - shadow_total(before) == served_by_student


def test_an_escalated_stream_saves_nothing(
    gw: Server, client: openai.OpenAI, alone: dict[str, StudentAlone]
) -> None:
    """The student's stream is cut at its first unsure token (min statistic): priced on the tokens it
    generated and the prompt estimated at 4 characters a token (no usage chunk comes before a
    stream's end)."""
    unsure = [p for p in PROMPTS if alone[p].unsure]
    before = scrape(gw)
    student_spend = teacher_spend = 0.0
    for p in unsure:
        chunks = list(
            client.chat.completions.create(
                model="auto",
                messages=messages(p),
                temperature=0,
                max_tokens=MAX_TOKENS,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        use = chunks[-1].usage
        assert use is not None and {c.model for c in chunks} == {"teacher"}
        teacher_spend += usd(use.prompt_tokens, use.completion_tokens, TEACHER_IN, TEACHER_OUT)
        generated = next(i for i, lp in enumerate(alone[p].logprobs) if lp < THRESHOLD) + 1
        student_spend += usd(math.ceil(len(p) / 4), generated, STUDENT_IN, STUDENT_OUT)
    after = wait_for(
        gw,
        SPEND,
        value(before, SPEND, route="student", tenant="", purpose="serve") + student_spend,
        route="student",
        tenant="",
        purpose="serve",
    )

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(SAVINGS, tenant="") == 0
    assert delta(SPEND, route="teacher", tenant="", purpose="serve") == pytest.approx(teacher_spend, rel=1e-9)
    assert delta(SPEND, route="student", tenant="", purpose="serve") == pytest.approx(student_spend, rel=1e-9)
