"""The seam between the learned scorer and whatever turns prompts into sentence embeddings:
``SentenceEmbedder`` (sentence-transformers on torch) and ``OnnxSentenceEmbedder`` (the same
model on ONNX Runtime, fp32 or int8), picked by ``router.embedding.runtime``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from distillserve.config import cache_dir
from distillserve.config.router import EmbeddingScorerConfig
from distillserve.router.onnx_embedder import OnnxSentenceEmbedder
from distillserve.router.sentence_embedder import CHARS_PER_TOKEN, SentenceEmbedder


class SentenceEncoder(Protocol):
    model_name: str | None
    max_tokens: int

    @property
    def loaded(self) -> bool: ...

    def load(self) -> None:
        """Make the model ready (idempotent, thread-safe); may take seconds."""

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text."""


def embedded_text(encoder: SentenceEncoder, prompt: str) -> str:
    """The part of ``prompt`` the encoder reads (the rest is cut before tokenizing)."""
    return prompt[: encoder.max_tokens * CHARS_PER_TOKEN]


def default_onnx_cache() -> Path:
    return cache_dir() / "router" / "onnx"


def build_sentence_encoder(cfg: EmbeddingScorerConfig) -> SentenceEncoder:
    if cfg.runtime == "torch":
        return SentenceEmbedder(cfg.model, cfg.device, cfg.max_tokens, cfg.threads)
    return OnnxSentenceEmbedder(
        cfg.model,
        cache_root=Path(cfg.onnx_cache_dir) if cfg.onnx_cache_dir else default_onnx_cache(),
        quantization=cfg.quantization,
        max_tokens=cfg.max_tokens,
        threads=cfg.threads,  # 0: ONNX Runtime's default, like torch's
    )
