"""``onnx``: the merged model exported by torch's own maintained exporter
(``torch.onnx.export(..., dynamo=True)``), and an INT8 variant by onnxruntime's dynamic
quantization (``onnxruntime.quantization.quantize_dynamic``: int8 weights of MatMul/Gather,
activations quantized on the fly; no calibration data needed).

Hugging Face's ``optimum`` exporter would also write the KV-cache inputs, but ``optimum-onnx``
pins transformers 4.57 and this project runs 5.19, so it cannot be installed here. The graph is
``(input_ids, attention_mask) -> logits`` with dynamic batch and sequence: no KV cache, so a
generation loop re-runs the whole sequence each step (what ``runtimes.OnnxRunner`` does);
right for measuring agreement, slower than a cached graph for long answers.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from distillserve.export.errors import ExportError

ONNX_TYPES = ("fp32", "int8")
MODEL_FILE = "model.onnx"


def _logits_module(model: Any) -> Any:
    import torch

    class LogitsOnly(torch.nn.Module):
        """``(input_ids, attention_mask) -> logits``: the graph's whole interface."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    return LogitsOnly().eval()


def export_fp32(merged_dir: Path, out_file: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    example = torch.ones(1, 8, dtype=torch.long)
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=8192)
    with torch.inference_mode():
        program = torch.onnx.export(
            _logits_module(model),
            (example, torch.ones_like(example)),
            dynamo=True,
            dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            optimize=True,
        )
    program.save(str(out_file), external_data=True)  # weights beside it: past protobuf's 2 GB
    return out_file


def write_onnx(merged_dir: Path, out_dir: Path, quant: str, scratch: Path) -> Path:
    """``out_dir/model.onnx`` (and its external data) of type ``quant``. The fp32 graph is kept in
    ``scratch``, so the INT8 variant of one version does not export again."""
    if quant not in ONNX_TYPES:
        raise ExportError(f"onnx supports --quant {', '.join(ONNX_TYPES)}, not {quant!r}")
    fp32_dir = scratch / "onnx-fp32"
    if not (fp32_dir / MODEL_FILE).is_file():
        part = scratch / "onnx-fp32.part"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        export_fp32(merged_dir, part / MODEL_FILE)
        part.rename(fp32_dir)
    if quant == "fp32":
        shutil.copytree(fp32_dir, out_dir)
        return out_dir / MODEL_FILE
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True)
    quantize_dynamic(fp32_dir / MODEL_FILE, out_dir / MODEL_FILE, weight_type=QuantType.QInt8)
    return out_dir / MODEL_FILE
