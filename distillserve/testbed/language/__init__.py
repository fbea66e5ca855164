"""A natural-language testbed with verifiable answers, beside the synthetic tasks.

Four task families (the request's ``metadata.task`` tag): GSM8K-style ``word_problem``s,
``unit_conversion`` (units and currencies), ``date_arithmetic`` and ``field_extraction`` into
JSON. Prompts are templates × seeded random values, several wordings per problem; each item
carries its exact answer and the grader that checks it (``final_answer`` or ``json``).
``solve`` recovers the values from a prompt and works the answer out step by step, which is
what the testbed teacher says (as DeepSeek-R1 would: reasoning, then the answer).
"""

from __future__ import annotations

import random

from distillserve.testbed.language.conversions import CONVERSIONS
from distillserve.testbed.language.dates import DATES
from distillserve.testbed.language.extraction import EXTRACTION
from distillserve.testbed.language.item import Family, LanguageItem, Problem, Solution
from distillserve.testbed.language.word_problems import WORD_PROBLEMS

FAMILIES: dict[str, Family] = {f.task: f for f in (WORD_PROBLEMS, CONVERSIONS, DATES, EXTRACTION)}

__all__ = ["FAMILIES", "Family", "LanguageItem", "Problem", "Solution", "draw_item", "sample", "solve"]


def draw_item(task: str, rng: random.Random) -> LanguageItem:
    """One item of ``task``: a random problem, wording and values."""
    family = FAMILIES[task]
    problem = rng.choice(family.problems)
    wording = rng.choice(problem.wordings)
    values = problem.draw(rng)
    prompt = wording.render(values)
    solution = problem.solve({k: values[k] for k in wording.slots})
    return LanguageItem(task, family.grader, prompt, solution.answer, solution.final, problem.name)


def sample(tasks: list[str], n: int, seed: int) -> list[LanguageItem]:
    """``n`` items drawn evenly from ``tasks``, reproducible for ``seed``."""
    rng = random.Random(seed)
    return [draw_item(tasks[i % len(tasks)], rng) for i in range(n)]


def solve(prompt: str) -> tuple[str, Solution] | None:
    """(task, worked solution) of a natural-language testbed prompt, or None if it is not one."""
    for family in FAMILIES.values():
        for problem in family.problems:
            for wording in problem.wordings:
                values = wording.parse(prompt)
                if values is not None:
                    return family.task, problem.solve(values)
    return None
