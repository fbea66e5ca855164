"""The difficulty-scorer seam: a score in [0, 1] plus the features behind it.

Like RouteLLM's routers, a scorer is a small class with one method; a name -> class
registry picks one from config. The comparison against a threshold lives in
``router.policy``, never in a scorer. Built-in scorers live in their own modules and
are imported only when named, so a heavy one (embeddings) costs nothing unless configured.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from distillserve.router.labelled_example import LabelledExample


@dataclass(frozen=True)
class Score:
    value: float
    scorer: str
    features: dict[str, float] = field(default_factory=dict)


class ScorerNotReady(RuntimeError):
    """The scorer cannot answer yet (model loading, no classifier trained); the router falls back."""


class DifficultyScorer(ABC):
    name: ClassVar[str]

    @abstractmethod
    async def score(self, prompt: str) -> Score:
        """How hard ``prompt`` is for the current student: 0 easy, 1 hard."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Begin loading models so the first requests need not wait (may return before it is done)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release models or threads."""


class LearnedScorer(DifficultyScorer):
    """A scorer that learns what the live student can do from graded student/teacher pairs."""

    @abstractmethod
    async def retrain(self, examples: Sequence[LabelledExample], *, adapter: str | None = None) -> Any:
        """Fit on ``examples`` (graded for the student with ``adapter`` live) and swap the fit in."""


SCORERS: dict[str, Callable[..., DifficultyScorer]] = {}

# Built-in scorers by name -> the module that registers it.
_BUILTIN = {
    "heuristic": "distillserve.router.heuristic",
    "random": "distillserve.router.random_scorer",
    "embedding": "distillserve.router.embedding_scorer",
}


def register_scorer(name: str) -> Callable[[type[DifficultyScorer]], type[DifficultyScorer]]:
    def wrap(cls: type[DifficultyScorer]) -> type[DifficultyScorer]:
        cls.name = name
        SCORERS[name] = cls
        return cls

    return wrap


def build_scorer(name: str, **kwargs: Any) -> DifficultyScorer:
    if name not in SCORERS and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    try:
        factory = SCORERS[name]
    except KeyError:
        known = sorted(set(SCORERS) | set(_BUILTIN))
        raise ValueError(f"unknown scorer {name!r}; known: {known}") from None
    return factory(**kwargs)
