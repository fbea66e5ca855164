"""A sentence-transformers model (BERT-style encoder, mean pooling, normalisation) as one ONNX
graph, exported once with ``torch.onnx`` and cached on disk, plus its int8 dynamic quantization.

The graph takes ``input_ids`` and ``attention_mask`` and returns unit-length sentence embeddings,
so ONNX Runtime does all of the work sentence-transformers does after tokenizing. The export is
checked against the torch model before it is kept; a failed check leaves no file behind.
The cache key is the model directory, its weights' size and mtime, torch's version and the
quantization, so a changed model or exporter builds a new file; nothing is fetched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

Quantization = Literal["none", "int8"]
#: Largest difference allowed between the torch and the exported fp32 embeddings (unit vectors).
_FP32_TOLERANCE = 1e-4
_CHECK_TEXTS = ["reverse: garden", "Explain why the algorithm terminates, step by step.", ""]


def exported_model_path(model_dir: str | Path, cache_root: Path, quantization: Quantization) -> Path:
    """Where the ONNX file for ``model_dir`` lives (built by ``ensure_exported``)."""
    import torch

    src = Path(model_dir).resolve()
    weights = _weights_file(src)
    stat = weights.stat()
    key = f"{src}|{stat.st_size}|{stat.st_mtime_ns}|{torch.__version__}|v2"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    suffix = "" if quantization == "none" else f".{quantization}"
    return cache_root / f"{src.name}-{digest}" / f"model{suffix}.onnx"


def ensure_exported(model_dir: str | Path, cache_root: Path, quantization: Quantization) -> Path:
    """The cached ONNX file, exported (and quantized) first when missing. Seconds, once."""
    path = exported_model_path(model_dir, cache_root, quantization)
    if path.is_file():
        return path
    fp32 = exported_model_path(model_dir, cache_root, "none")
    if not fp32.is_file():
        _export_fp32(Path(model_dir), fp32)
    if quantization == "int8":
        _quantize_int8(fp32, path)
    return path


def _weights_file(src: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (src / name).is_file():
            return src / name
    raise FileNotFoundError(f"no model weights in {src}")


def _export_fp32(model_dir: Path, dest: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu")
    st.eval()
    graph = _PooledEncoder(st[0].auto_model).eval()
    features = st.tokenize(_CHECK_TEXTS)
    ids, mask = features["input_ids"], features["attention_mask"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_beside(dest) as tmp, torch.no_grad():
        torch.onnx.export(
            graph,
            (ids, mask),
            str(tmp),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: no onnxscript rewrite of BERT needed
        )
        expected = st.encode(_CHECK_TEXTS, convert_to_numpy=True, normalize_embeddings=True)
        got = _run(tmp, ids.numpy(), mask.numpy())
        error = float(np.abs(got - expected).max())
        if error > _FP32_TOLERANCE:
            raise RuntimeError(f"ONNX export of {model_dir} differs from torch by {error:.2e}")
        os.replace(tmp, dest)
    log.info("exported %s to ONNX at %s (max difference %.1e)", model_dir, dest, error)


def _quantize_int8(fp32: Path, dest: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights, per output channel; activations stay
    float. Per-tensor scales, or quantizing the embedding tables too, moved MiniLM's embeddings
    to a cosine of 0.92 with fp32 on testbed prompts; this keeps it above 0.98."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _temporary_beside(dest) as tmp:
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: without AVX512-VNNI, onnxruntime's u8s8 kernels can saturate (its
            # quantization docs); on such a CPU the int8 embeddings fell to cosine 0.969 (< 0.97).
            reduce_range=True,
            op_types_to_quantize=["MatMul"],
        )
        os.replace(tmp, dest)
    log.info("quantized %s to int8 at %s", fp32, dest)


def _run(path: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


class _temporary_beside:
    """A temporary file name in ``dest``'s directory (so ``os.replace`` is atomic), removed
    unless it was moved into place."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.path: Path | None = None

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.dest.parent, prefix=f".{self.dest.name}.", suffix=".tmp")
        os.close(fd)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()


def _pooled_encoder_class() -> type:
    import torch

    class PooledEncoder(torch.nn.Module):
        """The encoder, then sentence-transformers' mean pooling and L2 normalisation."""

        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            tokens = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(tokens.dtype)
            summed = (tokens * weights).sum(dim=1)
            mean = summed / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return PooledEncoder


def _PooledEncoder(encoder: Any) -> Any:
    return _pooled_encoder_class()(encoder)
