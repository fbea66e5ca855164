"""The confidence cascade over real HTTP with the official openai SDK: the real testbed student
(embedded engine) answers first; when its token log-probabilities say it is unsure, the testbed
teacher answers instead — blocking and streaming, where the client gets one coherent answer
from one model and never a fragment of the discarded one."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from distillserve.router.confidence import confidence_statistic
from distillserve.testbed.student_model import ensure_testbed_student
from distillserve.testbed.tasks import TASKS, answer, sample
from tests.support.log_file import read_log_once
from tests.support.processes import free_port
from tests.support.servers import Server, start_gateway

THRESHOLD = -0.5  # escalate when some token had probability below ~0.61
PROMPTS = [p for p, _ in sample(list(TASKS), 28, seed=7)]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cascade")


@pytest.fixture(scope="module")
def gw(tmp: Path) -> Iterator[Server]:
    config = {
        "student": {"kind": "embedded", "name": "student", "model_path": str(ensure_testbed_student())},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "router": {"scorer": "cascade", "cascade": {"min_logprob": THRESHOLD, "statistic": "min"}},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
    }
    with start_gateway(tmp, config, ready_path="/readyz", timeout=600) as g:
        yield g


@pytest.fixture(scope="module")
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0)


def ask(client: openai.OpenAI, prompt: str, model: str = "auto", **kw: object):
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=32, **kw
    )


def student_confidence(client: openai.OpenAI, prompt: str) -> tuple[str, float]:
    """What the student alone answers (pinned, bypassing the router) and its min token logprob."""
    r = ask(client, prompt, model="student", logprobs=True).parse()
    lps = [t.logprob for t in r.choices[0].logprobs.content]
    return r.choices[0].message.content, confidence_statistic(lps, "min")


def escalations(gw: Server) -> float:
    text = httpx.get(gw.url.removesuffix("/v1") + "/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("distillserve_cascade_escalations_total "))
    return float(line.split()[1])


@pytest.fixture(scope="module")
def confidence(client: openai.OpenAI) -> dict[str, tuple[str, float]]:
    return {p: student_confidence(client, p) for p in PROMPTS}


def test_unsure_answers_escalate_and_sure_ones_stay(
    client: openai.OpenAI, gw: Server, confidence: dict[str, tuple[str, float]]
) -> None:
    before = escalations(gw)
    escalated = 0
    for p in PROMPTS:
        raw = ask(client, p)
        body = raw.parse()
        student_text, stat = confidence[p]
        if stat < THRESHOLD:
            escalated += 1
            assert raw.headers["x-distillserve-route"] == "teacher", (p, stat)
            assert body.choices[0].message.content == answer(p)
        else:
            assert raw.headers["x-distillserve-route"] == "student", (p, stat)
            assert body.choices[0].message.content == student_text
            assert body.choices[0].logprobs is None  # asked for by the cascade, not by the client
        meta = body.model_extra["distillserve"]
        assert meta["reason"] == "cascade" and meta["scorer"] == "cascade"
        assert math.isclose(meta["difficulty"], 1 - math.exp(stat), abs_tol=1e-3)
    assert escalations(gw) == before + escalated
    # The student is sure of some answers and unsure of others (otherwise this proves nothing).
    assert 0 < escalated < len(PROMPTS)


def test_escalations_are_logged_with_the_discarded_student_answer(
    client: openai.OpenAI, tmp: Path, confidence: dict[str, tuple[str, float]]
) -> None:
    unsure = next(p for p in PROMPTS if confidence[p][1] < THRESHOLD)
    request_id = ask(client, unsure).parse().id
    # By request id, not prompt text: the log's PII scrubbing may rewrite parts of a prompt.
    logged = read_log_once(tmp / "log" / "teacher-log.jsonl", lambda r: r.request_id == request_id)
    mine = [r for r in logged if r.request_id == request_id]
    assert len(mine) == 1 and mine[-1].route == "cascade"
    assert mine[-1].response_text == answer(unsure)
    assert mine[-1].student_text == confidence[unsure][0] and mine[-1].student_model == "student"


def test_streaming_with_cascade_delivers_one_coherent_answer(
    client: openai.OpenAI, confidence: dict[str, tuple[str, float]]
) -> None:
    for p in PROMPTS:
        with client.chat.completions.with_streaming_response.create(
            model="auto",
            messages=[{"role": "user", "content": p}],
            temperature=0,
            max_tokens=32,
            stream=True,
            stream_options={"include_usage": True},
        ) as resp:
            route = resp.headers["x-distillserve-route"]
            chunks = list(resp.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        student_text, stat = confidence[p]
        if stat < THRESHOLD:
            assert (route, text) == ("teacher", answer(p)), p
        else:
            assert (route, text) == ("student", student_text), p
        assert len({c.id for c in chunks}) == 1  # one answer, not two spliced together
        assert {c.model for c in chunks} == {route}
        assert all(c.choices[0].logprobs is None for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_client_that_asks_for_logprobs_still_gets_them(
    client: openai.OpenAI, confidence: dict[str, tuple[str, float]]
) -> None:
    sure = next(p for p in PROMPTS if confidence[p][1] >= THRESHOLD)
    body = ask(client, sure, logprobs=True).parse()
    assert body.choices[0].logprobs is not None and body.choices[0].logprobs.content


def test_dead_teacher_on_escalation_serves_the_student_answer(
    tmp: Path, confidence: dict[str, tuple[str, float]]
) -> None:
    """Degraded, not failed: with the teacher down, an unsure student answer is still an answer."""
    unsure = next(p for p in PROMPTS if confidence[p][1] < THRESHOLD)
    config = {
        "student": {"kind": "embedded", "name": "student", "model_path": str(ensure_testbed_student())},
        "teacher": {"kind": "openai", "name": "teacher", "url": f"http://127.0.0.1:{free_port()}/v1"},
        "router": {"scorer": "cascade", "cascade": {"min_logprob": THRESHOLD}},
        "teacher_log": {"sink": "none"},
    }
    with start_gateway(tmp, config, ready_path="/readyz", timeout=600) as g:
        client = openai.OpenAI(base_url=g.url, api_key="none", max_retries=0)
        raw = ask(client, unsure)
        assert raw.headers["x-distillserve-route"] == "student"
        assert raw.parse().choices[0].message.content == confidence[unsure][0]
        stream = client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": unsure}],
            temperature=0,
            max_tokens=32,
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == confidence[unsure][0]
