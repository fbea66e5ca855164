"""Extract the final result of a worked answer, the way math and multiple-choice benchmarks do.

In order (the first that matches wins, so a stated answer beats a number in passing):
GSM8K's ``#### n``; the last ``\\boxed{…}`` (nested braces, LaTeX fractions and ``\\text`` undone);
a multiple-choice letter (``Answer: B``, ``(B)``, ``the correct option is C``); an ``answer is n`` /
``Answer: n`` statement; the last number in the text (lm-evaluation-harness's "flexible extract").
Numbers lose thousands separators, currency signs and units and compare as exact fractions
(``1,234.50 dollars`` == ``$1234.5``, ``3/4`` == ``0.75``). The reasoning trace is never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from distillserve.grading.grade import Grade, Grader
from distillserve.grading.text import answer_text, normalize

_GSM8K = re.compile(r"####\s*([^\n]+)")
# The keyword in any case, the letter in capitals only ("the answer is a dog" is no choice).
_CHOICE_STATED = re.compile(
    r"(?i:answer|correct\s+(?:option|choice))[\s*:=]*(?i:is\b)?[\s*:=]*(?i:option\s*)?[*(\[]*\s*([A-E])[*)\]]*(?![\w])"
)
_CHOICE_ALONE = re.compile(r"^[\*\(\[]*\s*([A-E])\s*(?:[\*\)\].:]|$)")
_ANSWER_IS = re.compile(r"(?:answer\s*(?:is|:|=)|result\s*(?:is|:|=))\s*([^\n]+)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.,/])(-)?\s?\$?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:\s*/\s*(\d+))?")
_FRAC = re.compile(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}")
_TEXT_CMD = re.compile(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\[,;! ]|\\\$|\\%|\^\{?\\circ\}?|\{,\}|\\left|\\right")

Kind = Literal["number", "choice", "text", "none"]


@dataclass(frozen=True)
class FinalAnswer:
    kind: Kind
    value: Fraction | str | None
    source: str  # which rule found it: "####", "boxed", "choice", "answer_is", "last_number", "text"

    def __str__(self) -> str:
        return f"{self.value}" if self.value is not None else "(none)"


def boxed_contents(text: str) -> str | None:
    """The contents of the last ``\\boxed{…}`` (or ``\\fbox{…}``), braces matched, else None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None  # unbalanced: the answer was cut off


def delatex(text: str) -> str:
    text = _LATEX_NOISE.sub("", text)
    for _ in range(3):  # nested \frac{\frac..}{..} rarely goes deeper
        text = _FRAC.sub(r"(\1)/(\2)", text)
        text = _TEXT_CMD.sub(r" \1", text)
    return text.replace("(", "").replace(")", "").strip() if re.fullmatch(r"[\d\s()/.,-]+", text) else text


def parse_number(text: str) -> Fraction | None:
    """The last number in ``text`` as an exact fraction (thousands separators, $ and units ignored)."""
    found = None
    for m in _NUMBER.finditer(text):
        found = m
    if found is None:
        return None
    sign, digits, denominator = found.groups()
    value = Fraction(digits.replace(",", ""))
    if denominator is not None:
        if int(denominator) == 0:
            return None
        value /= int(denominator)
    return -value if sign else value


def _number_or_text(raw: str, source: str) -> FinalAnswer:
    raw = delatex(raw).strip().rstrip(".")
    alone = _CHOICE_ALONE.match(raw)
    if alone and len(raw) <= 4:
        return FinalAnswer("choice", alone.group(1).upper(), source)
    number = parse_number(raw)
    if number is not None:
        return FinalAnswer("number", number, source)
    return FinalAnswer("text", normalize(raw), source)


def extract_final_answer(text: str) -> FinalAnswer:
    answer = answer_text(text)  # the reasoning trace is dropped here
    if not answer:
        return FinalAnswer("none", None, "empty")
    gsm = _GSM8K.findall(answer)
    if gsm:
        return _number_or_text(gsm[-1], "####")
    boxed = boxed_contents(answer)
    if boxed is not None:
        return _number_or_text(boxed, "boxed")
    for pattern in (_CHOICE_STATED, _CHOICE_ALONE):
        letters = pattern.findall(answer)
        if letters:
            return FinalAnswer("choice", letters[-1].upper(), "choice")
    stated = _ANSWER_IS.findall(answer)
    if stated and parse_number(stated[-1]) is not None:
        return FinalAnswer("number", parse_number(stated[-1]), "answer_is")
    number = parse_number(answer)
    if number is not None:
        return FinalAnswer("number", number, "last_number")
    return FinalAnswer("text", normalize(answer), "text")


def same_final_answer(a: FinalAnswer, b: FinalAnswer, rel_tol: float = 1e-6) -> bool:
    if a.kind == "none" or b.kind == "none" or a.kind != b.kind:
        return False
    if isinstance(a.value, Fraction) and isinstance(b.value, Fraction):
        if a.value == b.value:
            return True
        return abs(a.value - b.value) <= rel_tol * max(abs(a.value), abs(b.value))
    return a.value == b.value


class FinalAnswerGrader(Grader):
    name = "final_answer"

    def __init__(self, rel_tol: float = 1e-6) -> None:
        self.rel_tol = rel_tol

    def grade(self, prompt: str, reference: str, candidate: str) -> Grade:
        ref, cand = extract_final_answer(reference), extract_final_answer(candidate)
        same = same_final_answer(ref, cand, self.rel_tol)
        return self.verdict(
            1.0 if same else 0.0, f"reference {ref} ({ref.source}), candidate {cand} ({cand.source})"
        )
