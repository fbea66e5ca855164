"""A prompt template that renders from values and parses its own renderings back.

The testbed teacher sees only the prompt text, so it recovers the values by matching the
prompt against the template it was rendered from: each ``{slot}`` becomes a named group with
the slot's pattern (closed word lists or numbers), a repeated slot a back-reference.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping


def one_of(words: tuple[str, ...] | list[str]) -> str:
    """A pattern matching exactly one of ``words`` (longest first, so none shadows another)."""
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


class PromptTemplate:
    def __init__(self, text: str, slots: Mapping[str, str]) -> None:
        self.text = text
        parts: list[str] = []
        seen: set[str] = set()
        for literal, field, _, _ in string.Formatter().parse(text):
            parts.append(re.escape(literal))
            if field is None:
                continue
            if field in seen:
                parts.append(f"(?P={field})")
            else:
                parts.append(f"(?P<{field}>{slots[field]})")
                seen.add(field)
        self.slots = frozenset(seen)
        self.pattern = re.compile("".join(parts))

    def render(self, values: Mapping[str, str]) -> str:
        return self.text.format(**values)

    def parse(self, prompt: str) -> dict[str, str] | None:
        m = self.pattern.fullmatch(prompt.strip())
        return m.groupdict() if m else None
