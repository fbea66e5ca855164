"""An OpenAI-compatible teacher that answers with the OpenAI-reference shapes kept in
``tests/fixtures/openai_reference/`` (the README there cites each source), over real HTTP.

It picks the answer by what the request asks: ``tools`` get the tool-call answer (blocking, or
the recorded SSE stream), a ``response_format`` the structured-output answer, anything else the
plain text answer, streamed word by word when asked. A request asking for logprobs gets
``choices[0].logprobs`` in OpenAI's shape, ``top_logprobs`` alternatives per token. With
``refuse_logprobs`` it answers such a request with DeepSeek's reasoner 400 instead.

Every request body is kept in ``requests`` so a test can check what reached the upstream.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai_reference"


def fixture(name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / name).read_bytes())


@dataclass
class ReferenceTeacher:
    url: str
    refuse_logprobs: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)


def _logprobs(words: list[str], top: int) -> dict[str, Any]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {
        "content": [
            {
                **entry(w, -0.1),
                "top_logprobs": [entry(w, -0.1)] + [entry(f"alt{k}", -2.0 - k) for k in range(1, top)],
            }
            for w in words
        ],
        "refusal": None,
    }


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def _text_answer(body: dict[str, Any]) -> dict[str, Any]:
    answer = copy.deepcopy(fixture("json_schema.json" if body.get("response_format") else "text.json"))
    answer["id"] = f"chatcmpl-{uuid.uuid4().hex}"  # one per answer, so a test finds its log record
    if body.get("logprobs"):
        words = _words(answer["choices"][0]["message"]["content"])
        answer["choices"][0]["logprobs"] = _logprobs(words, body.get("top_logprobs") or 0)
    return answer


def _text_stream(body: dict[str, Any]) -> bytes:
    answer = _text_answer(body)
    base = {k: answer[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    choice = answer["choices"][0]
    lp = (choice.get("logprobs") or {}).get("content")

    def chunk(delta: dict[str, Any], i: int | None = None, finish: str | None = None) -> dict[str, Any]:
        logprobs = {"content": [lp[i]], "refusal": None} if lp and i is not None else None
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        }

    words = _words(choice["message"]["content"])
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": w}, i) for i, w in enumerate(words)]
    events.append(chunk({}, finish="stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": answer["usage"]})
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _handler(teacher: ReferenceTeacher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # /v1/models, the gateway's health check
            self._send(200, b'{"object":"list","data":[{"id":"reference","object":"model"}]}')

        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            teacher.requests.append(body)
            if teacher.refuse_logprobs and ("logprobs" in body or "top_logprobs" in body):
                return self._send(400, (FIXTURES / "deepseek_reasoner_logprobs_400.json").read_bytes())
            if body.get("stream"):
                if body.get("tools"):
                    return self._send(200, (FIXTURES / "tool_call.sse").read_bytes(), "text/event-stream")
                return self._send(200, _text_stream(body), "text/event-stream")
            answer = fixture("tool_call.json") if body.get("tools") else _text_answer(body)
            self._send(200, orjson.dumps(answer))

        def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextlib.contextmanager
def reference_teacher(*, refuse_logprobs: bool = False) -> Iterator[ReferenceTeacher]:
    teacher = ReferenceTeacher("", refuse_logprobs=refuse_logprobs)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(teacher))
    teacher.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield teacher
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
