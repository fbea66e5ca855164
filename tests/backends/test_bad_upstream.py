"""Bad upstream input: an answer that is not JSON, has no choices, or is cut off, blocking or
streamed, gets an OpenAI-shaped 502 for the client, is counted, and never reaches the log.

The upstream is a fault-injecting fake (``tests/support/fixture_teacher.py`` replaying the
synthetic ``tests/fixtures/providers/faults/``): no real provider sends these on demand. The
gateway (``distillserve serve``), the client (the official ``openai`` SDK) and the teacher log
(the JSON-lines sink) are real.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.fixture_teacher import FixtureTeacher, fixture_teacher
from tests.support.log_file import read_log_once
from tests.support.servers import Server, start_gateway

BLOCKING_FAULTS = {
    "faults/not-json.json": "not JSON",
    "faults/no-choices.json": "no choices",
    "faults/error-200.json": "with an error",
    "faults/cut-body.json": "truncated",
}
# Cut off before the first event: the response has not started, so the status itself is 502.
EARLY_STREAM_FAULTS = {"faults/empty-stream.sse": "truncated"}
# Cut off after the first event: the client already has a 200, so the 502 error comes in-band.
LATE_STREAM_FAULTS = {
    "faults/truncated-stream.sse": "truncated",
    "faults/event-not-json.sse": "not JSON",
}
ERRORS = 'distillserve_backend_errors_total{backend="openai",kind="bad_upstream_response",route="teacher"}'


@dataclass
class Stack:
    gw: Server
    teacher: FixtureTeacher
    log_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("bad-upstream")
    with fixture_teacher() as teacher:
        teacher.cut_short.add("faults/cut-body.json")
        config = {
            "student": {"kind": "testbed", "name": "student"},
            "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url, "timeout_s": 10},
            "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
        }
        with start_gateway(tmp, config) as gw:
            yield Stack(gw, teacher, tmp / "log")


def client_of(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0, timeout=30)


def errors_counted(gw: Server) -> float:
    text = httpx.get(f"http://127.0.0.1:{gw.port}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(ERRORS)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def assert_bad_upstream_error(body: object, says: str) -> None:
    assert isinstance(body, dict)
    assert body["type"] == "server_error" and body["code"] == "bad_upstream_response"
    assert says in body["message"] and "teacher" in body["message"]


def ask(gw: Server, name: str, *, stream: bool) -> None:
    messages: list = [{"role": "user", "content": name}]
    client = client_of(gw)
    if stream:
        for _ in client.chat.completions.create(model="teacher", messages=messages, stream=True):
            pass
    else:
        client.chat.completions.create(model="teacher", messages=messages)


@pytest.mark.parametrize(
    ("name", "says", "stream"),
    [(n, s, False) for n, s in BLOCKING_FAULTS.items()]
    + [(n, s, True) for n, s in EARLY_STREAM_FAULTS.items()],
)
def test_bad_answer_before_the_response_starts_is_a_502(
    stack: Stack, name: str, says: str, stream: bool
) -> None:
    before = errors_counted(stack.gw)
    with pytest.raises(openai.InternalServerError) as err:
        ask(stack.gw, name, stream=stream)
    assert err.value.status_code == 502
    assert_bad_upstream_error(err.value.response.json()["error"], says)
    assert errors_counted(stack.gw) == before + 1


@pytest.mark.parametrize(("name", "says"), LATE_STREAM_FAULTS.items())
def test_stream_cut_after_it_started_ends_with_an_in_band_502_error(
    stack: Stack, name: str, says: str
) -> None:
    before = errors_counted(stack.gw)
    with pytest.raises(openai.APIError) as err:
        ask(stack.gw, name, stream=True)
    assert not isinstance(err.value, openai.APIStatusError)  # the status was 200: the error came in-band
    assert_bad_upstream_error(err.value.body, says)
    assert errors_counted(stack.gw) == before + 1


def test_nothing_bad_reaches_the_log_and_a_good_answer_still_does(stack: Stack) -> None:
    faults = {**BLOCKING_FAULTS, **EARLY_STREAM_FAULTS, **LATE_STREAM_FAULTS}
    for name in faults:  # whatever the order the tests above ran in, every fault was sent
        with pytest.raises(openai.APIError):
            ask(stack.gw, name, stream=name.endswith(".sse"))
    # A good answer afterwards: the log works, and holds only it.
    good = client_of(stack.gw).chat.completions.create(
        model="teacher", messages=[{"role": "user", "content": "vllm/chat-blocking.json"}]
    )
    assert good.choices[0].message.content == "Paris is the capital of France."
    logged = read_log_once(stack.log_dir / "teacher-log.jsonl", lambda r: r.request_id == good.id)
    assert len(logged) == 1
    assert not (stack.log_dir / "teacher-log.dlq.jsonl").exists()  # refused answers are not dead letters
    asked = [r["messages"][-1]["content"] for r in stack.teacher.requests]
    assert set(faults) <= set(asked)  # each fault really reached the gateway's upstream client
