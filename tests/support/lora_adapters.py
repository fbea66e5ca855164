"""Make real PEFT LoRA adapters for tests without training: random (non-zero) LoRA weights.

peft's ``init_lora_weights=False`` draws both LoRA matrices at random, so the adapter
changes the model's output; different seeds give different adapters.
"""

from __future__ import annotations

from pathlib import Path


def make_lora_adapter(base_dir: Path, out_dir: Path, *, seed: int, rank: int = 8) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=rank,
        lora_alpha=4 * rank,
        target_modules="all-linear",
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    model.save_pretrained(out_dir)
    return out_dir
