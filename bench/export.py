"""Export a SmolLM2-135M-Instruct adapter version to every format and quant, and report for each:
size on disk, tokens/s on 2 cores (batch 1, greedy, in the runtime that serves it), and accuracy
on a regression set against the source (the adapter on its base, transformers + peft, fp32).

The version: a real PEFT LoRA (rank 8, every linear layer) with random, damped weights on the real
SmolLM2 (``tests/export/versions.py``); the regression set: 40 arithmetic questions, graded by the
final-answer grader (the last number of the answer) so a 135M model scores between 0 and 1 and a
quantization drop shows. Agreement = share of answers identical to the source's.

    nice -n 19 .venv/bin/python bench/export.py [--items 40] [--max-new-tokens 32] [--only gguf]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.adapters.registry import AdapterCard, AdapterRegistry
from distillserve.export.pipeline import Exporter, ExportRequest
from distillserve.grading import GraderSelection
from distillserve.grading.final_answer import FinalAnswerGrader
from distillserve.models.prepared import ensure_smollm2
from tests.export.versions import damped_lora

EXPORTS = [
    ("merged", "f32"),
    ("merged", "bf16"),
    ("gguf", "f16"),
    ("gguf", "q8_0"),
    ("gguf", "q4_k_m"),
    ("onnx", "fp32"),
    ("onnx", "int8"),
]


def arithmetic_rows(n: int, seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        op = rng.choice("+-")
        answer = a + b if op == "+" else a - b
        q = f"What is {a} {op} {b}? Give only the number."
        rows.append(
            {
                "messages": [{"role": "user", "content": q}],
                "target": str(answer),
                "answer": str(answer),
                "key": f"q{i}",
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--only", choices=["merged", "gguf", "onnx"], default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        root = Path(tmp)
        adapter = damped_lora(ensure_smollm2(), root / "adapter")
        registry = AdapterRegistry(str(root / "registry"), "smollm2")
        rows = b"".join(orjson.dumps(r) + b"\n" for r in arithmetic_rows(args.items))
        info = registry.write_golden(rows, n=args.items, complete=True)
        described = {"source": "golden", "version": info.version, "n": info.n, "sha256": info.sha256}
        version = registry.register(
            adapter, AdapterCard(base_model="smollm2", data_sources={"regression_set": described})
        ).version
        exporter = Exporter(
            registry, root, keep_intermediates=True, graders=GraderSelection.only(FinalAnswerGrader())
        )
        results = []
        try:
            for fmt, quant in EXPORTS:
                if args.only and fmt != args.only:
                    continue
                card, _ = exporter.export(
                    ExportRequest(version, fmt, quant, max_new_tokens=args.max_new_tokens)
                )
                a = card.accuracy
                row = {
                    "export": card.name,
                    "size_mb": round(card.size_bytes / 1e6, 1),
                    "tokens_per_s": a.tokens_per_s,
                    "agreement": a.agreement,
                    "source_score": a.source_score,
                    "export_score": a.export_score,
                    "export_s": card.seconds["export"],
                }
                results.append(row)
                print(json.dumps(row), flush=True)
        finally:
            exporter.close()
    f16 = next((r for r in results if r["export"] == "gguf-f16"), None)
    q4 = next((r for r in results if r["export"] == "gguf-q4_k_m"), None)
    if f16 and q4:
        print(
            json.dumps(
                {
                    "q4_k_m_size_vs_f16": round(q4["size_mb"] / f16["size_mb"], 3),
                    "q4_k_m_score_drop": round(f16["source_score"] - q4["export_score"], 4),
                }
            )
        )


if __name__ == "__main__":
    main()
