"""End to end over real HTTP: ``distillserve serve`` with the embedded engine serving the
pre-trained testbed student, driven by the official openai SDK (sync and streaming)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.servers import Server, start_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("gateway-embedded")
    student = ensure_testbed_student()  # build before the server starts, not inside its ready timeout
    config = {
        "student": {"kind": "embedded", "name": "student", "model_path": str(student), "max_batch_size": 8},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
    }
    with start_gateway(tmp, config, ready_path="/readyz") as g:
        yield g


@pytest.fixture
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)


def test_chat_answers_a_base_task_exactly(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="student", messages=[{"role": "user", "content": "copy: pillow"}], temperature=0, max_tokens=20
    )
    assert resp.choices[0].message.content == "pillow"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens == len("pillow") + 1  # + <|im_end|>
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_streaming_matches_blocking_and_reports_usage(client: openai.OpenAI) -> None:
    msgs = [{"role": "user", "content": "upper: garden"}]
    blocking = client.chat.completions.create(model="student", messages=msgs, temperature=0)
    stream = client.chat.completions.create(
        model="student", messages=msgs, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == blocking.choices[0].message.content == "GARDEN"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert (
        chunks[-1].usage is not None
        and chunks[-1].usage.completion_tokens == blocking.usage.completion_tokens
    )


def test_max_tokens_and_logprobs_over_http(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="student",
        messages=[{"role": "user", "content": "copy: window"}],
        temperature=0,
        max_tokens=3,
        logprobs=True,
        top_logprobs=2,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "length" and choice.message.content == "win"
    tokens = choice.logprobs.content
    assert [t.token for t in tokens] == ["w", "i", "n"]
    assert all(t.top_logprobs[0].token == t.token and t.logprob <= 0 for t in tokens)


def test_completions_on_raw_text(client: openai.OpenAI) -> None:
    prompt = "<|im_start|>user\nfirst: ab cd<|im_end|>\n<|im_start|>assistant\n"
    resp = client.completions.create(model="student", prompt=prompt, max_tokens=10, temperature=0)
    assert resp.choices[0].text == "ab" and resp.choices[0].finish_reason == "stop"
    streamed = client.completions.create(
        model="student", prompt=prompt, max_tokens=10, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "ab"


def test_engine_metrics_are_exported(gw: Server, client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="student", messages=[{"role": "user", "content": "copy: ab"}], temperature=0
    )
    text = httpx.get(f"http://127.0.0.1:{gw.port}/metrics").text
    generated = [
        line for line in text.splitlines() if line.startswith("distillserve_engine_generated_tokens_total")
    ]
    assert generated and float(generated[0].split()[-1]) >= 3
    assert "distillserve_engine_batch_rows_bucket" in text
