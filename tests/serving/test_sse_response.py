"""``SSEResponse`` under a real uvicorn (httptools, the gateway's own HTTP stack) and a real TCP
client: events reach the client as they are produced with the headers given, and a client that
disconnects mid-stream stops the stream at once, even while it waits on a silent backend (no
task group listens for the disconnect any more, so this is the behaviour to keep)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from distillserve.launchers.child_process import free_port
from distillserve.serving.sse_response import SSEResponse


class Stream:
    """Three events, then waits on ``release`` (a backend that went quiet); records how it ended."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def events(self) -> AsyncGenerator[bytes, None]:
        outcome = "finished"
        try:
            for i in range(3):
                yield f"data: {i}\n\n".encode()
            await self.release.wait()
            yield b"data: [DONE]\n\n"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if not self.ended.done():
                self.ended.set_result(outcome)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[Stream]]]:
    streams: list[Stream] = []

    async def endpoint(_: Request) -> SSEResponse:
        stream = Stream()
        streams.append(stream)
        return SSEResponse(stream.events(), headers={"X-Distillserve-Route": "teacher"})

    app = Starlette(routes=[Route("/stream", endpoint, methods=["POST"])])
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http="httptools", log_level="warning", timeout_graceful_shutdown=2
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/stream", streams
    finally:
        srv.should_exit = True
        await task


async def test_events_arrive_in_order_with_headers(server: tuple[str, list[Stream]]) -> None:
    url, streams = server
    async with httpx.AsyncClient() as client, client.stream("POST", url, json={}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-distillserve-route"] == "teacher"
        lines: list[str] = []
        async for line in r.aiter_lines():
            if line:
                lines.append(line)
            if len(lines) == 3:
                streams[0].release.set()
    assert lines == ["data: 0", "data: 1", "data: 2", "data: [DONE]"]
    assert await asyncio.wait_for(streams[0].ended, 5) == "finished"


async def test_client_disconnect_stops_a_waiting_stream(server: tuple[str, list[Stream]]) -> None:
    url, streams = server
    async with httpx.AsyncClient() as client, client.stream("POST", url, json={}) as r:
        async for line in r.aiter_lines():
            if line == "data: 2":
                break  # leave while the stream waits on its backend
    # Closing the response closed the connection: the stream is cancelled without being released.
    assert await asyncio.wait_for(streams[0].ended, 5) == "cancelled"
    assert not streams[0].release.is_set()
