"""Checking what an OpenAI-compatible upstream answered with status 200, before anyone uses it.

A 200 is not yet an answer: a proxy in between may send an HTML page, a provider may answer
``{"choices": []}``, a stream may be cut off half way. Each becomes ``BadUpstreamResponse``
(an OpenAI-shaped 502 for the client, counted as a backend error of kind
``bad_upstream_response``), so nothing broken reaches the client as if it were fine, nor the
teacher log as a good answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from distillserve.protocol.errors import BadUpstreamResponse
from distillserve.protocol.sse import iter_events

_SNIPPET = 200


def parse_answer(backend: str, content: bytes) -> dict[str, Any]:
    """A blocking ``chat.completion`` / ``text_completion`` body with at least one choice."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise BadUpstreamResponse(
            f"{backend}: upstream answered 200 with a body that is not JSON: {_snippet(content)}"
        ) from None
    if not isinstance(body, dict):
        raise BadUpstreamResponse(f"{backend}: upstream answer is not a JSON object: {_snippet(content)}")
    _check_choices(backend, body)
    return body


def _check_choices(backend: str, body: dict[str, Any]) -> None:
    choices = body.get("choices")
    if isinstance(choices, list) and choices and all(isinstance(c, dict) for c in choices):
        return
    if "error" in body:  # some providers answer errors with status 200
        raise BadUpstreamResponse(f"{backend}: upstream answered 200 with an error: {body['error']}")
    raise BadUpstreamResponse(f"{backend}: upstream answer has no choices")


async def checked_events(backend: str, lines: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The stream's events; a stream that ends before any choice finished was truncated.

    Every provider sends a ``finish_reason`` before ``[DONE]`` (and the usage-only chunk), so a
    stream without one was cut off: the connection closed, or the upstream died mid-answer.
    """
    finished = False
    events = iter_events(lines)
    while True:
        try:
            event = await events.__anext__()
        except StopAsyncIteration:
            break
        except orjson.JSONDecodeError as exc:
            raise BadUpstreamResponse(
                f"{backend}: upstream sent a stream event that is not JSON ({exc})"
            ) from None
        if not isinstance(event, dict):
            raise BadUpstreamResponse(f"{backend}: upstream sent a stream event that is not an object")
        finished = finished or any(
            isinstance(c, dict) and c.get("finish_reason") for c in event.get("choices") or []
        )
        yield event
    if not finished:
        raise BadUpstreamResponse(f"{backend}: upstream stream ended before a finish reason (truncated)")


def _snippet(content: bytes) -> str:
    return content[:_SNIPPET].decode(errors="replace")
