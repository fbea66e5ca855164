"""A teacher's answer as the gateway saw it, and the teacher-log record made from it.

One value (``TeacherAnswer``) carries what a record needs, whichever path produced it: a
blocking answer, a stream gathered chunk by chunk, an escalated cascade, or a shadow
comparison. Turning it into a ``TeacherLogRecord`` is written once, here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from distillserve.grading.selection import task_of
from distillserve.protocol.reasoning import split_think
from distillserve.protocol.schema import ChatCompletionRequest, CompletionRequest, SamplingFields, new_id
from distillserve.teacher_log.message import AnswerMessage
from distillserve.teacher_log.record import TeacherLogRecord, TokenLogprob, conversation_key

Request = ChatCompletionRequest | CompletionRequest
_SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "top_logprobs",
)


@dataclass(frozen=True)
class AnswerOrigin:
    """Who answered and why it was the teacher."""

    teacher_model: str
    teacher_backend: str
    #: Why the request reached the teacher: "teacher" (scored hard), "pinned", "cascade", "shadow", ...
    route: str
    difficulty: float | None = None
    kind: Literal["teacher", "shadow"] = "teacher"
    #: The student's answer to the same prompt, when there was one (an escalated cascade, a shadow pair).
    student_model: str | None = None
    student_text: str | None = None


@dataclass(frozen=True)
class TeacherAnswer:
    request: Request
    origin: AnswerOrigin
    text: str
    reasoning: str | None = None
    finish_reason: str | None = None
    #: ``usage`` as the provider sent it (nested details, nulls and unknown counters included).
    usage: dict[str, Any] | None = None
    #: OpenAI ``logprobs.content`` entries: ``{"token", "logprob", "top_logprobs": [...]}``.
    logprobs: list[dict[str, Any]] | None = None
    response_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    refusal: str | None = None
    content_parts: list[dict[str, Any]] | None = None
    system_fingerprint: str | None = None
    message_extras: dict[str, Any] | None = None
    tenant: str | None = None

    @classmethod
    def from_body(cls, request: Request, origin: AnswerOrigin, body: dict[str, Any]) -> TeacherAnswer:
        """From a blocking ``chat.completion`` / ``text_completion`` body."""
        choice = (body.get("choices") or [{}])[0]
        common: dict[str, Any] = {
            "finish_reason": choice.get("finish_reason"),
            "usage": body.get("usage"),
            "response_id": body.get("id"),
            "system_fingerprint": body.get("system_fingerprint"),
        }
        if not isinstance(request, ChatCompletionRequest):
            return cls(request, origin, choice.get("text") or "", **common)
        message = AnswerMessage.parse(choice.get("message") or {})
        return cls(
            request,
            origin,
            message.text,
            message.reasoning,
            logprobs=(choice.get("logprobs") or {}).get("content"),
            tool_calls=message.tool_calls,
            refusal=message.refusal,
            content_parts=message.content_parts,
            message_extras=message.extras,
            **common,
        )

    @property
    def messages(self) -> list[dict[str, Any]] | None:
        if isinstance(self.request, ChatCompletionRequest):
            return [m.model_dump(exclude_none=True) for m in self.request.messages]
        return None

    def to_record(self) -> TeacherLogRecord:
        request, origin = self.request, self.origin
        chat = isinstance(request, ChatCompletionRequest)
        messages = self.messages
        prompt = None if chat else request.prompt_str()  # type: ignore[union-attr]
        reasoning = self.reasoning
        if reasoning is None and "</think>" in self.text:
            reasoning, _ = split_think(self.text)
        return TeacherLogRecord(
            kind=origin.kind,
            request_id=self.response_id or new_id("req"),
            key=conversation_key(messages, prompt, request.user),
            endpoint="chat" if chat else "completions",
            messages=messages,
            prompt=prompt,
            sampling=_sampling(request),
            difficulty=origin.difficulty,
            route=origin.route,
            teacher_model=origin.teacher_model,
            teacher_backend=origin.teacher_backend,
            response_text=self.text,
            reasoning_content=reasoning,
            finish_reason=self.finish_reason,
            usage=self.usage or {},
            tool_calls=self.tool_calls or None,
            refusal=self.refusal,
            content_parts=self.content_parts,
            system_fingerprint=self.system_fingerprint,
            message_extras=self.message_extras or None,
            logprobs=[_token_logprob(e) for e in self.logprobs] if self.logprobs else None,
            student_model=origin.student_model,
            student_text=origin.student_text,
            task=task_of((request.model_extra or {}).get("metadata")),
            tenant=self.tenant,
        )


def difficulty_of(score: float) -> float | None:
    """A router score as logged: NaN (no score, e.g. a pinned route) becomes None."""
    return None if math.isnan(score) else score


def _token_logprob(entry: dict[str, Any]) -> TokenLogprob:
    top = [(t["token"], float(t["logprob"])) for t in entry.get("top_logprobs") or []]
    return TokenLogprob(token=entry["token"], logprob=float(entry["logprob"]), top=top)


def _sampling(request: SamplingFields) -> dict[str, Any]:
    return {k: getattr(request, k) for k in _SAMPLING_KEYS if getattr(request, k, None) is not None}
