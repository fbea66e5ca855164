"""The natural-language testbed: seeded, varied wordings; every prompt parses back to its values;
the worked answers are right (checked independently) and pass their own graders."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from collections import Counter
from fractions import Fraction

import pytest

from distillserve.grading.final_answer import FinalAnswerGrader
from distillserve.grading.json_answer import JsonGrader
from distillserve.testbed import language
from distillserve.testbed.language.conversions import factor

ITEMS = language.sample(list(language.FAMILIES), 2000, seed=7)
GRADERS = {"final_answer": FinalAnswerGrader(), "json": JsonGrader()}


def test_sampling_is_seeded_and_spreads_evenly_over_the_families() -> None:
    assert language.sample(list(language.FAMILIES), 50, seed=7) == ITEMS[:50]
    assert language.sample(list(language.FAMILIES), 50, seed=8) != ITEMS[:50]
    assert Counter(i.task for i in ITEMS) == {t: 500 for t in language.FAMILIES}


@pytest.mark.parametrize("task", list(language.FAMILIES))
def test_every_wording_of_a_family_is_used_and_prompts_rarely_repeat(task: str) -> None:
    family = language.FAMILIES[task]
    wordings = {w.text for p in family.problems for w in p.wordings}
    used = {
        w.text
        for i in ITEMS
        if i.task == task
        for p in family.problems
        for w in p.wordings
        if w.parse(i.prompt)
    }
    assert used == wordings
    assert {i.problem for i in ITEMS if i.task == task} == {p.name for p in family.problems}
    prompts = [i.prompt for i in ITEMS if i.task == task]
    assert len(set(prompts)) >= 0.95 * len(prompts)


def test_each_prompt_solves_back_to_its_own_answer_and_tag() -> None:
    for item in ITEMS:
        worked = language.solve(item.prompt)
        assert worked is not None, item.prompt
        task, solution = worked
        assert (task, solution.answer, solution.final) == (item.task, item.answer, item.final)
        assert solution.steps, item.prompt


def test_items_carry_their_grader_and_metadata_tag() -> None:
    for item in ITEMS:
        assert item.metadata == {"task": item.task}
        assert item.grader == ("json" if item.task == "field_extraction" else "final_answer")


def test_the_reference_passes_its_grader_and_a_wrong_answer_fails_it() -> None:
    for item in ITEMS[:400]:
        grader = GRADERS[item.grader]
        assert grader.grade(item.prompt, item.answer, item.answer).verdict
        wrong = '{"name": "nobody"}' if item.grader == "json" else "The answer is \\boxed{-1}."
        assert not grader.grade(item.prompt, item.answer, wrong).verdict


def test_not_a_language_prompt_is_not_solved() -> None:
    assert language.solve("reverse: abc") is None
    assert language.solve("What day of the week is 3 days after Funday?") is None


def _numbers(prompt: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", prompt)]


def test_weekday_answers_agree_with_the_calendar() -> None:
    checked = 0
    for item in ITEMS:
        m = re.search(r"(\d+) days after (\w+) (\d+), (\d{4})", item.prompt)
        if item.task != "date_arithmetic" or not m:
            continue
        n, month, day, year = int(m[1]), m[2], int(m[3]), int(m[4])
        start = dt.date(year, list(calendar.month_name).index(month), day)
        assert item.final == (start + dt.timedelta(days=n)).strftime("%A")
        checked += 1
    assert checked > 50


def test_conversion_answers_are_exact() -> None:
    checked = 0
    for item in ITEMS:
        m = re.fullmatch(r"Convert ([\d.]+) (\w+) to (\w+)\.", item.prompt)
        if item.task != "unit_conversion" or not m or m[2] in ("EUR", "USD", "GBP", "JPY", "CHF", "CAD"):
            continue
        assert Fraction(item.final) == Fraction(m[1]) * factor(m[2], m[3])
        checked += 1
    assert checked > 20


def test_extraction_answers_hold_values_that_appear_in_the_text() -> None:
    for item in ITEMS:
        if item.task != "field_extraction":
            continue
        text = item.prompt.split("Text: ", 1)[1]
        for value in json.loads(item.final).values():
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            assert shown in text, (shown, text)
