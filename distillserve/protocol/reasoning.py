"""Reasoning traces: DeepSeek-R1 style ``<think>…</think>`` in the text, or a separate
``reasoning_content`` field. Clients get them in the form the teacher sent unless
``strip_reasoning`` is set; the teacher log always keeps them whole."""

from __future__ import annotations

import re
from typing import Any

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_THINK_BLOCK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)


def split_think(text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a text that may open with a ``<think>`` block.

    R1 chat templates often put ``<think>`` in the prompt, so an answer may hold only the
    closing tag: then everything before it is reasoning.
    """
    m = _THINK_BLOCK.match(text)
    if m:
        return m.group(1).strip(), text[m.end() :]
    if THINK_CLOSE in text and THINK_OPEN not in text:
        reasoning, _, answer = text.partition(THINK_CLOSE)
        return reasoning.strip(), answer.lstrip()
    return None, text


def strip_message(message: dict[str, Any]) -> None:
    """Remove the reasoning from one chat message dict in place."""
    message.pop("reasoning_content", None)
    message.pop("reasoning", None)
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = split_think(content)[1]


class ThinkStreamFilter:
    """Drops a leading ``<think>…</think>`` block from streamed text pieces.

    Holds back only as many characters as could still be the start of a tag, so
    answer tokens flow without delay once the block is over.
    """

    def __init__(self) -> None:
        self._state = "start"  # start -> (thinking ->) answer
        self._buf = ""

    def feed(self, piece: str) -> str:
        if self._state == "answer":
            return piece
        self._buf += piece
        if self._state == "start":
            stripped = self._buf.lstrip()
            if not stripped:
                return ""
            if stripped.startswith(THINK_OPEN):
                self._state = "thinking"
                self._buf = stripped[len(THINK_OPEN) :]
            elif THINK_OPEN.startswith(stripped):
                return ""  # could still become "<think>"
            else:
                self._state = "answer"
                out, self._buf = self._buf, ""
                return out
        if self._state == "thinking":
            idx = self._buf.find(THINK_CLOSE)
            if idx < 0:
                # keep a tail that may be a partial closing tag
                self._buf = self._buf[-(len(THINK_CLOSE) - 1) :]
                return ""
            rest = self._buf[idx + len(THINK_CLOSE) :].lstrip()
            self._state = "answer"
            self._buf = ""
            return rest
        return ""

    def flush(self) -> str:
        """What is left at end of stream (a lone '<' that never became a tag)."""
        out = self._buf if self._state == "start" else ""
        self._buf = ""
        return out
