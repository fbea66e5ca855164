"""``onnx``: the merged model exported by torch's own maintained exporter
(``torch.onnx.export(..., dynamo=True)``), and an INT8 variant by onnxruntime's dynamic
weight quantization (``onnxruntime.quantization``'s ``MatMulNBitsQuantizer``: int8 MatMul weights
in blocks of 32, activations in fp32; no calibration data needed).

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
    quantize_int8_weights(fp32_dir / MODEL_FILE, out_dir / MODEL_FILE)
    return out_dir / MODEL_FILE


def quantize_int8_weights(fp32_file: Path, out_file: Path) -> None:
    """Every MatMul weight to int8 in blocks of 32 along the input axis, one scale per block
    (onnxruntime's ``MatMulNBits``, what onnxruntime-genai ships LLMs in). ``accuracy_level`` 4
    multiplies in int8 with each activation block quantized on the fly: 7.6 tokens/s in
    bench/export.py against 2.7 when the weights are dequantized to fp32 first, and the block
    scales keep outlier channels local.

    Why not ``quantize_dynamic``: it also quantizes each activation to uint8 with one scale per
    tensor, and SmolLM2's activations have outlier channels (as LLM.int8() found for LLMs), so
    every answer changed: 0 of 30 identical in bench/export.py, per tensor or per channel, against
    25 of 30 here (bench/RESULTS.md)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    out_file.parent.mkdir(parents=True)
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(fp32_file)),
        bits=8,
        block_size=32,
        is_symmetric=True,
        accuracy_level=4,
        op_types_to_quantize=("MatMul",),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out_file), use_external_data_format=True)
