"""The teacher-log record: the contract between the gateway and the distiller.

Schema-versioned JSON. ``key`` groups one conversation into one Kafka partition.
Bump ``SCHEMA_VERSION`` on any incompatible change; readers reject versions they
do not know (the record then goes to the dead-letter topic).

Version 2 keeps the teacher's answer as the provider sent it: ``usage`` with its nested
details (``prompt_tokens_details: null`` from vLLM, ``{cached_tokens}`` and
``completion_tokens_details: {reasoning_tokens}`` from OpenAI and DeepSeek, DeepSeek's
``prompt_cache_hit_tokens``) and any field we do not know, tool calls, refusals, content parts
and the system fingerprint. Version-1 records (flat integer usage) still read; a version-1
reader rejects version 2 by its number instead of failing on a nested usage field.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from distillserve.teacher_log.usage import ToolCall, Usage

SCHEMA_VERSION = 2
#: Versions this reader understands: every version-1 field kept its meaning in version 2.
READABLE_VERSIONS = frozenset({1, 2})


class TokenLogprob(BaseModel):
    """One generated token, its log-probability and the teacher's top-k alternatives."""

    model_config = ConfigDict(extra="ignore")
    token: str
    logprob: float
    top: list[tuple[str, float]] = Field(default_factory=list)


class TeacherLogRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    # "teacher": a request the teacher served; "shadow": a student-served request also asked of the teacher.
    kind: Literal["teacher", "shadow"] = "teacher"
    request_id: str
    timestamp: float = Field(default_factory=time.time)
    key: str
    endpoint: Literal["chat", "completions"] = "chat"
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    sampling: dict[str, Any] = Field(default_factory=dict)
    difficulty: float | None = None
    route: str = "teacher"
    teacher_model: str
    teacher_backend: str
    response_text: str
    reasoning_content: str | None = None
    # Any reason the provider gave: stop, length, tool_calls, content_filter, ...
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    # The answer's content when the provider sent a list of parts (``response_text`` joins their text).
    content_parts: list[dict[str, Any]] | None = None
    system_fingerprint: str | None = None
    # Fields of the answer's message we do not model (``annotations``, ``audio``, ...), kept as sent.
    message_extras: dict[str, Any] | None = None
    logprobs: list[TokenLogprob] | None = None
    # Shadow pairs: what the student answered to the same prompt.
    student_model: str | None = None
    student_text: str | None = None
    # The request's ``metadata.task`` tag, so the grader chosen for its class can be chosen again.
    task: str | None = None
    # The caller's tenant (its API key's), when the request came with a keyed policy.
    tenant: str | None = None

    def to_json(self) -> bytes:
        # pydantic's own serializer: 5x faster than model_dump + orjson, and the same JSON.
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> TeacherLogRecord:
        """Parse a record; raises ``ValueError`` for malformed JSON or an unknown schema version."""
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("teacher-log record must be a JSON object")
        version = obj.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"unsupported teacher-log schema_version {version!r}")
        return cls.model_validate(obj)


def conversation_key(messages: list[dict[str, Any]] | None, prompt: str | None, user: str | None) -> str:
    """Stable key of a conversation: the user plus its first user turn (or the prompt).

    Later turns of the same conversation share the first turn, so they hash to the same partition.
    """
    first = prompt or ""
    if messages:
        for m in messages:
            if m.get("role") == "user":
                c = m.get("content")
                first = c if isinstance(c, str) else orjson.dumps(c).decode()
                break
    h = hashlib.blake2b(f"{user or ''}\x00{first}".encode(), digest_size=12)
    return h.hexdigest()
