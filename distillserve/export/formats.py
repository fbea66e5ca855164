"""The three formats behind one small interface: how to write one, and which runtime runs it."""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from distillserve.export.errors import ExportError
from distillserve.export.gguf_convert import check_supported
from distillserve.export.gguf_format import GGUF_TYPES, write_gguf
from distillserve.export.gguf_format import MODEL_FILE as GGUF_FILE
from distillserve.export.merged import MERGED_DTYPES, default_merged_quant
from distillserve.export.onnx_format import MODEL_FILE as ONNX_FILE
from distillserve.export.onnx_format import ONNX_TYPES, write_onnx
from distillserve.export.runtimes import GreedyRunner, LlamaCppRunner, OnnxRunner, TransformersRunner


class ExportFormat(ABC):
    name: str
    quants: tuple[str, ...]
    packages: tuple[str, ...]  # whose versions the card records

    def default_quant(self, base_dir: Path) -> str:
        return self.quants[0]

    def check_quant(self, quant: str) -> None:
        if quant not in self.quants:
            raise ExportError(f"{self.name} supports --quant {', '.join(self.quants)}, not {quant!r}")

    def check_model(self, base_dir: Path) -> None:  # noqa: B027 - most formats take any model
        """Refuse, before any work, a model this format's converter cannot handle."""

    @abstractmethod
    def write(self, merged_f32: Path, out_dir: Path, quant: str, scratch: Path) -> None:
        """Write the export of the fp32 merged model into ``out_dir`` (which must not exist);
        ``scratch`` keeps intermediates shared by the quants of one version."""

    @abstractmethod
    def runner(self, out_dir: Path, tokenizer: Any, max_new_tokens: int) -> GreedyRunner: ...

    def tools(self) -> dict[str, str]:
        return {p: _version(p) for p in self.packages}


class MergedFormat(ExportFormat):
    name, quants, packages = "merged", tuple(MERGED_DTYPES), ("torch", "transformers", "peft")

    def default_quant(self, base_dir: Path) -> str:
        return default_merged_quant(base_dir)

    def write(self, merged_f32: Path, out_dir: Path, quant: str, scratch: Path) -> None:
        raise AssertionError("merged is written from the adapter directly (pipeline)")

    def runner(self, out_dir: Path, tokenizer: Any, max_new_tokens: int) -> GreedyRunner:
        return TransformersRunner(out_dir, tokenizer, max_new_tokens)


class GgufFormat(ExportFormat):
    name, quants, packages = (
        "gguf",
        ("f16", *(q for q in GGUF_TYPES if q != "f16")),
        ("gguf", "llama_cpp_python"),
    )

    def check_model(self, base_dir: Path) -> None:
        check_supported(base_dir)

    def write(self, merged_f32: Path, out_dir: Path, quant: str, scratch: Path) -> None:
        write_gguf(merged_f32, out_dir, quant, scratch)

    def runner(self, out_dir: Path, tokenizer: Any, max_new_tokens: int) -> GreedyRunner:
        return LlamaCppRunner(out_dir / GGUF_FILE, tokenizer, max_new_tokens)


class OnnxFormat(ExportFormat):
    name, quants, packages = "onnx", ONNX_TYPES, ("torch", "onnx", "onnxscript", "onnxruntime")

    def write(self, merged_f32: Path, out_dir: Path, quant: str, scratch: Path) -> None:
        write_onnx(merged_f32, out_dir, quant, scratch)

    def runner(self, out_dir: Path, tokenizer: Any, max_new_tokens: int) -> GreedyRunner:
        return OnnxRunner(out_dir / ONNX_FILE, tokenizer, max_new_tokens)


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (MergedFormat(), GgufFormat(), OnnxFormat())}


def get_format(name: str) -> ExportFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ExportError(f"unknown format {name!r}; choose {', '.join(FORMATS)}") from None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
