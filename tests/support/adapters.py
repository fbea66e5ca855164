"""Small real LoRA adapters for tests and benchmarks, made with peft in a second or two.

``train_answer_adapter`` trains an adapter that makes the student answer every prompt with
one fixed text, so which version served a request can be read off its greedy answer with
a wide margin (random adapter weights give near-ties that batching can flip).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from distillserve.testbed.tasks import LETTERS


def train_answer_adapter(
    base_dir: Path,
    out_dir: Path,
    answer: str,
    *,
    rank: int = 8,
    steps: int = 40,
    seed: int = 0,
) -> Path:
    """A PEFT LoRA adapter for ``base_dir`` that answers ``answer`` to any user prompt."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread, and on a busy machine
    try:
        return _train(base_dir, out_dir, answer, rank=rank, steps=steps, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _train(base_dir: Path, out_dir: Path, answer: str, *, rank: int, steps: int, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0)
    )
    eos = tok.eos_token or ""

    def example() -> tuple[list[int], list[int]]:
        task = rng.choice(["copy", "upper", "first", "reverse", "sort", "add"])
        word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 9)))
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": f"{task}: {word}"}], tokenize=False, add_generation_prompt=True
        )
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        a_ids = tok(answer + eos, add_special_tokens=False).input_ids
        return p_ids + a_ids, [-100] * len(p_ids) + a_ids

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    model.train()
    for _ in range(steps):
        batch = [example() for _ in range(8)]
        width = max(len(ids) for ids, _ in batch)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out_dir)
    return out_dir


def untrained_adapter(base_dir: Path, out_dir: Path, *, rank: int, dora: bool = False) -> Path:
    """A valid PEFT adapter of ``rank`` with the default (no-op) initialisation; ``dora``: a
    weight-decomposed one (DoRA), which peft serves and vLLM refuses."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules="all-linear", use_dora=dora)
    get_peft_model(model, config).save_pretrained(out_dir)
    return out_dir


def adapter_for_other_base(adapter_dir: Path, out_dir: Path, base: str) -> Path:
    """A copy of ``adapter_dir`` that says it was trained for ``base``."""
    shutil.copytree(adapter_dir, out_dir)
    cfg_path = out_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base
    cfg_path.write_text(json.dumps(cfg))
    return out_dir


def adapter_with_wrong_shapes(base_dir: Path, out_dir: Path) -> Path:
    """An adapter that names ``base_dir`` as its base but was made for a model half as wide
    (vLLM would accept it and serve garbage; the gateway compares shapes with the base's)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_dir)
    config.hidden_size //= 2
    config.intermediate_size //= 2
    config.head_dim = config.hidden_size // config.num_attention_heads
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules="all-linear"))
    model.save_pretrained(out_dir)
    cfg_path = out_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(base_dir)
    cfg_path.write_text(json.dumps(cfg))
    return out_dir
