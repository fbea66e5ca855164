"""Incremental detokenization with stop strings, for streaming token by token.

Decoding each token on its own breaks multi-byte characters and merges (byte-level
BPE), so the text is decoded from all generated ids and only the new suffix is
emitted; a suffix ending in U+FFFD (an incomplete UTF-8 sequence) waits for the next
token. Text that could be the start of a stop string is held back until it is known
not to be one, so a stop string never reaches the client, even partly.
"""

from __future__ import annotations

from typing import Any


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._ids: list[int] = []
        self._text = ""
        self._emitted = 0
        self.stopped = False

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        return self._text[: self._emitted]

    def add(self, token_id: int) -> str:
        """Take one generated token; return the text that is now safe to emit (may be empty)."""
        self._ids.append(token_id)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        self._text = text
        end = self._stop_position()
        if end is not None:
            self.stopped = True
            self._text = text[:end]
            return self._emit(end)
        return self._emit(len(text) - self._held_back())

    def flush(self) -> str:
        """At the end of generation: whatever was held back for a stop string that never came."""
        return self._emit(len(self._text))

    def _emit(self, upto: int) -> str:
        upto = max(upto, self._emitted)
        new, self._emitted = self._text[self._emitted : upto], upto
        return new

    def _stop_position(self) -> int | None:
        found = [i for s in self._stop if (i := self._text.find(s, max(0, self._emitted - len(s) + 1))) != -1]
        return min(found) if found else None

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of some stop string."""
        longest = 0
        for s in self._stop:
            for k in range(min(len(s) - 1, len(self._text)), longest, -1):
                if self._text.endswith(s[:k]):
                    longest = k
                    break
        return longest
