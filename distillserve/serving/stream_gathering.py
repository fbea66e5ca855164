"""What a relayed stream carried, gathered chunk by chunk for metrics and the teacher log, and
the reasoning strip applied to a chunk on its way to the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distillserve.protocol.reasoning import ThinkStreamFilter
from distillserve.serving.route_plan import Request
from distillserve.teacher_log.answer import AnswerOrigin, TeacherAnswer
from distillserve.teacher_log.message import text_of_parts


class ToolCallAssembler:
    """Tool calls rebuilt from stream deltas, as OpenAI, DeepSeek and vLLM send them: the first
    delta of a call (by ``index``) carries its id, type and function name; later ones carry pieces
    of ``function.arguments`` to append."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, deltas: list[dict[str, Any]]) -> None:
        for position, d in enumerate(deltas):
            index = d.get("index", position)
            call = self._calls.setdefault(index, {"id": None, "type": "function", "function": {}})
            if d.get("id"):
                call["id"] = d["id"]
            if d.get("type"):
                call["type"] = d["type"]
            fn = d.get("function") or {}
            if fn.get("name"):
                call["function"]["name"] = fn["name"]
            if fn.get("arguments"):
                call["function"]["arguments"] = call["function"].get("arguments", "") + fn["arguments"]

    def calls(self) -> list[dict[str, Any]]:
        return [self._calls[i] for i in sorted(self._calls)]


@dataclass
class StreamState:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    response_id: str | None = None
    system_fingerprint: str | None = None

    def gather(self, chunk: dict[str, Any], chat: bool) -> None:
        """One upstream chunk: its first choice's delta, and the chunk-level id, fingerprint and usage."""
        self.response_id = self.response_id or chunk.get("id")
        self.system_fingerprint = chunk.get("system_fingerprint") or self.system_fingerprint
        if chunk.get("usage"):  # the final chunk with include_usage (``choices: []``)
            self.usage = chunk["usage"]
        choice = first_choice(chunk)
        if choice is None:
            return
        if chat:
            self._gather_delta(choice.get("delta") or {})
            lp = choice.get("logprobs")
            if lp and lp.get("content"):
                self.logprobs.extend(lp["content"])
        elif choice.get("text"):
            self.content.append(choice["text"])
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    def _gather_delta(self, delta: dict[str, Any]) -> None:
        content = delta.get("content")
        if isinstance(content, list):
            content = text_of_parts(content)
        if content:
            self.content.append(content)
        r = delta.get("reasoning_content") or delta.get("reasoning")
        if r:
            self.reasoning.append(r)
        if delta.get("refusal"):
            self.refusal.append(delta["refusal"])
        if delta.get("tool_calls"):
            self.tool_calls.add(delta["tool_calls"])

    @property
    def text(self) -> str:
        return "".join(self.content)

    def teacher_answer(self, request: Request, origin: AnswerOrigin) -> TeacherAnswer:
        return TeacherAnswer(
            request,
            origin,
            self.text,
            "".join(self.reasoning) or None,
            self.finish_reason,
            self.usage,
            self.logprobs or None,
            response_id=self.response_id,
            tool_calls=self.tool_calls.calls() or None,
            refusal="".join(self.refusal) or None,
            system_fingerprint=self.system_fingerprint,
        )


def first_choice(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """The choice with index 0 (the one a record keeps), or None (e.g. the usage-only chunk)."""
    for choice in chunk.get("choices") or []:
        if choice.get("index", 0) == 0:
            return choice
    return None


def has_content(choice: dict[str, Any], chat: bool) -> bool:
    """Whether a choice carries the first generated output (for time to first token)."""
    if chat:
        delta = choice.get("delta") or {}
        return any(
            delta.get(k) for k in ("content", "reasoning_content", "reasoning", "tool_calls", "refusal")
        )
    return bool(choice.get("text"))


def strip_chunk(choice: dict[str, Any], think: ThinkStreamFilter) -> None:
    delta = choice.get("delta")
    if not delta:
        return
    delta.pop("reasoning_content", None)
    delta.pop("reasoning", None)
    if delta.get("content"):
        delta["content"] = think.feed(delta["content"])
    if choice.get("finish_reason"):
        tail = think.flush()
        if tail:
            delta["content"] = (delta.get("content") or "") + tail
