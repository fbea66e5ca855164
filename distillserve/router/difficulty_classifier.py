"""The learned scorer's classifier: logistic regression from prompt features to
P(the current student answers worse than the teacher).

Fitted with scikit-learn, applied with one numpy dot product (microseconds), stored as
a small ``.npz`` with a JSON card (what it was trained on, how well it did).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def length_feature(prompts: list[str]) -> np.ndarray:
    """log10 of the prompt length, scaled to about [0, 1]: embeddings see only a prompt's start."""
    return np.array([[math.log10(1 + len(p)) / 6.0] for p in prompts], dtype=np.float32)


@dataclass(frozen=True)
class DifficultyClassifier:
    weights: np.ndarray  # (d,)
    bias: float
    card: dict[str, Any] = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(student worse than teacher) per row of ``features``."""
        z = np.clip(features @ self.weights + self.bias, -30.0, 30.0)
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, path: str | Path) -> Path:
        """Write atomically, so a reader never sees half a classifier."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp-{os.getpid()}.npz")
        np.savez(tmp, weights=self.weights, bias=np.array([self.bias]), card=np.array(json.dumps(self.card)))
        os.replace(tmp, p)
        return p

    def to_bytes(self) -> bytes:
        """The ``.npz`` that ``save`` writes, in memory (what the registry stores)."""
        buf = io.BytesIO()
        np.savez(buf, weights=self.weights, bias=np.array([self.bias]), card=np.array(json.dumps(self.card)))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DifficultyClassifier:
        return cls.load(io.BytesIO(data))

    @classmethod
    def load(cls, path: str | Path | io.BytesIO) -> DifficultyClassifier:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                weights=z["weights"].astype(np.float32),
                bias=float(z["bias"][0]),
                card=json.loads(str(z["card"])),
            )


def fit_classifier(
    features: np.ndarray, hard: np.ndarray, *, c: float = 10.0, card: dict[str, Any] | None = None
) -> DifficultyClassifier:
    """Fit on ``features`` (n, d) and labels ``hard`` (1 = the student fell short of the teacher)."""
    n = len(hard)
    info = {**(card or {}), "examples": int(n), "hard_share": float(hard.mean()) if n else None}
    info["trained_at"] = time.time()
    if n == 0 or hard.min() == hard.max():
        # One class only (a perfect or a hopeless student): predict the smoothed base rate.
        rate = (float(hard.sum()) + 0.5) / (n + 1.0)
        info["train_accuracy"] = 1.0 if n else None
        return DifficultyClassifier(
            np.zeros(features.shape[1], dtype=np.float32), math.log(rate / (1 - rate)), info
        )
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(features, hard)
    info["train_accuracy"] = float(model.score(features, hard))
    return DifficultyClassifier(model.coef_[0].astype(np.float32), float(model.intercept_[0]), info)
