"""One backend served as its own OpenAI server (``distillserve testbed-teacher``): the usage
chunk every backend ends its streams with reaches the client only when it asked for it."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient

from distillserve.backends.testbed_teacher import TestbedTeacher as Oracle
from distillserve.serving.single_backend_server import create_single_app


def _events(client: TestClient, **extra: object) -> list[dict]:
    body = {"model": "teacher", "messages": [{"role": "user", "content": "reverse: abc"}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body | extra) as r:
        assert r.status_code == 200
        lines = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [orjson.loads(line) for line in lines[:-1]]


def test_the_usage_chunk_goes_out_only_when_asked_for() -> None:
    with TestClient(create_single_app(Oracle("teacher"))) as client:
        plain = _events(client)
        assert plain and all(e["choices"] for e in plain)
        assert "".join(e["choices"][0]["delta"].get("content") or "" for e in plain) == "cba"
        with_usage = _events(client, stream_options={"include_usage": True})
        assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["completion_tokens"] > 0
