"""``merged``: the adapter folded into its base (peft ``merge_and_unload``), saved as safetensors
with the base's tokenizer, chat template and generation config: a plain HF model directory that
transformers and vLLM load with no peft and no ``--enable-lora``.

The merge is done in float32 (the LoRA delta is added to fp32 weights), then cast to the chosen
dtype; the default is the base's own dtype (bf16 for SmolLM2), the one vLLM serves it in.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from distillserve.export.errors import ExportError

MERGED_DTYPES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}
# What the base's config calls its dtype → our quant name.
_QUANT_OF_DTYPE = {v: k for k, v in MERGED_DTYPES.items()}


def default_merged_quant(base_dir: Path) -> str:
    from transformers import AutoConfig

    dtype = str(getattr(AutoConfig.from_pretrained(base_dir), "dtype", None) or "float32")
    return _QUANT_OF_DTYPE.get(dtype.removeprefix("torch."), "f32")


def write_merged(base_dir: Path, adapter_dir: Path, out_dir: Path, quant: str) -> Path:
    """Merge ``adapter_dir`` into ``base_dir`` and save it to ``out_dir`` (created)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    if quant not in MERGED_DTYPES:
        raise ExportError(f"merged supports --quant {', '.join(MERGED_DTYPES)}, not {quant!r}")
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged = merged.to(getattr(torch, MERGED_DTYPES[quant]))
    merged.config.dtype = getattr(torch, MERGED_DTYPES[quant])
    out_dir.mkdir(parents=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    # A base without a generation config: transformers' defaults apply to both.
    with contextlib.suppress(OSError):
        GenerationConfig.from_pretrained(base_dir).save_pretrained(out_dir)
    return out_dir
