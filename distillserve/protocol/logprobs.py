"""Log-probabilities cut down to what the client asked for.

The gateway may ask a backend for more than the client did (the teacher's top-k for distillation,
the student's logprobs for a confidence cascade). What reaches the client is exactly its own ask:
no ``logprobs`` unless requested, and no more alternatives than its ``top_logprobs`` (chat) or
``logprobs`` (completions). Entries are copied, never edited in place, because the teacher log
may still hold the originals.
"""

from __future__ import annotations

from typing import Any

from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest


def fit_logprobs(choice: dict[str, Any], request: ChatCompletionRequest | CompletionRequest) -> None:
    """Replace ``choice["logprobs"]`` by what ``request`` asked for (a choice or a stream chunk's choice)."""
    lp = choice.get("logprobs")
    if not lp:
        return
    if isinstance(request, ChatCompletionRequest):
        choice["logprobs"] = _chat(lp, request.top_logprobs or 0) if request.logprobs else None
    else:
        choice["logprobs"] = _completion(lp, request.logprobs) if request.logprobs is not None else None


def _chat(lp: dict[str, Any], top: int) -> dict[str, Any]:
    content = lp.get("content")
    if not content or all(len(e.get("top_logprobs") or ()) <= top for e in content):
        return lp
    # OpenAI's and vLLM's alternatives come most likely first.
    return {**lp, "content": [{**e, "top_logprobs": (e.get("top_logprobs") or [])[:top]} for e in content]}


def _completion(lp: dict[str, Any], top: int) -> dict[str, Any]:
    tops = lp.get("top_logprobs")
    if not tops or all(len(t or ()) <= top for t in tops):
        return lp
    # The legacy shape maps token -> logprob per position, in no promised order.
    best = [dict(sorted(t.items(), key=lambda kv: -kv[1])[:top]) if t else t for t in tops]
    return {**lp, "top_logprobs": best}
