"""The card of one export: where it came from, what it is, and how close it stays to its source."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

ExportFormat = Literal["merged", "gguf", "onnx"]
EXPORT_CARD = "export_card.json"


class AccuracyReport(BaseModel):
    """Greedy answers on the regression set, by the export's own runtime, against the source's."""

    n: int
    # Share of items whose greedy answer is the same text as the source's (adapter on base).
    agreement: float
    # Share graded as good as the reference answer, for the source and for the export.
    source_score: float
    export_score: float
    grader: str
    regression_set: dict[str, Any] = Field(default_factory=dict)
    max_new_tokens: int
    runtime: str  # "transformers", "llama.cpp", "onnxruntime"
    # Speed of the export's runtime on this machine while measuring (batch 1, greedy; tokens
    # counted by the base tokenizer on the answers, so every runtime is counted alike).
    generated_tokens: int = 0
    tokens_per_s: float = 0.0
    threads: int = 2

    @property
    def score_drop(self) -> float:
        return self.source_score - self.export_score


class ExportCard(BaseModel):
    source_version: str
    base_model: str
    format: ExportFormat
    quant: str  # "bf16", "f16", "q8_0", "q4_k_m", "fp32", "int8", ...
    files: dict[str, str] = Field(default_factory=dict)  # relative name -> sha256
    size_bytes: int = 0
    accuracy: AccuracyReport | None = None
    tools: dict[str, str] = Field(default_factory=dict)  # converter / runtime versions
    created_at: float = Field(default_factory=time.time)
    seconds: dict[str, float] = Field(default_factory=dict)  # export, measure

    @property
    def name(self) -> str:
        """The folder name under ``versions/vN/exports/``."""
        return export_name(self.format, self.quant)


def export_name(fmt: str, quant: str) -> str:
    return f"{fmt}-{quant}"


def card_bytes(card: ExportCard) -> bytes:
    import orjson

    return orjson.dumps(card.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
