"""The assistant message of a blocking answer, split into what a teacher-log record keeps.

Providers differ in small ways, all read here: the reasoning trace is ``reasoning_content``
(DeepSeek, vLLM's reasoning parsers) or ``reasoning`` (newer vLLM, OpenRouter); ``content`` is
a string, ``null`` (a pure tool call or refusal) or a list of content parts; ``tool_calls`` is
absent, ``null`` or ``[]`` when there are none; OpenAI adds ``refusal`` and ``annotations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_KNOWN = frozenset({"role", "content", "reasoning_content", "reasoning", "tool_calls", "refusal"})
_TEXT_PARTS = frozenset({"text", "output_text"})


@dataclass(frozen=True)
class AnswerMessage:
    text: str
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    refusal: str | None = None
    content_parts: list[dict[str, Any]] | None = None
    #: Fields we do not model, kept as sent; ``null``/empty ones are left out (they say nothing).
    extras: dict[str, Any] | None = None

    @classmethod
    def parse(cls, message: dict[str, Any]) -> AnswerMessage:
        content = message.get("content")
        parts = content if isinstance(content, list) else None
        text = text_of_parts(parts) if parts is not None else content or ""
        extras = {k: v for k, v in message.items() if k not in _KNOWN and v not in (None, [], {})}
        return cls(
            text=text,
            reasoning=message.get("reasoning_content") or message.get("reasoning") or None,
            tool_calls=message.get("tool_calls") or None,
            refusal=message.get("refusal") or None,
            content_parts=parts,
            extras=extras or None,
        )


def text_of_parts(parts: list[Any]) -> str:
    """The text of a list of content parts (non-text parts are kept in the record, not here)."""
    return "".join(
        str(p.get("text") or "") for p in parts if isinstance(p, dict) and p.get("type") in _TEXT_PARTS
    )
