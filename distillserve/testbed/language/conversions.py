"""Unit conversions (fixed factors) and currency conversions (the rate is given in the prompt)."""

from __future__ import annotations

import random
from fractions import Fraction

from distillserve.testbed.language.item import Family, Problem, Solution, Values, boxed, decimal_text
from distillserve.testbed.language.templates import PromptTemplate, one_of

# (from, to) -> how many ``to`` make one ``from``; each pair also goes the other way.
FACTORS: dict[tuple[str, str], int] = {
    ("meters", "centimeters"): 100,
    ("kilometers", "meters"): 1000,
    ("feet", "inches"): 12,
    ("yards", "feet"): 3,
    ("hours", "minutes"): 60,
    ("minutes", "seconds"): 60,
    ("kilograms", "grams"): 1000,
    ("pounds", "ounces"): 16,
    ("gallons", "quarts"): 4,
}
UNITS = sorted({u for pair in FACTORS for u in pair})
CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF", "CAD")
SLOTS = {
    "x": r"\d+(?:\.\d+)?",
    "src": one_of(UNITS + list(CURRENCIES)),
    "dst": one_of(UNITS + list(CURRENCIES)),
    "rate": r"\d+\.\d+",
}


def singular(unit: str) -> str:
    return {"feet": "foot", "inches": "inch"}.get(unit, unit.removesuffix("s"))


def factor(src: str, dst: str) -> Fraction:
    if (src, dst) in FACTORS:
        return Fraction(FACTORS[src, dst])
    return 1 / Fraction(FACTORS[dst, src])


def _unit_draw(r: random.Random) -> dict[str, str]:
    big, small = r.choice(list(FACTORS))
    if r.random() < 0.5:
        return {"x": str(r.randint(2, 60)), "src": big, "dst": small}
    # Down the other way: a multiple of half the factor, so the result is a short decimal.
    f = FACTORS[big, small]
    step = f // 2 if f % 2 == 0 else f
    return {"x": str(step * r.randint(1, 12)), "src": small, "dst": big}


def _unit_solve(v: Values) -> Solution:
    x, f = Fraction(v["x"]), factor(v["src"], v["dst"])
    result = decimal_text(x * f)
    if f >= 1:
        steps = (f"One {singular(v['src'])} is {f} {v['dst']}.", f"{v['x']} * {f} = {result} {v['dst']}.")
    else:
        n = 1 / f
        steps = (f"One {singular(v['dst'])} is {n} {v['src']}.", f"{v['x']} / {n} = {result} {v['dst']}.")
    return Solution(steps, result, boxed(result))


UNIT = Problem(
    "units",
    tuple(
        PromptTemplate(t, SLOTS)
        for t in (
            "Convert {x} {src} to {dst}.",
            "How many {dst} are in {x} {src}?",
            "{x} {src} is how many {dst}?",
            "Express {x} {src} in {dst}.",
        )
    ),
    _unit_draw,
    _unit_solve,
)


def _currency_draw(r: random.Random) -> dict[str, str]:
    src, dst = r.sample(CURRENCIES, 2)
    return {"x": str(r.randint(2, 500)), "src": src, "dst": dst, "rate": f"{r.randint(30, 250) / 100:.2f}"}


def _currency_solve(v: Values) -> Solution:
    result = decimal_text(Fraction(v["x"]) * Fraction(v["rate"]))
    steps = (f"1 {v['src']} = {v['rate']} {v['dst']}.", f"{v['x']} * {v['rate']} = {result} {v['dst']}.")
    return Solution(steps, result, boxed(result))


CURRENCY = Problem(
    "currency",
    tuple(
        PromptTemplate(t, SLOTS)
        for t in (
            "The exchange rate is 1 {src} = {rate} {dst}. How many {dst} is {x} {src}?",
            "If 1 {src} buys {rate} {dst}, how many {dst} do you get for {x} {src}?",
            "Convert {x} {src} to {dst} at a rate of {rate} {dst} per {src}.",
        )
    ),
    _currency_draw,
    _currency_solve,
)

CONVERSIONS = Family("unit_conversion", "final_answer", (UNIT, CURRENCY))
