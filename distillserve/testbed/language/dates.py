"""Date arithmetic: the weekday some days after a weekday or a calendar date, and the days
between two dates of one year."""

from __future__ import annotations

import calendar
import datetime as dt
import random

from distillserve.testbed.language.item import Family, Problem, Solution, Values, boxed
from distillserve.testbed.language.templates import PromptTemplate, one_of

WEEKDAYS = tuple(calendar.day_name)  # Monday … Sunday (the C locale)
MONTHS = tuple(calendar.month_name)[1:]
SLOTS = {
    "weekday": one_of(WEEKDAYS),
    "n": r"\d+",
    "month": one_of(MONTHS),
    "month2": one_of(MONTHS),
    "day": r"\d{1,2}",
    "day2": r"\d{1,2}",
    "year": r"\d{4}",
}


def _templates(*texts: str) -> tuple[PromptTemplate, ...]:
    return tuple(PromptTemplate(t, SLOTS) for t in texts)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _after_weekday_solve(v: Values) -> Solution:
    n, start = int(v["n"]), WEEKDAYS.index(v["weekday"])
    weeks, rest = divmod(n, 7)
    day = WEEKDAYS[(start + rest) % 7]
    steps = (
        f"{n} days is {_count(weeks, 'week')} and {_count(rest, 'day')}; whole weeks keep the weekday.",
        f"{_count(rest, 'day')} after {v['weekday']} is {day}.",
    )
    return Solution(steps, day, boxed(day))


AFTER_WEEKDAY = Problem(
    "weekday_after_weekday",
    _templates(
        "What day of the week is {n} days after {weekday}?",
        "Today is {weekday}. What day of the week will it be in {n} days?",
        "If it is {weekday} now, which weekday is it {n} days from now?",
    ),
    lambda r: {"weekday": r.choice(WEEKDAYS), "n": str(r.randint(2, 60))},
    _after_weekday_solve,
)


def _date(v: Values, month: str = "month", day: str = "day") -> dt.date:
    return dt.date(int(v["year"]), MONTHS.index(v[month]) + 1, int(v[day]))


def _random_date(r: random.Random, year: int, lo: int = 1, hi: int = 365) -> dt.date:
    return dt.date(year, 1, 1) + dt.timedelta(days=r.randint(lo, hi) - 1)


def _after_date_draw(r: random.Random) -> dict[str, str]:
    d = _random_date(r, r.randint(2020, 2030))
    return {"month": MONTHS[d.month - 1], "day": str(d.day), "year": str(d.year), "n": str(r.randint(2, 45))}


def _after_date_solve(v: Values) -> Solution:
    start, n = _date(v), int(v["n"])
    end = start + dt.timedelta(days=n)
    weekday = WEEKDAYS[end.weekday()]
    steps = (
        f"{v['month']} {v['day']}, {v['year']} is a {WEEKDAYS[start.weekday()]}.",
        f"{n} days is {_count(n // 7, 'week')} and {_count(n % 7, 'day')}.",
        f"{_count(n % 7, 'day')} after {WEEKDAYS[start.weekday()]} is {weekday} ({MONTHS[end.month - 1]} {end.day}).",
    )
    return Solution(steps, weekday, boxed(weekday))


AFTER_DATE = Problem(
    "weekday_after_date",
    _templates(
        "What day of the week is {n} days after {month} {day}, {year}?",
        "Which weekday falls {n} days after {month} {day}, {year}?",
    ),
    _after_date_draw,
    _after_date_solve,
)


def _between_draw(r: random.Random) -> dict[str, str]:
    year = r.randint(2020, 2030)
    a = _random_date(r, year, 1, 300)
    b = a + dt.timedelta(days=r.randint(3, 60))
    if b.year != year:
        b = dt.date(year, 12, 31)
    return {
        "month": MONTHS[a.month - 1],
        "day": str(a.day),
        "month2": MONTHS[b.month - 1],
        "day2": str(b.day),
        "year": str(year),
    }


def _between_solve(v: Values) -> Solution:
    a, b = _date(v), _date(v, "month2", "day2")
    days = (b - a).days
    if a.month == b.month:
        steps: tuple[str, ...] = (f"Both dates are in {v['month']}: {b.day} - {a.day} = {days}.",)
    else:
        left = calendar.monthrange(a.year, a.month)[1] - a.day
        middle = [calendar.monthrange(a.year, m)[1] for m in range(a.month + 1, b.month)]
        parts = " + ".join(str(x) for x in [left, *middle, b.day])
        steps = (
            f"Days left in {v['month']} after day {a.day}: {left}.",
            *(
                f"{MONTHS[m - 1]} has {n} days."
                for m, n in zip(range(a.month + 1, b.month), middle, strict=True)
            ),
            f"Then {b.day} days into {v['month2']}: {parts} = {days}.",
        )
    return Solution(steps, str(days), boxed(str(days)))


BETWEEN = Problem(
    "days_between",
    _templates(
        "How many days are there from {month} {day} to {month2} {day2}, {year}?",
        "Counting from {month} {day}, {year}, how many days is it until {month2} {day2}, {year}?",
    ),
    _between_draw,
    _between_solve,
)

DATES = Family("date_arithmetic", "final_answer", (AFTER_WEEKDAY, AFTER_DATE, BETWEEN))
