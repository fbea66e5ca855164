"""The difficulty-scorer seam: a score in [0, 1] plus the features behind it.

Like RouteLLM's routers, a scorer is a small class with one method; a name -> class
registry picks one from config. The comparison against a threshold lives in
``router.policy``, never in a scorer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Score:
    value: float
    scorer: str
    features: dict[str, float] = field(default_factory=dict)


class DifficultyScorer(ABC):
    name: ClassVar[str]

    @abstractmethod
    async def score(self, prompt: str) -> Score:
        """How hard ``prompt`` is for the current student: 0 easy, 1 hard."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release models or threads."""


SCORERS: dict[str, Callable[..., DifficultyScorer]] = {}


def register_scorer(name: str) -> Callable[[type[DifficultyScorer]], type[DifficultyScorer]]:
    def wrap(cls: type[DifficultyScorer]) -> type[DifficultyScorer]:
        cls.name = name
        SCORERS[name] = cls
        return cls

    return wrap


def build_scorer(name: str, **kwargs: Any) -> DifficultyScorer:
    # Imported here so that heavy scorers (embeddings) load only when configured.
    from distillserve.router import heuristic  # noqa: F401

    try:
        factory = SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; known: {sorted(SCORERS)}") from None
    return factory(**kwargs)
