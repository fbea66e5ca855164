"""Shadow sampling and drift through the real gateway process.

Processes: the testbed teacher (exact oracle) as an OpenAI-compatible server; a student
that answers ``reverse`` by copying its input (``tests/support/flawed_student.py``, a fault
injection: a real student disagrees too, but not on a share chosen in advance); the
gateway (``distillserve serve``) with ``monitoring.shadow_rate: 1.0``. Clients use the
official openai SDK. What the gateway exports on /metrics must match what the client saw.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from distillserve.backends.testbed_teacher import solve
from distillserve.teacher_log.record import TeacherLogRecord
from tests.support.flawed_student import start_flawed_student
from tests.support.prometheus import sample, scrape
from tests.support.servers import Server, start_gateway, start_testbed_teacher

KEY = "sk-drift"
WINDOW = 20
# Not palindromes, so a copied input never equals the reversed one by chance.
WORDS = ["alpha", "bravo", "delta", "gamma", "kilo", "lima", "mike", "oscar", "papa", "romeo"]


def gateway_config(tmp: Path, student: Server, teacher: Server, **monitoring: object) -> dict:
    return {
        "server": {"api_keys": [KEY]},
        "student": {"kind": "openai", "name": "student", "url": student.url, "timeout_s": 10},
        "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url, "timeout_s": 10},
        "router": {"scorer": "heuristic", "policy": "threshold", "threshold": 0.5},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
        "monitoring": {"shadow_rate": 1.0, "agreement": "normalized", **monitoring},
    }


def metrics_url(gw: Server) -> str:
    return f"http://127.0.0.1:{gw.port}/metrics"


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout}s")
        time.sleep(0.1)


def pairs_done(gw: Server) -> float:
    s = scrape(metrics_url(gw))
    return sum(
        sample(s, "distillserve_shadow_pairs_total", outcome=o)
        for o in ("agree", "disagree", "teacher_error", "teacher_timeout", "scoring_error", "skipped_busy")
    )


def ask(client: openai.OpenAI, prompt: str, *, stream: bool = False) -> tuple[str, str]:
    """(route, answer) of one chat request to ``model: auto``."""
    messages = [{"role": "user", "content": prompt}]
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model="auto", messages=messages, stream=True
        ) as resp:
            route = resp.headers["x-distillserve-route"]
            text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
        return route, text
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
    return raw.headers["x-distillserve-route"], raw.parse().choices[0].message.content or ""


# --- agreement and drift -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drift")


@pytest.fixture(scope="module")
def drift_gw(tmp: Path) -> Iterator[Server]:
    with (
        start_testbed_teacher(tmp) as teacher,
        start_flawed_student(tmp, wrong="reverse") as student,
        start_gateway(tmp, gateway_config(tmp, student, teacher, agreement_window=WINDOW)) as gw,
    ):
        yield gw


def test_agreement_and_drift_match_what_was_sent(drift_gw: Server, tmp: Path) -> None:
    client = openai.OpenAI(base_url=drift_gw.url, api_key=KEY, max_retries=0)
    sent: list[tuple[str, str]] = []

    # First window: the student agrees on every prompt; it becomes the baseline.
    for i in range(WINDOW):
        prompt = f"copy: {WORDS[i % len(WORDS)]}"
        route, answer = ask(client, prompt, stream=i % 4 == 3)
        assert route == "student"
        sent.append((prompt, answer))
    wait_for(lambda: pairs_done(drift_gw) >= WINDOW, what="first window of shadow pairs")
    s = scrape(metrics_url(drift_gw))
    assert sample(s, "distillserve_student_agreement_ratio", adapter="base") == 1.0
    assert sample(s, "distillserve_student_agreement_baseline_ratio", adapter="base") == 1.0
    assert sample(s, "distillserve_student_drift_ratio", adapter="base") == 0.0

    # Second window: a quarter are reverse prompts, which this student gets wrong.
    second: list[tuple[str, str]] = []
    for i in range(WINDOW):
        task = "reverse" if i % 4 == 1 else ("upper" if i % 2 else "copy")
        prompt = f"{task}: {WORDS[i % len(WORDS)]}"
        route, answer = ask(client, prompt, stream=i % 3 == 0)
        assert route == "student"
        second.append((prompt, answer))
    sent += second
    wait_for(lambda: pairs_done(drift_gw) >= 2 * WINDOW, what="second window of shadow pairs")

    # What the client saw, graded against the exact teacher: the rolling window is the second batch.
    expected = sum(answer == solve(prompt)[0] for prompt, answer in second) / WINDOW
    assert expected == 0.75  # the fault injection did what it says
    s = scrape(metrics_url(drift_gw))
    assert sample(s, "distillserve_student_agreement_ratio", adapter="base") == pytest.approx(expected)
    assert sample(s, "distillserve_student_agreement_baseline_ratio", adapter="base") == 1.0
    assert sample(s, "distillserve_student_drift_ratio", adapter="base") == pytest.approx(1.0 - expected)
    assert sample(s, "distillserve_student_agreement_window_pairs", adapter="base") == WINDOW
    wrong = sum(answer != solve(prompt)[0] for prompt, answer in sent)
    assert sample(s, "distillserve_shadow_pairs_total", outcome="disagree") == wrong == 5
    assert sample(s, "distillserve_shadow_pairs_total", outcome="agree") == len(sent) - wrong
    # Shadow calls are not client requests: the teacher served none of those.
    assert sample(s, "distillserve_requests_total", route="teacher") == 0

    # Every pair reached the teacher log as a shadow record with the student's answer.
    path = tmp / "log" / "teacher-log.jsonl"
    wait_for(
        lambda: path.exists() and len(path.read_bytes().splitlines()) >= len(sent), what="shadow records"
    )
    records = [TeacherLogRecord.from_json(line) for line in path.read_bytes().splitlines()]
    shadow = [r for r in records if r.kind == "shadow"]
    assert len(shadow) == len(records) == len(sent)
    by_prompt = {r.messages[0]["content"]: r for r in shadow}
    for prompt, answer in sent:
        rec = by_prompt[prompt]
        assert rec.student_text == answer and rec.student_model == "student"
        assert rec.response_text == solve(prompt)[0] and rec.teacher_model == "teacher"
        assert rec.route == "shadow"


# --- the client never waits for a shadow ---------------------------------------------------------
def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_clients_unaffected_when_teacher_is_slow_then_down(tmp_path: Path) -> None:
    # The teacher takes 4 s per answer; a shadow is abandoned after 2.5 s; two may run at once.
    with (
        start_testbed_teacher(tmp_path, "--first-token-delay", "4") as teacher,
        start_flawed_student(tmp_path, wrong="") as student,
        start_gateway(
            tmp_path,
            gateway_config(
                tmp_path, student, teacher, shadow_timeout_s=2.5, shadow_max_concurrency=2, agreement_window=5
            ),
        ) as gw,
    ):
        client = openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0)
        slow = []
        for i in range(6):
            t0 = time.perf_counter()
            route, answer = ask(client, f"copy: {WORDS[i]}", stream=i % 2 == 1)
            slow.append(time.perf_counter() - t0)
            assert (route, answer) == ("student", WORDS[i])
        # Had any request waited for its shadow it would take >= 2.5 s (the shadow timeout).
        assert max(slow) < 2.0, slow
        wait_for(lambda: pairs_done(gw) >= 6, timeout=15, what="slow shadows to time out")
        s = scrape(metrics_url(gw))
        timeouts = sample(s, "distillserve_shadow_pairs_total", outcome="teacher_timeout")
        busy = sample(s, "distillserve_shadow_pairs_total", outcome="skipped_busy")
        assert timeouts >= 2 and busy >= 1 and timeouts + busy == 6, (timeouts, busy)
        assert sample(s, "distillserve_shadow_in_flight") == 0

        # Now the teacher is gone altogether.
        os.killpg(teacher.pid, signal.SIGTERM)
        wait_for(lambda: _port_closed(teacher.port), what="teacher to stop")
        down = []
        for i in range(4):
            t0 = time.perf_counter()
            route, answer = ask(client, f"copy: {WORDS[i]}", stream=i % 2 == 0)
            down.append(time.perf_counter() - t0)
            assert (route, answer) == ("student", WORDS[i])
        assert max(down) < 2.0, down
        wait_for(lambda: pairs_done(gw) >= 10, what="failed shadows to be counted")
        s = scrape(metrics_url(gw))
        errors = sample(s, "distillserve_shadow_pairs_total", outcome="teacher_error")
        busy_after = sample(s, "distillserve_shadow_pairs_total", outcome="skipped_busy") - busy
        assert errors >= 1 and errors + busy_after == 4
        assert sample(s, "distillserve_shadow_pairs_total", outcome="agree") == 0
        # Clients saw only successes, and nothing was re-routed.
        assert sample(s, "distillserve_requests_total", route="student", status="200") == 10
        assert sample(s, "distillserve_requests_total") == 10
        assert sample(s, "distillserve_fallbacks_total") == 0
        # No agreement was made up from failed comparisons.
        assert ("distillserve_student_agreement_ratio", frozenset({("adapter", "base")})) not in s
