"""Server-sent events as OpenAI streams them: ``data: <json>\\n\\n`` and a closing ``data: [DONE]``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def encode_event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def iter_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """Parse an upstream SSE stream into JSON objects; stops at ``[DONE]``.

    An ``error`` object sent mid-stream (vLLM does this) is yielded like any other event;
    callers check for it.
    """
    async for line in lines:
        if not line.startswith("data:"):
            continue  # comments, event names, keep-alives, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield orjson.loads(data)
