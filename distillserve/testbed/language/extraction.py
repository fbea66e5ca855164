"""Extraction of named fields from a short text into a JSON object (graded by the ``json`` grader)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from itertools import product
from typing import Any

from distillserve.testbed.language.item import Family, Problem, Solution, Values
from distillserve.testbed.language.templates import PromptTemplate, one_of
from distillserve.testbed.language.word_problems import NAMES

CITIES = ("Lisbon", "Oslo", "Denver", "Nairobi", "Osaka", "Lima", "Porto", "Dublin", "Austin", "Hanoi")
JOBS = ("nurse", "teacher", "baker", "pilot", "chemist", "plumber", "designer", "farmer")
PRODUCTS = ("lamps", "chairs", "mugs", "notebooks", "kettles", "pillows")
SLOTS = {
    "name": one_of(NAMES),
    "city": one_of(CITIES),
    "job": one_of(JOBS),
    "product": one_of(PRODUCTS),
    "age": r"\d+",
    "years": r"\d+",
    "order": r"\d+",
    "qty": r"\d+",
    "price": r"\d+\.\d{2}",
}


def _json_solution(fields: dict[str, Any]) -> Solution:
    steps = tuple(f"The {k.replace('_', ' ')} is {v!r}." for k, v in fields.items())
    text = json.dumps(fields)
    return Solution(steps, text, f"```json\n{text}\n```")


def _problem(
    name: str,
    instructions: tuple[str, ...],
    texts: tuple[str, ...],
    draw: Callable[[random.Random], dict[str, str]],
    fields: Callable[[Values], dict[str, Any]],
) -> Problem:
    wordings = tuple(PromptTemplate(f"{i}\n\nText: {t}", SLOTS) for i, t in product(instructions, texts))
    return Problem(name, wordings, draw, lambda v: _json_solution(fields(v)))


PERSON = _problem(
    "person",
    (
        "Extract the person's name, age, city and job from the text below. Reply with a JSON object "
        "with the keys name, age, city, job.",
        "Read the text and return JSON with the fields name (string), age (number), city (string) and job (string).",
    ),
    (
        "{name} is {age} years old and lives in {city}, where {name} works as a {job}.",
        "Meet {name}, a {age}-year-old {job} from {city}.",
        "After {years} years in {city}, {name} ({age}) still works as a {job}.",
    ),
    lambda r: {
        "name": r.choice(NAMES),
        "age": str(r.randint(19, 75)),
        "city": r.choice(CITIES),
        "job": r.choice(JOBS),
        "years": str(r.randint(2, 15)),
    },
    lambda v: {"name": v["name"], "age": int(v["age"]), "city": v["city"], "job": v["job"]},
)

ORDER = _problem(
    "order",
    (
        "Extract the order number, product, quantity and unit price from the text. Answer with a JSON "
        "object with the keys order_id, product, quantity, unit_price.",
        "Return the order as JSON with keys order_id (number), product (string), quantity (number), unit_price (number).",
    ),
    (
        "Order #{order}: {qty} {product} at ${price} each, shipped to {city}.",
        "{name} ordered {qty} {product} (order {order}) for ${price} apiece.",
    ),
    lambda r: {
        "order": str(r.randint(1000, 99999)),
        "qty": str(r.randint(2, 40)),
        "product": r.choice(PRODUCTS),
        "price": f"{r.randint(199, 9999) / 100:.2f}",
        "city": r.choice(CITIES),
        "name": r.choice(NAMES),
    },
    lambda v: {
        "order_id": int(v["order"]),
        "product": v["product"],
        "quantity": int(v["qty"]),
        "unit_price": float(v["price"]),
    },
)

EXTRACTION = Family("field_extraction", "json", (PERSON, ORDER))
