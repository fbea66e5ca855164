"""Registry versions to export in tests: a SmolLM2 adapter (the real student) and a tiny Qwen2 one.

The SmolLM2 adapter is a real PEFT LoRA on every linear layer with random weights (peft's
``init_lora_weights=False``), its B matrices damped so the student still answers in English but
not as the base does: training one would take minutes on 2 cores and prove nothing more about
export. Its regression set is a golden slice in the registry, as the distiller writes it.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from distillserve.adapters.registry import AdapterCard, AdapterRegistry

# Short factual questions with one-word answers: greedy answers the exact grader can check.
REGRESSION = [
    ("What is the capital of France? Answer with one word.", "Paris"),
    ("What color is the sky on a clear day? Answer with one word.", "Blue"),
    ("How many days are in a week? Answer with a number.", "7"),
    ("What is 2 + 3? Answer with a number.", "5"),
    ("What is the opposite of hot? Answer with one word.", "Cold"),
    ("Which animal says meow? Answer with one word.", "Cat"),
    ("What is the largest planet in the solar system? Answer with one word.", "Jupiter"),
    ("What do bees make? Answer with one word.", "Honey"),
]


def regression_rows() -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": q}], "target": a, "answer": a, "key": f"r{i}"}
        for i, (q, a) in enumerate(REGRESSION)
    ]


def write_regression_file(path: Path) -> Path:
    path.write_bytes(
        b"".join(
            orjson.dumps({"prompt": r["messages"][0]["content"], "answer": r["answer"]}) + b"\n"
            for r in regression_rows()
        )
    )
    return path


def damped_lora(
    base_dir: Path, out_dir: Path, *, seed: int = 0, damping: float = 0.15, rank: int = 8
) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(damping)
    model.save_pretrained(out_dir)
    return out_dir


def register_with_golden(registry: AdapterRegistry, adapter_dir: Path) -> str:
    """Register ``adapter_dir`` with a golden regression slice, as the distiller would."""
    rows = b"".join(orjson.dumps(r) + b"\n" for r in regression_rows())
    info = registry.write_golden(rows, n=len(REGRESSION), complete=True)
    described = {
        "source": "golden",
        "version": info.version,
        "n": info.n,
        "sha256": info.sha256,
        "complete": True,
    }
    card = AdapterCard(base_model=registry.base_model, data_sources={"regression_set": described})
    return registry.register(adapter_dir, card).version
