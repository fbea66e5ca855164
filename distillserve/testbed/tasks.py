"""Synthetic tasks with exact answers: the testbed that lets the whole loop run offline and be measured.

Each task maps a short input to one exact answer, so quality is measured by exact
match, not assumed. ``BASE_TASKS`` are what the testbed student is pre-trained on;
``LEARNABLE_TASKS`` are new to it and learned by distillation from the teacher's
answers; ``HARD_TASKS`` stay beyond a tiny student and should keep going to the teacher.

A prompt is ``"<task>: <input>"`` in the user turn; the answer is the bare result.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
# Every character any prompt or answer of the testbed can contain.
ALPHABET = LETTERS + LETTERS.upper() + DIGITS + " :+-*=,.?!'\"()[]{}<>/\\_#@&%$;|~^`\n"


@dataclass(frozen=True)
class Task:
    name: str
    make_input: Callable[[random.Random], str]
    solve: Callable[[str], str]
    difficulty: str  # "base", "learnable" or "hard"

    def prompt(self, rng: random.Random) -> tuple[str, str]:
        x = self.make_input(rng)
        return f"{self.name}: {x}", self.solve(x)


def _word(rng: random.Random, lo: int = 3, hi: int = 8) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _sum_input(rng: random.Random) -> str:
    return f"{_number(rng, rng.randint(3, 5))}+{_number(rng, rng.randint(3, 5))}"


def _product_input(rng: random.Random) -> str:
    return f"{_number(rng, rng.randint(2, 3))}*{_number(rng, rng.randint(2, 3))}"


def _solve_arith(x: str) -> str:
    a, op, b = re.fullmatch(r"(\d+)([+*])(\d+)", x).groups()  # type: ignore[union-attr]
    return str(int(a) + int(b)) if op == "+" else str(int(a) * int(b))


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("copy", _word, lambda x: x, "base"),
        Task("upper", _word, str.upper, "base"),
        Task(
            "first",
            lambda r: " ".join(_word(r, 2, 5) for _ in range(r.randint(2, 4))),
            lambda x: x.split()[0],
            "base",
        ),
        Task("reverse", _word, lambda x: x[::-1], "learnable"),
        Task("sort", _word, lambda x: "".join(sorted(x)), "learnable"),
        Task("add", _sum_input, _solve_arith, "hard"),
        Task("multiply", _product_input, _solve_arith, "hard"),
    )
}

BASE_TASKS = [n for n, t in TASKS.items() if t.difficulty == "base"]
LEARNABLE_TASKS = [n for n, t in TASKS.items() if t.difficulty == "learnable"]
HARD_TASKS = [n for n, t in TASKS.items() if t.difficulty == "hard"]

_PROMPT = re.compile(r"^\s*([a-z]+):\s?(.*?)\s*$", re.DOTALL)


def parse_prompt(prompt: str) -> tuple[Task, str] | None:
    """The task and input of a testbed prompt, or None if it is not one."""
    m = _PROMPT.match(prompt)
    if not m or m.group(1) not in TASKS:
        return None
    task = TASKS[m.group(1)]
    try:
        task.solve(m.group(2))
    except Exception:
        return None
    return task, m.group(2)


def answer(prompt: str) -> str | None:
    """The exact answer to a testbed prompt, or None if it is not one."""
    parsed = parse_prompt(prompt)
    if parsed is None:
        return None
    task, x = parsed
    return task.solve(x)


def sample(tasks: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (prompt, answer) pairs drawn evenly from ``tasks``, reproducible for ``seed``."""
    rng = random.Random(seed)
    return [TASKS[tasks[i % len(tasks)]].prompt(rng) for i in range(n)]
