"""The learned scorer: a logistic-regression classifier on sentence embeddings that predicts
whether the *current* student would answer a prompt as well as the teacher.

Trained from shadow pairs (the student's and the teacher's answers to the same prompt);
``retrain`` fits a new classifier when a new adapter goes live and swaps it in with one
assignment, so requests keep being scored by the old one meanwhile. Concurrent scoring
calls are embedded together by a ``MicroBatcher``. Nothing heavy is imported until the
scorer is built, and the model loads on a background thread at ``start`` (or the first call);
until then, and until a classifier exists, it raises ``ScorerNotReady`` and the router
answers with the heuristic.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distillserve.config import RouterConfig, cache_dir
from distillserve.router.difficulty_classifier import DifficultyClassifier, fit_classifier, length_feature
from distillserve.router.embedding_cache import EmbeddingCache
from distillserve.router.labelled_example import LabelledExample
from distillserve.router.micro_batching import MicroBatcher
from distillserve.router.scoring import LearnedScorer, Score, ScorerNotReady, register_scorer
from distillserve.router.sentence_encoder import SentenceEncoder, build_sentence_encoder, embedded_text

log = logging.getLogger(__name__)


def default_classifier_path() -> Path:
    return cache_dir() / "router" / "embedding-classifier.npz"


@dataclass(frozen=True)
class TrainingReport:
    examples: int
    hard_share: float
    train_accuracy: float | None
    seconds: float
    path: str | None


@register_scorer("embedding")
class EmbeddingScorer(LearnedScorer):
    def __init__(
        self,
        cfg: RouterConfig | None = None,
        *,
        embedder: SentenceEncoder | None = None,
        classifier: DifficultyClassifier | None = None,
        classifier_path: str | Path | None = None,
        load_saved: bool = True,
        **_: object,
    ) -> None:
        emb = (cfg or RouterConfig()).embedding
        self.embedder = embedder or build_sentence_encoder(emb)
        self.cache = EmbeddingCache(emb.cache_entries)
        self.classifier_path = Path(classifier_path or emb.classifier_path or default_classifier_path())
        self._classifier = classifier
        if self._classifier is None and load_saved and self.classifier_path.is_file():
            try:
                self._classifier = DifficultyClassifier.load(self.classifier_path)
            except Exception as exc:  # a corrupt file must not stop the gateway: retrain will replace it
                log.warning("cannot read router classifier %s: %s", self.classifier_path, exc)
        self._batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(
            self._embed_batch,
            max_batch=emb.max_batch,
            max_wait_s=emb.batch_wait_ms / 1000.0,
            name="router-embed",
        )
        self._loader: threading.Thread | None = None
        self._retrain_lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start loading the embedding model on a background thread; returns at once."""
        if self._loader is None and not self.embedder.loaded:
            self._loader = threading.Thread(target=self._load_quietly, name="router-embed-load", daemon=True)
            self._loader.start()

    def _load_quietly(self) -> None:
        try:
            self.embedder.load()
        except Exception:  # requests keep falling back to the heuristic; the reason is in the log
            log.exception("cannot load the router's embedding model")

    async def wait_ready(self) -> None:
        """Load the model now (tests, benchmarks, offline jobs); raises if it cannot load."""
        if not self.embedder.loaded:
            await asyncio.to_thread(self.embedder.load)

    @property
    def classifier(self) -> DifficultyClassifier | None:
        return self._classifier

    def set_classifier(self, classifier: DifficultyClassifier) -> None:
        """Hot-replace the classifier; one assignment, so a request sees the old or the new one."""
        self._classifier = classifier

    # -- scoring ----------------------------------------------------------------------------------
    def _embed_batch(self, texts: list[str]) -> list[np.ndarray]:
        return list(self.embedder.encode(texts))

    async def _embedding(self, prompt: str) -> np.ndarray:
        """The prompt's embedding: from the LRU cache, else from the batcher (then cached)."""
        text = embedded_text(self.embedder, prompt)
        row = self.cache.get(text)
        if row is None:
            row = await self._batcher.submit(text)
            self.cache.put(text, row)
        return row

    async def _features(self, prompt: str) -> np.ndarray:
        return np.concatenate([await self._embedding(prompt), length_feature([prompt])[0]])

    async def features(self, prompts: Sequence[str]) -> np.ndarray:
        """Classifier inputs for many prompts, queued with live requests in batch-sized chunks."""
        await self.wait_ready()
        texts = [embedded_text(self.embedder, p) for p in prompts]
        emb = await self._batcher.map(texts)  # bulk jobs (retraining) bypass the cache: no churn
        if not emb:
            return np.zeros((0, self.embedder.dim + 1), dtype=np.float32)
        return np.concatenate([np.stack(emb), length_feature(list(prompts))], axis=1)

    async def score(self, prompt: str) -> Score:
        clf = self._classifier
        if clf is None:
            raise ScorerNotReady("no router classifier trained yet")
        if not self.embedder.loaded:
            await self.start()
            raise ScorerNotReady("embedding model still loading")
        row = await self._features(prompt)
        p = float(clf.predict(row[None, :])[0])
        return Score(value=p, scorer=self.name, features={"p_student_worse": p})

    async def score_many(self, prompts: Sequence[str]) -> np.ndarray:
        clf = self._classifier
        if clf is None:
            raise ScorerNotReady("no router classifier trained yet")
        return clf.predict(await self.features(prompts))

    # -- learning ---------------------------------------------------------------------------------
    async def retrain(
        self, examples: Sequence[LabelledExample], *, adapter: str | None = None, save: bool = True
    ) -> TrainingReport:
        """Fit a classifier on ``examples`` (the current student's shadow pairs) and swap it in.

        Embedding runs through the same batcher as live requests, in batch-sized pieces, and
        the fit on a worker thread, so serving continues while it trains.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self._retrain_lock:
            prompts = [e.prompt for e in examples]
            hard = np.array([0 if e.student_as_good else 1 for e in examples], dtype=np.int64)
            feats = await self.features(prompts)
            card: dict[str, Any] = {"adapter": adapter, "embedding_model": self.embedder.model_name}
            clf = await asyncio.to_thread(fit_classifier, feats, hard, card=card)
            path = None
            if save:
                path = str(await asyncio.to_thread(clf.save, self.classifier_path))
            self.set_classifier(clf)
        seconds = loop.time() - started
        log.info(
            "router classifier retrained on %d pairs (adapter %s, %.0f%% hard) in %.1fs",
            len(examples),
            adapter,
            100 * float(hard.mean()) if len(hard) else 0.0,
            seconds,
        )
        return TrainingReport(
            len(examples),
            float(hard.mean()) if len(hard) else 0.0,
            clf.card.get("train_accuracy"),
            seconds,
            path,
        )

    async def aclose(self) -> None:
        await self._batcher.aclose()
