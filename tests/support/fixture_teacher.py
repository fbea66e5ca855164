"""A teacher that replays recorded provider answers byte for byte (tests/fixtures/providers/).

The request's last user message names the fixture file, relative to the fixtures folder
(``deepseek/reasoner-stream.sse``). A ``.json`` file is sent as the blocking answer with its
exact bytes and length; a ``.sse`` file is sent as ``text/event-stream``, one event per write,
then the connection closes (as an HTTP/1.1 server without chunked encoding would). The request
must ask for the matching mode (``stream`` true for ``.sse``), or it gets a 400.

For fault injection only (the test says so): a fixture listed in ``cut_short`` is sent with
a ``Content-Length`` larger than its bytes, so the connection closes mid-body, which no real
provider does on demand.

    with fixture_teacher() as teacher:   # teacher.url is the base URL with /v1
        ...
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers"


@dataclass
class FixtureTeacher:
    url: str
    port: int
    #: Every chat request body it received, in order.
    requests: list[dict[str, Any]] = field(default_factory=list)
    cut_short: set[str] = field(default_factory=set)


def sse_events(data: bytes) -> list[bytes]:
    """The fixture's events (each with its blank-line terminator), in order."""
    parts = data.split(b"\n\n")
    return [p + b"\n\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _handler(teacher: FixtureTeacher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # /v1/models, for the gateway's health check
            self._send(200, b'{"object":"list","data":[{"id":"fixture","object":"model"}]}')

        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            teacher.requests.append(body)
            name = str(body["messages"][-1]["content"])
            path = (FIXTURES / name).resolve()
            if FIXTURES not in path.parents or not path.is_file():
                return self._send(404, b'{"error":{"message":"no such fixture","type":"not_found"}}')
            if bool(body.get("stream")) != (path.suffix == ".sse"):
                return self._send(400, b'{"error":{"message":"stream flag does not match the fixture"}}')
            data = path.read_bytes()
            if path.suffix == ".sse":
                return self._stream(data)
            declared = len(data) + (64 if name in teacher.cut_short else 0)
            self._send(200, data, length=declared)

        def _send(self, status: int, data: bytes, length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) if length is None else length))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            if length is not None and length != len(data):
                self.close_connection = True

        def _stream(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in sse_events(data):
                self.wfile.write(event)
                self.wfile.flush()
            self.close_connection = True

    return Handler


@contextlib.contextmanager
def fixture_teacher() -> Iterator[FixtureTeacher]:
    """Serve the fixtures on a free loopback port; stopped when the block ends."""
    teacher = FixtureTeacher(url="", port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(teacher))
    server.daemon_threads = True
    teacher.port = server.server_address[1]
    teacher.url = f"http://127.0.0.1:{teacher.port}/v1"
    thread = threading.Thread(target=server.serve_forever, name="fixture-teacher", daemon=True)
    thread.start()
    try:
        yield teacher
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
