"""``gguf``: the merged model converted to GGUF (``gguf_convert``), then, for a quantized type,
quantized by llama.cpp's own quantizer (``llama_cpp.llama_model_quantize``), the one llama.cpp
users run (``llama-quantize``): k-quants pick per-tensor types that a Python writer cannot.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from distillserve.export.errors import ExportError
from distillserve.export.gguf_convert import GGUF_FLOAT_TYPES, convert_to_gguf
from distillserve.export.runtimes import import_llama_cpp

# Quantized types → llama.cpp's ``LLAMA_FTYPE_MOSTLY_*`` names.
GGUF_QUANT_TYPES = {"q8_0": "Q8_0", "q6_k": "Q6_K", "q5_k_m": "Q5_K_M", "q4_k_m": "Q4_K_M", "q4_0": "Q4_0"}
GGUF_TYPES = (*GGUF_FLOAT_TYPES, *GGUF_QUANT_TYPES)
MODEL_FILE = "model.gguf"


def write_gguf(merged_dir: Path, out_dir: Path, quant: str, scratch: Path, *, threads: int = 2) -> Path:
    """``out_dir/model.gguf`` of type ``quant`` from a merged HF directory. The f16 conversion is
    kept in ``scratch`` so the quantized types of one version convert once."""
    if quant not in GGUF_TYPES:
        raise ExportError(f"gguf supports --quant {', '.join(GGUF_TYPES)}, not {quant!r}")
    out_dir.mkdir(parents=True)
    target = out_dir / MODEL_FILE
    if quant in GGUF_FLOAT_TYPES and quant != "f16":
        return convert_to_gguf(merged_dir, target, quant)
    llama_cpp = import_llama_cpp() if quant != "f16" else None  # refuse before converting
    f16 = scratch / "model-f16.gguf"
    if not f16.is_file():
        convert_to_gguf(merged_dir, scratch / "model-f16.gguf.part", "f16").rename(f16)
    if llama_cpp is None:
        shutil.copyfile(f16, target)
        return target
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{GGUF_QUANT_TYPES[quant]}")
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(f16).encode(), str(target).encode(), params)
    if rc != 0:
        raise ExportError(f"llama.cpp could not quantize to {quant} (llama_model_quantize returned {rc})")
    return target
