"""A lean ``text/event-stream`` response: the events go straight to the ASGI ``send``.

Starlette's ``StreamingResponse`` runs every stream inside an anyio task group (one task to
send, one to listen for the client leaving), which under load was the largest piece of the
gateway's own cost per streamed request (bench/RESULTS.md, profile). Here a single
``receive()`` waiter cancels the streaming task when the client disconnects, so an abandoned
stream still stops reading its backend at once (the relay's ``finally`` closes it), as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_START_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8")]


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None) -> None:
        self.events = events
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            *_START_HEADERS,
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        left = _ClientLeft(streaming)
        watcher = asyncio.ensure_future(_disconnected(receive))
        watcher.add_done_callback(left.check)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for event in self.events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            watcher.remove_done_callback(left.check)  # the server's receive() answers once we end
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left.happened:
                raise
            streaming.uncancel()  # ours: the client is gone, and the relay has stopped the backend
        finally:
            watcher.cancel()
            await self.events.aclose()  # a send that failed leaves it suspended: close it now


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (a request body not read yet is skipped over)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _ClientLeft:
    """Cancels the streaming task when the client disconnects mid-stream."""

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.happened = False

    def check(self, watcher: asyncio.Future[None]) -> None:
        if watcher.cancelled() or watcher.exception() is not None:
            return
        self.happened = True
        self.task.cancel()
