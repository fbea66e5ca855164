"""GSM8K-style arithmetic word problems of two or three steps, with whole-number answers."""

from __future__ import annotations

import random

from distillserve.testbed.language.item import Family, Problem, Solution, Values, boxed
from distillserve.testbed.language.templates import PromptTemplate, one_of

NAMES = ("Maria", "Tom", "Aisha", "Kenji", "Lena", "Omar", "Sofia", "Ravi", "Emma", "Diego")
ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "stamps")
SLOTS = {"name": one_of(NAMES), "item": one_of(ITEMS), "n": r"\d+", "a": r"\d+", "b": r"\d+", "c": r"\d+"}


def _wordings(*texts: str) -> tuple[PromptTemplate, ...]:
    return tuple(PromptTemplate(t, SLOTS) for t in texts)


def _ints(v: Values, *keys: str) -> list[int]:
    return [int(v[k]) for k in keys]


def _boxes_solve(v: Values) -> Solution:
    a, b, c = _ints(v, "a", "b", "c")
    item = v["item"]
    steps = (
        f"{b} boxes with {c} {item} each hold {b} * {c} = {b * c} {item}.",
        f"{a} + {b * c} = {a + b * c}.",
    )
    return Solution(steps, str(a + b * c), boxed(str(a + b * c)))


BOXES = Problem(
    "boxes",
    _wordings(
        "{name} has {a} {item}. {name} buys {b} boxes with {c} {item} in each. How many {item} does {name} have now?",
        "There are {a} {item} on a table. {name} adds {b} boxes of {item}, each holding {c}. "
        "How many {item} are on the table now?",
        "{name} starts with {a} {item} and then gets {b} more boxes of {c} {item} each. "
        "How many {item} does {name} have in total?",
    ),
    lambda r: {
        "name": r.choice(NAMES),
        "item": r.choice(ITEMS),
        "a": str(r.randint(2, 60)),
        "b": str(r.randint(2, 9)),
        "c": str(r.randint(3, 15)),
    },
    _boxes_solve,
)


def _change_draw(r: random.Random) -> dict[str, str]:
    n, b = r.randint(2, 6), r.randint(2, 12)
    bill = next(x for x in (20, 50, 100, 200) if x > n * b)
    return {"name": r.choice(NAMES), "a": str(bill), "n": str(n), "b": str(b)}


def _change_solve(v: Values) -> Solution:
    bill, n, b = _ints(v, "a", "n", "b")
    steps = (
        f"{n} notebooks at ${b} each cost {n} * {b} = ${n * b}.",
        f"The change is {bill} - {n * b} = ${bill - n * b}.",
    )
    return Solution(steps, str(bill - n * b), boxed(str(bill - n * b)))


CHANGE = Problem(
    "change",
    _wordings(
        "{name} buys {n} notebooks at ${b} each and pays with a ${a} bill. How much change, in dollars, does {name} get?",
        "A notebook costs ${b}. {name} buys {n} of them and hands the cashier ${a}. How many dollars of change does {name} get back?",
    ),
    _change_draw,
    _change_solve,
)


def _pages_solve(v: Values) -> Solution:
    a, b = _ints(v, "a", "b")
    tue, wed = 2 * a, 2 * a - b
    steps = (
        f"Monday: {a} pages.",
        f"Tuesday: twice as many, 2 * {a} = {tue} pages.",
        f"Wednesday: {b} fewer than Tuesday, {tue} - {b} = {wed} pages.",
        f"Total: {a} + {tue} + {wed} = {a + tue + wed}.",
    )
    return Solution(steps, str(a + tue + wed), boxed(str(a + tue + wed)))


PAGES = Problem(
    "pages",
    _wordings(
        "{name} reads {a} pages on Monday and twice as many on Tuesday. On Wednesday {name} reads {b} pages "
        "fewer than on Tuesday. How many pages does {name} read in the three days?",
        "On Monday {name} read {a} pages. On Tuesday {name} read twice as many pages as on Monday, and on "
        "Wednesday {b} pages fewer than on Tuesday. How many pages did {name} read altogether?",
    ),
    lambda r: {"name": r.choice(NAMES), "a": str(r.randint(8, 40)), "b": str(r.randint(1, 7))},
    _pages_solve,
)


def _trip_solve(v: Values) -> Solution:
    a, n, b = _ints(v, "a", "n", "b")
    steps = (f"At {a} km per hour for {n} hours: {a} * {n} = {a * n} km.", f"{a * n} + {b} = {a * n + b} km.")
    return Solution(steps, str(a * n + b), boxed(str(a * n + b)))


TRIP = Problem(
    "trip",
    _wordings(
        "A train travels at {a} km per hour for {n} hours and then {b} more km. How many km does it travel in all?",
        "{name} drives for {n} hours at {a} km per hour, then another {b} km. How far, in km, does {name} drive?",
    ),
    lambda r: {
        "name": r.choice(NAMES),
        "a": str(r.choice(range(40, 130, 5))),
        "n": str(r.randint(2, 6)),
        "b": str(r.randint(5, 90)),
    },
    _trip_solve,
)


def _savings_solve(v: Values) -> Solution:
    a, n, b = _ints(v, "a", "n", "b")
    steps = (f"Saved: {a} * {n} = ${a * n}.", f"After the gift: {a * n} - {b} = ${a * n - b}.")
    return Solution(steps, str(a * n - b), boxed(str(a * n - b)))


def _savings_draw(r: random.Random) -> dict[str, str]:
    a, n = r.randint(5, 30), r.randint(3, 12)
    return {"name": r.choice(NAMES), "a": str(a), "n": str(n), "b": str(r.randint(1, a * n - 1))}


SAVINGS = Problem(
    "savings",
    _wordings(
        "{name} saves ${a} every week for {n} weeks, then spends ${b} on a gift. How many dollars does {name} have left?",
        "Each week {name} puts ${a} into a jar. After {n} weeks {name} takes out ${b} for a gift. "
        "How many dollars are left in the jar?",
    ),
    _savings_draw,
    _savings_solve,
)

WORD_PROBLEMS = Family("word_problem", "final_answer", (BOXES, CHANGE, PAGES, TRIP, SAVINGS))
