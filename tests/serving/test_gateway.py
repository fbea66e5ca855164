"""The gateway over real HTTP: official openai SDK (sync, async, streaming) and raw httpx.

Servers are real processes: the testbed teacher as an OpenAI-compatible upstream, and
the gateway (``distillserve serve``) in front of it. The student here is the in-process
testbed oracle named "student", so routing is visible in answers and headers without
loading a model; the embedded-engine student has its own end-to-end test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from distillserve.teacher_log.record import TeacherLogRecord
from tests.support.log_file import read_log, read_log_once
from tests.support.processes import free_port
from tests.support.servers import Server, start_gateway, start_testbed_teacher

KEY = "sk-test-key"
EASY = "copy: hello"
HARD = (
    "Prove step by step that the algorithm below is optimal, analyze its complexity, and explain why "
    "every invariant holds?\n" + "x = y + z * 2 - w / 3\n" * 6 + "reverse: hello"
)


def base_config(tmp: Path, teacher_url: str, **server: object) -> dict:
    return {
        "server": {"api_keys": [KEY], "max_body_bytes": 20_000, **server},
        "student": {"kind": "testbed", "name": "student"},
        "teacher": {"kind": "openai", "name": "teacher", "url": teacher_url, "timeout_s": 5},
        "router": {"scorer": "heuristic", "policy": "threshold", "threshold": 0.5},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
    }


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def teacher(tmp: Path) -> Iterator[Server]:
    with start_testbed_teacher(tmp, "--reasoning", "think_tags") as t:
        yield t


@pytest.fixture(scope="module")
def gw(tmp: Path, teacher: Server) -> Iterator[Server]:
    with start_gateway(tmp, base_config(tmp, teacher.url)) as g:
        yield g


@pytest.fixture
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0)


def chat(client: openai.OpenAI, content: str, model: str = "auto", **kw: object):
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kw
    )


def log_records(tmp: Path) -> list[TeacherLogRecord]:
    return read_log(tmp / "log" / "teacher-log.jsonl")


# --- routing -------------------------------------------------------------------------------------
def test_auto_routes_easy_prompt_to_student(client: openai.OpenAI) -> None:
    raw = chat(client, EASY, temperature=0)
    resp = raw.parse()
    assert raw.headers["x-distillserve-route"] == "student"
    assert float(raw.headers["x-distillserve-difficulty"]) < 0.5
    assert resp.choices[0].message.content == "hello"
    assert resp.model == "student"
    assert resp.model_extra["distillserve"]["route"] == "student"


def test_auto_routes_hard_prompt_to_teacher_and_logs_it(client: openai.OpenAI, tmp: Path) -> None:
    raw = chat(client, HARD, user="alice")
    resp = raw.parse()
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert float(raw.headers["x-distillserve-difficulty"]) >= 0.5
    # The teacher reasons in <think> tags; by default clients see the answer as the teacher sent it.
    assert resp.choices[0].message.content.endswith("</think>olleh")
    assert resp.model == "teacher"
    logged = read_log_once(tmp / "log" / "teacher-log.jsonl", lambda r: r.request_id == resp.id)
    recs = [r for r in logged if r.request_id == resp.id]
    assert len(recs) == 1
    rec = recs[0]
    assert (
        rec.response_text.endswith("olleh") and rec.reasoning_content and "reverse" in rec.reasoning_content
    )
    assert rec.route == "teacher" and rec.teacher_backend == "openai" and rec.difficulty >= 0.5
    assert rec.messages[0]["content"] == HARD and rec.usage.completion_tokens == len(
        resp.choices[0].message.content
    )


def test_pinned_models_bypass_router(client: openai.OpenAI) -> None:
    raw = chat(client, HARD, model="student")
    assert raw.headers["x-distillserve-route"] == "student"
    raw = chat(client, EASY, model="teacher")
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert raw.parse().choices[0].message.content.endswith("hello")


def test_force_route_header(client: openai.OpenAI) -> None:
    raw = chat(client, EASY, extra_headers={"x-distillserve-route": "teacher"})
    assert raw.headers["x-distillserve-route"] == "teacher"


def test_models_lists_auto_student_teacher(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[:3] == ["auto", "student", "teacher"]


# --- streaming -----------------------------------------------------------------------------------
def test_streaming_chunks_order_usage_and_done(gw: Server) -> None:
    body = {
        "model": "teacher",
        "messages": [{"role": "user", "content": "reverse: stream"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST", f"{gw.url}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [orjson.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.endswith("</think>maerts")
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(text)
    assert chunks.index(finals[0]) < len(chunks) - 1  # usage comes after the finish chunk


def test_streaming_without_include_usage_sends_no_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": EASY}], stream=True
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"


async def test_async_client_concurrent_streams(gw: Server) -> None:
    client = openai.AsyncOpenAI(base_url=gw.url, api_key=KEY, max_retries=0)

    async def one(word: str) -> str:
        stream = await client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": f"upper: {word}"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        async for c in stream:
            if c.choices:
                text += c.choices[0].delta.content or ""
            if c.usage:
                usage = c.usage
        assert usage is not None and usage.completion_tokens == len(text)
        return text

    words = [f"w{i}abc" for i in range(20)]
    results = await asyncio.gather(*(one(w) for w in words))
    assert results == [w.upper() for w in words]
    await client.close()


def test_completions_endpoint(client: openai.OpenAI) -> None:
    resp = client.completions.create(model="student", prompt="sort: dcba", max_tokens=10)
    assert resp.choices[0].text == "abcd" and resp.object == "text_completion"
    assert resp.usage.completion_tokens == 4
    stream = client.completions.create(model="teacher", prompt="sort: dcba", max_tokens=2, stream=True)
    parts = [c.choices[0] for c in stream if c.choices]
    assert "".join(p.text for p in parts) == "ab" and parts[-1].finish_reason == "length"


def test_sampling_params_and_logprobs_pass_through(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="teacher",
        messages=[{"role": "user", "content": "copy: abcdef"}],
        max_completion_tokens=3,
        stop=["zz"],
        seed=7,
        top_p=0.9,
        temperature=0.0,
        logprobs=True,
        top_logprobs=2,
        user="u1",
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "length" and len(choice.message.content) == 3
    assert [t.token for t in choice.logprobs.content] == list(choice.message.content)


# --- health and metrics --------------------------------------------------------------------------
def test_health_ready_and_metrics(gw: Server) -> None:
    root = gw.url.removesuffix("/v1")
    assert httpx.get(f"{root}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{root}/readyz").json()
    assert ready["status"] == "ready" and ready["student"] and ready["teacher"]
    text = httpx.get(f"{root}/metrics").text
    assert (
        'distillserve_requests_total{backend="openai",endpoint="chat",route="teacher",status="200"}' in text
    )
    assert "distillserve_time_to_first_token_seconds_bucket" in text


# --- errors --------------------------------------------------------------------------------------
def _post(
    gw: Server, body: bytes | dict, key: str | None = KEY, path: str = "/chat/completions"
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{gw.url}{path}", content=content, headers=headers, timeout=30)


def _assert_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert "Traceback" not in err["message"]
    if param is not None:
        assert err["param"] == param
    return err


def test_malformed_json_is_400(gw: Server) -> None:
    _assert_error(_post(gw, b'{"model": "auto", "messages": ['), 400)
    _assert_error(_post(gw, b"[1, 2]"), 400)


def test_wrong_types_are_400_with_param(gw: Server) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    _assert_error(_post(gw, {"model": "auto", "messages": msgs, "temperature": "hot"}), 400, "temperature")
    _assert_error(_post(gw, {"model": "auto", "messages": [{"role": "robot", "content": "x"}]}), 400)
    _assert_error(_post(gw, {"model": "auto", "messages": []}), 400, "messages")
    _assert_error(_post(gw, {"model": "auto", "messages": msgs, "n": 3}), 400, "n")
    _assert_error(_post(gw, {"messages": msgs}), 400, "model")


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        chat(client, EASY, model="gpt-9")
    assert exc.value.body["code"] == "model_not_found"


def test_body_over_limit_is_413(gw: Server) -> None:
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 50_000}]}
    _assert_error(_post(gw, big), 413)


def test_api_keys(gw: Server) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": EASY}]}
    _assert_error(_post(gw, body, key=None), 401)
    _assert_error(_post(gw, body, key="sk-wrong"), 401)
    bad = openai.OpenAI(base_url=gw.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_worker_survives_bad_input(gw: Server, client: openai.OpenAI) -> None:
    for payload in (b"\xff\xfe", b"{}", b'{"model": 1}', b"null"):
        assert _post(gw, payload).status_code == 400
    assert chat(client, EASY).parse().choices[0].message.content == "hello"


def test_dead_teacher_is_503_and_auto_falls_back(tmp: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with start_gateway(tmp, base_config(tmp, dead)) as g:
        client = openai.OpenAI(base_url=g.url, api_key=KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError) as exc:
            chat(client, EASY, model="teacher")
        assert exc.value.status_code == 503 and exc.value.body["code"] == "backend_unavailable"
        r = _post(g, {"model": "teacher", "messages": [{"role": "user", "content": "x"}], "stream": True})
        _assert_error(r, 503)
        # model=auto: a hard prompt whose teacher is down is served by the student instead.
        raw = chat(client, HARD)
        assert raw.headers["x-distillserve-route"] == "student"
        assert raw.parse().choices[0].message.content == "olleh"
        metrics = httpx.get(g.url.removesuffix("/v1") + "/metrics").text
        assert 'distillserve_fallbacks_total{from_route="teacher",to_route="student"} 1.0' in metrics


def test_slow_teacher_is_504(tmp: Path) -> None:
    with start_testbed_teacher(tmp, "--first-token-delay", "3") as slow:
        cfg = base_config(tmp, slow.url)
        cfg["teacher"]["timeout_s"] = 0.5
        with start_gateway(tmp, cfg) as g:
            client = openai.OpenAI(base_url=g.url, api_key=KEY, max_retries=0)
            with pytest.raises(openai.APIStatusError) as exc:
                chat(client, EASY, model="teacher")
            assert exc.value.status_code == 504 and exc.value.body["code"] == "backend_timeout"


def test_client_disconnect_mid_stream_stops_generation(tmp: Path) -> None:
    with (
        start_testbed_teacher(tmp, "--token-delay", "0.2") as slow,
        start_gateway(tmp, base_config(tmp, slow.url)) as g,
    ):
        body = {
            "model": "teacher",
            "messages": [{"role": "user", "content": "copy: " + "a" * 50}],
            "stream": True,
        }
        started = time.monotonic()
        with httpx.stream(
            "POST", f"{g.url}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as r:
            for line in r.iter_lines():
                if '"content":"a"' in line:
                    break  # leave after the first token; the full answer would take 10 s
        root = g.url.removesuffix("/v1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = httpx.get(f"{root}/metrics").text
            if 'status="499"' in text and 'distillserve_requests_in_flight{route="teacher"} 0.0' in text:
                break
            time.sleep(0.1)
        assert (
            'distillserve_requests_total{backend="openai",endpoint="chat",route="teacher",status="499"} 1.0'
            in text
        )
        assert 'distillserve_requests_in_flight{route="teacher"} 0.0' in text
        assert time.monotonic() - started < 8


def test_strip_reasoning_blocking_and_streaming(tmp: Path, teacher: Server) -> None:
    with start_gateway(tmp, base_config(tmp, teacher.url, strip_reasoning=True)) as g:
        client = openai.OpenAI(base_url=g.url, api_key=KEY, max_retries=0)
        resp = chat(client, "reverse: abc", model="teacher").parse()
        assert resp.choices[0].message.content == "cba"
        stream = client.chat.completions.create(
            model="teacher", messages=[{"role": "user", "content": "reverse: abcd"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "dcba"
    # The teacher log keeps the trace whole even when clients don't see it.
    recs = [r for r in log_records(tmp) if r.response_text.endswith("dcba")]
    assert recs and all(r.reasoning_content for r in recs)


def test_reasoning_content_field_passes_through(tmp: Path) -> None:
    with (
        start_testbed_teacher(tmp, "--reasoning", "reasoning_content") as t,
        start_gateway(tmp, base_config(tmp, t.url)) as g,
    ):
        client = openai.OpenAI(base_url=g.url, api_key=KEY, max_retries=0)
        msg = chat(client, "sort: cab", model="teacher").parse().choices[0].message
        assert msg.content == "abc" and "sort" in msg.model_extra["reasoning_content"]
        stream = client.chat.completions.create(
            model="teacher", messages=[{"role": "user", "content": "sort: cab"}], stream=True
        )
        deltas = [c.choices[0].delta for c in stream if c.choices]
        assert any((d.model_extra or {}).get("reasoning_content") for d in deltas)
        assert "".join(d.content or "" for d in deltas) == "abc"
