"""A brief LoRA fine-tune of the testbed student on one learnable task (plus replay of the base
tasks, so it keeps them): the "improved student" that router tests compare against the base one.

Plain peft + a torch loop over the same ChatML encoding the student was pre-trained with; a few
hundred small steps, well under a minute on 2 cores. Deterministic for a seed on one machine.

The lr decays linearly to zero, as the distiller's does (``DistillerConfig.lr_scheduler``). The
earlier constant lr over 300 steps stopped while the loss was still falling steeply (means per 50
steps: 1.32, 0.95, 0.50, 0.38), wherever the last steps happened to land, and that landing differs
between CPU kernel sets: on an AVX512 machine the adapter lost base skills for 5 seeds of 5 (seed 0:
copy 1.00 -> 0.58, first 1.00 -> 0.50, student quality 0.41 -> 0.33, so the router rightly sent the
teacher *more*); with AVX2 kernels 3 seeds of 5 gave no drop in teacher share. Decayed over 500
steps it converges (final loss 0.01-0.06): over seeds 0-9 on both kernel sets, reverse 0.84-1.00
and every base task 0.96-1.00.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from distillserve.testbed.pretraining import collate, encode_sft_example
from distillserve.testbed.tasks import BASE_TASKS, sample


def train_task_adapter(
    base_dir: Path,
    out_dir: Path,
    *,
    task: str = "reverse",
    steps: int = 500,
    batch_size: int = 16,
    learning_rate: float = 3e-3,  # with gradient clipping: what bench/RESULTS.md found learnable
    rank: int = 16,
    seed: int = 0,
) -> dict[str, float]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0)
    )
    new = sample([task], 3000, seed + 11)
    replay = sample(
        list(BASE_TASKS), 3000, seed + 12
    )  # half replay keeps the base tasks (a quarter lost copy)
    data = [encode_sft_example(tokenizer, p, a) for p, a in new + replay]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps)
    model.train()
    started = time.monotonic()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        batch = collate(rng.sample(data, batch_size), tokenizer.pad_token_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    model.save_pretrained(out_dir)
    return {"seconds": time.monotonic() - started, "final_loss": float(loss.detach())}
