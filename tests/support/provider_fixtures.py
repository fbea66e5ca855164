"""What a provider fixture says the answer is, read by the official ``openai`` SDK, not by us.

A blocking fixture is parsed as the SDK's ``ChatCompletion``; a streamed one is accumulated
chunk by chunk with the SDK's own ``ChatCompletionStreamState`` (the helper behind
``client.chat.completions.stream``), which merges every delta field generically, so DeepSeek's
``reasoning_content`` and vLLM's ``reasoning`` are accumulated like ``content``. That is the
oracle the teacher-log record is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.support.fixture_teacher import FIXTURES


@dataclass(frozen=True)
class ExpectedAnswer:
    response_id: str
    text: str
    reasoning: str | None
    finish_reason: str | None
    usage: dict[str, Any]
    tool_calls: list[tuple[str | None, str, str]]  # (id, function name, arguments)
    refusal: str | None
    system_fingerprint: str | None


def provider_fixtures() -> list[str]:
    """Every provider fixture (faults excluded), as the name the fixture teacher takes."""
    return sorted(
        str(p.relative_to(FIXTURES))
        for p in FIXTURES.rglob("*")
        if p.suffix in (".json", ".sse") and p.parent.name != "faults"
    )


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def stream_chunks(data: bytes) -> list[dict[str, Any]]:
    """The JSON events of an SSE body, read line by line (comments and ``[DONE]`` skipped)."""
    out = []
    for line in data.splitlines():
        if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
            out.append(orjson.loads(line[5:]))
    return out


def expected_answer(name: str) -> ExpectedAnswer:
    data = (FIXTURES / name).read_bytes()
    if name.endswith(".sse"):
        chunks = stream_chunks(data)
        state = ChatCompletionStreamState()
        for c in chunks:
            state.handle_chunk(ChatCompletionChunk.model_validate(c))
        completion = state.current_completion_snapshot
        fingerprints = [c["system_fingerprint"] for c in chunks if c.get("system_fingerprint")]
        fingerprint = fingerprints[-1] if fingerprints else None
        usage = next((c["usage"] for c in reversed(chunks) if c.get("usage")), None)
    else:
        body = orjson.loads(data)
        completion = ChatCompletion.model_validate(body)
        fingerprint, usage = body.get("system_fingerprint"), body.get("usage")
    choice = completion.choices[0]
    message = choice.message
    extra = message.model_extra or {}
    return ExpectedAnswer(
        response_id=completion.id,
        text=message.content or "",
        reasoning=extra.get("reasoning_content") or extra.get("reasoning") or None,
        finish_reason=choice.finish_reason,
        usage=without_nulls(usage or {}),
        tool_calls=[(t.id, t.function.name, t.function.arguments) for t in message.tool_calls or []],
        refusal=message.refusal,
        system_fingerprint=fingerprint,
    )
