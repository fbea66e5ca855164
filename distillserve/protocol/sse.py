"""Server-sent events as OpenAI streams them: ``data: <json>\\n\\n`` and a closing ``data: [DONE]``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def encode_event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def iter_events(lines: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Parse an upstream SSE stream into JSON objects; stops at ``[DONE]``.

    An ``error`` object sent mid-stream (vLLM does this) is yielded like any other event;
    callers check for it.
    """
    done = False
    async for line in lines:
        if done or not line.startswith(b"data:"):
            # Comments, keep-alives, separators; after [DONE] we still read to the end so the
            # pooled connection is returned for reuse instead of being closed.
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
        elif data:
            yield orjson.loads(data)
