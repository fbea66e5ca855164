"""The text graders (exact, normalized, final_answer, json) on answers written the way real models
write them: SmolLM2-135M-Instruct's chatty replies, DeepSeek-R1 traces with a boxed result,
GSM8K's ``#### n`` solutions, JSON in a fence inside prose, multiple-choice letters."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from distillserve.grading import Grade
from distillserve.grading.final_answer import FinalAnswerGrader, boxed_contents, extract_final_answer
from distillserve.grading.json_answer import JsonGrader, extract_json
from distillserve.grading.text import ExactGrader, NormalizedGrader

R1_TRACE = (
    "<think>\nOkay, so the store sells 3 boxes of 12 eggs, that's 36 eggs. Wait, maybe it is \\boxed{24}? "
    "No: 3 * 12 = 36, minus the 6 broken ones gives 30.\n</think>\n\n"
    "The store has 3 x 12 = 36 eggs; 6 are broken, so 36 - 6 = 30 remain.\n\n\\boxed{30}"
)
SMOLLM2_CHATTY = (
    "Sure! Let's solve this step by step.\n\n1. The store has 3 boxes with 12 eggs each, so 3 x 12 = 36 eggs.\n"
    "2. 6 eggs are broken, so we subtract: 36 - 6 = 30.\n\nSo, the store has 30 eggs left. I hope this helps!"
)


def test_exact_drops_the_trace_and_whitespace_only() -> None:
    g = ExactGrader()
    assert g.grade("reverse: hello", "olleh", "  olleh\n").verdict
    assert g.grade("reverse: hello", "<think>reverse it</think>olleh", "olleh").verdict
    assert g.grade("", "two  words", "two words").verdict
    assert not g.grade("upper: abc", "ABC", "abc").verdict  # case matters: the testbed's oracle
    assert g.grade("", "x", "x") == Grade(1.0, True, "exact")


def test_normalized_ignores_case_and_trailing_punctuation() -> None:
    g = NormalizedGrader()
    assert g.grade("", "Canberra", "canberra.").verdict
    assert g.grade("", "Two words!", "  two   WORDS ").verdict
    assert not g.grade("", "The capital is Canberra.", "Canberra is the capital.").verdict


@pytest.mark.parametrize(
    ("text", "value", "source"),
    [
        (R1_TRACE, Fraction(30), "boxed"),  # the \boxed{24} inside the trace is never read
        (SMOLLM2_CHATTY, Fraction(30), "last_number"),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", Fraction(72), "####"),
        ("#### 1,234", Fraction(1234), "####"),
        (
            "The total is 1,234.50 dollars. Let me know if you need more help!",
            Fraction("1234.5"),
            "last_number",
        ),
        ("It costs $1234.5", Fraction("1234.5"), "last_number"),
        ("So the answer is \\(\\boxed{\\frac{3}{4}}\\).", Fraction(3, 4), "boxed"),
        ("x = 0.75", Fraction(3, 4), "last_number"),
        ("The answer is -7 degrees.", Fraction(-7), "answer_is"),
        ("\\boxed{1{,}000\\text{ marbles}}", Fraction(1000), "boxed"),
        ("\\boxed{50\\%}", Fraction(50), "boxed"),
    ],
)
def test_final_numbers_are_extracted(text: str, value: Fraction, source: str) -> None:
    found = extract_final_answer(text)
    assert (found.kind, found.value, found.source) == ("number", value, source)


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Answer: B", "B"),
        ("**Answer:** (D) 12 apples", "D"),
        ("The Red Planet is Mars, so the correct option is C.", "C"),
        ("C) Mars", "C"),
        ("<think>21 = 3*7, 29 is prime.</think>\nThe answer is \\boxed{C}.", "C"),
        ("(B)", "B"),
    ],
)
def test_choice_letters_are_extracted(text: str, letter: str) -> None:
    found = extract_final_answer(text)
    assert (found.kind, found.value) == ("choice", letter)


def test_a_lowercase_article_is_no_choice() -> None:
    assert extract_final_answer("The answer is a dog.").kind == "text"


def test_boxed_braces_nest_and_a_cut_box_is_none() -> None:
    assert boxed_contents("so \\boxed{\\frac{1}{\\sqrt{2}}} done") == "\\frac{1}{\\sqrt{2}}"
    assert boxed_contents("\\boxed{\\frac{1}{2") is None


def test_final_answer_grader_on_real_answer_shapes() -> None:
    g = FinalAnswerGrader()
    q = "A store has 3 boxes of 12 eggs and 6 eggs break. How many eggs are left?"
    yes = g.grade(q, R1_TRACE, SMOLLM2_CHATTY)
    assert yes.verdict and yes.score == 1.0 and "30" in yes.detail
    assert g.grade(q, "36 - 6 = 30\n#### 30", "There are thirty eggs left, 30 in total.").verdict
    wrong = SMOLLM2_CHATTY.replace("36 - 6 = 30", "36 + 6 = 42").replace("has 30 eggs", "has 42 eggs")
    assert not g.grade(q, R1_TRACE, wrong).verdict
    assert g.grade("", "1,234.50 dollars", "$1234.5").verdict
    assert g.grade("", "\\boxed{\\dfrac{1}{2}}", "The result is 0.5").verdict
    assert g.grade("", "The answer is (C) Mars.", "Answer: C").verdict
    assert not g.grade("", "The answer is (C) Mars.", "I think it is (B) Jupiter.").verdict
    assert not g.grade("", "Answer: C", "3").verdict  # a number is no choice
    # Without a final answer there is nothing to agree with.
    assert not g.grade("", "<think>thinking only</think>", "").verdict


def test_final_answer_tolerance_is_relative() -> None:
    assert FinalAnswerGrader(rel_tol=1e-3).grade("", "\\boxed{3.14159}", "about 3.1416").verdict
    assert not FinalAnswerGrader().grade("", "\\boxed{3.14159}", "about 3.1416").verdict


FENCED = (
    "Sure! Here is the extracted information in JSON format:\n\n```json\n"
    '{"name": "Maria Lopez", "age": 34, "city": "Lisbon"}\n```\n\nLet me know if you need anything else!'
)


def test_json_is_found_in_fences_and_prose() -> None:
    assert extract_json(FENCED) == {"name": "Maria Lopez", "age": 34, "city": "Lisbon"}
    assert extract_json('Here it is: {"a": [1, 2]} and later {"b": 1}') == {"a": [1, 2]}
    assert extract_json('<think>{"draft": true}</think>["red", "blue"]') == ["red", "blue"]


def test_json_grader_parsed_equality_and_key_subset() -> None:
    ref = '```json\n{\n  "name": "Maria Lopez",\n  "age": 34,\n  "city": "Lisbon"\n}\n```'
    g = JsonGrader()
    assert g.grade("", ref, FENCED).verdict
    assert g.grade("", ref, '{"city": "Lisbon", "age": 34.0, "name": "Maria Lopez"}').verdict
    assert not g.grade("", ref, '{"name": "Maria Lopez", "age": "34", "city": "Lisbon"}').verdict
    assert not g.grade("", '{"ok": true}', '{"ok": 1}').verdict  # JSON's true is no number
    missing = g.grade("", ref, "Her name is Maria Lopez, 34, from Lisbon.")
    assert not missing.verdict and missing.detail == "no JSON in the candidate"
    subset = JsonGrader(keys=["name", "age"])
    assert subset.grade("", ref, '{"name": "Maria Lopez", "age": 34, "city": "Porto", "x": 1}').verdict
    half = subset.grade("", ref, '{"name": "Maria Lopez", "age": 35}')
    assert (half.score, half.verdict) == (0.5, False) and "age" in half.detail


def test_async_grading_gives_the_same_grade() -> None:
    g = FinalAnswerGrader()
    assert asyncio.run(g.agrade("", R1_TRACE, SMOLLM2_CHATTY)) == g.grade("", R1_TRACE, SMOLLM2_CHATTY)
