"""The ``judge`` grader: an LLM compares the candidate with the reference, asked in both orders.

Any OpenAI-compatible chat endpoint can judge (by default the teacher: see ``grading.factory``).
The prompt is MT-Bench's pairwise comparison (Zheng et al., 2023): "[[A]]", "[[B]]" or "[[C]]" for
a tie. LLM judges favour a position, so each pair is asked twice, the reference first and then the
candidate first; the candidate earns half a point for each order in which it is judged at least as
good. With the default threshold 1.0 the verdict needs both orders to agree: a judge that only
ever names one position scores 0.5 and agrees with nothing.

Answers are compared without their reasoning traces (and cut at ``max_answer_chars``) so the
judge's context stays bounded. Every verdict is cached by a hash of what was asked; at most
``max_concurrency`` calls run at once; calls, tokens and cache hits go to a ``JudgeMeter``
(Prometheus in ``monitoring.graders``), so the judge's cost is visible.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from distillserve.grading.text import answer_text

Preference = Literal["A", "B", "tie"]

JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the two answers given by AI assistants to the "
    "user question below. Choose the answer that is more correct; for a question with one right "
    "result (a number, a choice, a JSON value), the answer with that result is better. Do not let "
    "the order of the answers, their length or their style influence you. Output your final verdict "
    'strictly in this format: "[[A]]" if answer A is better, "[[B]]" if answer B is better, and '
    '"[[C]]" for a tie (both equally correct, or both equally wrong).'
)
_VERDICT = re.compile(r"\[\[\s*(A|B|C)\s*\]\]")
_LEADING = re.compile(r"^\W*(A|B|C|tie)\b", re.IGNORECASE)


class JudgeError(RuntimeError):
    """The judge endpoint failed (network, status, body): the pair has no grade."""


class JudgeMeter(Protocol):
    def call(self, outcome: str) -> None:
        """One judge call ended: "ok", "unparsed" or "error"."""

    def tokens(self, kind: str, n: int) -> None:
        """Tokens a judge call used: kind "prompt" or "completion"."""

    def cache(self, hit: bool) -> None: ...

    def usage(self, model: str, usage: dict[str, Any]) -> None:
        """A judge call's whole ``usage`` object (cached prompt tokens included), for its price."""


class NoMeter:
    def call(self, outcome: str) -> None:
        pass

    def tokens(self, kind: str, n: int) -> None:
        pass

    def cache(self, hit: bool) -> None:
        pass

    def usage(self, model: str, usage: dict[str, Any]) -> None:
        pass


@dataclass(frozen=True)
class JudgeEndpoint:
    url: str  # base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0


def judge_messages(prompt: str, first: str, second: str) -> list[dict[str, str]]:
    user = f"[User Question]\n{prompt}\n\n[The Start of Answer A]\n{first}\n[The End of Answer A]\n\n"
    user += f"[The Start of Answer B]\n{second}\n[The End of Answer B]"
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_preference(text: str) -> Preference | None:
    """The verdict in a judge's reply (its reasoning trace ignored), or None when it gave none."""
    answer = answer_text(text)
    found = _VERDICT.findall(answer)
    letter = found[-1] if found else None
    if letter is None:
        m = _LEADING.match(answer)
        letter = m.group(1).upper() if m else None
    return {"A": "A", "B": "B", "C": "tie", "TIE": "tie"}.get(letter or "")  # type: ignore[return-value]


class VerdictCache:
    """A bounded, thread-safe LRU of verdicts keyed by content hash."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Preference | None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(model: str, messages: list[dict[str, str]]) -> str:
        return hashlib.sha256(orjson.dumps([model, messages])).hexdigest()

    def get(self, key: str) -> tuple[bool, Preference | None]:
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key]

    def put(self, key: str, value: Preference | None) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
