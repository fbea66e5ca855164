"""The demo's load generator against a server slower than the arrival rate: arrivals beyond the
client's cap are counted as not sent, instead of queueing without bound and still "arriving" long
after the run's duration.

The slow server is a fake (an ``httpx.MockTransport`` that answers after 0.5 s): the fault to
inject is slowness on demand, which no real peer here produces reliably.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai

from distillserve.demo.traffic import DEFAULT_MIX, drive

_SSE = (
    'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"student",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
)


async def _slow_answer(request: httpx.Request) -> httpx.Response:
    assert json.loads(request.content)["stream"] is True
    await asyncio.sleep(0.5)
    return httpx.Response(
        200, text=_SSE, headers={"content-type": "text/event-stream", "x-distillserve-route": "student"}
    )


async def _run() -> tuple[int, int, float]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_slow_answer))
    client = openai.AsyncOpenAI(base_url="http://test/v1", api_key="k", http_client=http, max_retries=0)
    t0 = time.perf_counter()
    # 40/s for 2 s into 2 slots of 0.5 s each: the server takes 4/s, so about 72 arrivals are too many.
    traffic = await drive(client, duration_s=2.0, rate_per_s=40.0, mix=DEFAULT_MIX, seed=1, concurrency=2)
    await client.close()
    return len(traffic.outcomes), traffic.not_sent, time.perf_counter() - t0


def test_arrivals_beyond_the_cap_are_counted_not_queued() -> None:
    sent, not_sent, wall = asyncio.run(_run())
    # In flight plus waiting never exceeds 2 x 2: at most ~4 answers a second for ~2 s, plus the
    # 4 still held at the end, are sent; a slower (loaded) machine sends fewer and sheds more.
    assert sent <= 4 * 2 + 2 * 2 + 2, (sent, not_sent, wall)
    assert not_sent >= 2 * sent, (sent, not_sent, wall)
