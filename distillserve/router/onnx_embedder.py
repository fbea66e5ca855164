"""Sentence embeddings on ONNX Runtime: the same model as ``SentenceEmbedder`` (exported once by
``onnx_export`` into the cache, fp32 or int8), tokenized by the model's own fast tokenizer.

Why: sentence-transformers on torch spends most of a single-prompt call outside the matrix
products (module dispatch, tokenizer wrappers); ONNX Runtime runs the whole graph in one call,
and int8 weights halve the remaining work on CPUs with VNNI/AVX512.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from distillserve.router.onnx_export import Quantization, ensure_exported
from distillserve.router.sentence_embedder import CHARS_PER_TOKEN, length_groups, resolve_model_path


class OnnxSentenceEmbedder:
    def __init__(
        self,
        model: str | None = None,
        *,
        cache_root: Path,
        quantization: Quantization = "int8",
        max_tokens: int = 128,
        threads: int = 1,
        sub_batch: int = 16,
    ) -> None:
        self.model_name = model
        self.cache_root = cache_root
        self.quantization = quantization
        self.max_tokens = max_tokens
        self.threads = threads
        self.sub_batch = sub_batch
        self._session: Any = None
        self._tokenizer: Any = None
        self._dim = 0
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        """Export the model if its ONNX file is not cached yet, then open it (idempotent, thread-safe)."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            model_dir = resolve_model_path(self.model_name)
            path = ensure_exported(model_dir, self.cache_root, self.quantization)
            tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of the batch
            options = ort.SessionOptions()
            # One thread by default, for the same reason as the torch embedder: the gateway and
            # an in-process student share the cores, and spinning OpenMP teams lose to one thread.
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._tokenizer = tokenizer
            self._dim = int(session.get_outputs()[0].shape[-1])
            self._session = session

    @property
    def dim(self) -> int:
        self.load()
        return self._dim

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text (empty texts included)."""
        self.load()
        limit = self.max_tokens * CHARS_PER_TOKEN
        clipped = [t[:limit] for t in texts]
        out = np.zeros((len(clipped), self._dim), dtype=np.float32)
        for group in length_groups(clipped, self.sub_batch):
            out[group] = self._encode_group([clipped[i] for i in group])
        return out

    def _encode_group(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
