"""Grading many pairs at once, from async or blocking code, with one code path for every grader."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from distillserve.grading.grade import Grade, Grader


@dataclass(frozen=True)
class Pair:
    prompt: str
    reference: str
    candidate: str


async def grade_all(graders: Sequence[Grader], pairs: Sequence[Pair]) -> list[Grade]:
    """``graders[i]`` grades ``pairs[i]``; grades in input order (a judge bounds its own concurrency)."""
    if len(graders) != len(pairs):
        raise ValueError("one grader per pair")
    return list(
        await asyncio.gather(
            *(g.agrade(p.prompt, p.reference, p.candidate) for g, p in zip(graders, pairs, strict=True))
        )
    )


def grade_all_blocking(graders: Sequence[Grader], pairs: Sequence[Pair]) -> list[Grade]:
    """``grade_all`` for code that runs outside any event loop (the distiller's evaluation)."""
    return asyncio.run(grade_all(graders, pairs))
