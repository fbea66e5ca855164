"""What a relayed stream carried, gathered chunk by chunk for metrics and the teacher log, and
the reasoning strip applied to a chunk on its way to the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distillserve.protocol.reasoning import ThinkStreamFilter
from distillserve.serving.route_plan import Request
from distillserve.teacher_log.answer import AnswerOrigin, TeacherAnswer


@dataclass
class StreamState:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None

    def gather(self, choice: dict[str, Any], chat: bool) -> None:
        if chat:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.content.append(delta["content"])
            r = delta.get("reasoning_content") or delta.get("reasoning")
            if r:
                self.reasoning.append(r)
            lp = choice.get("logprobs")
            if lp and lp.get("content"):
                self.logprobs.extend(lp["content"])
        elif choice.get("text"):
            self.content.append(choice["text"])
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

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
        )


def has_content(choice: dict[str, Any], chat: bool) -> bool:
    if chat:
        delta = choice.get("delta") or {}
        return bool(delta.get("content") or delta.get("reasoning_content"))
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
