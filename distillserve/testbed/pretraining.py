"""Pre-train the testbed student on the base tasks: plain supervised fine-tuning, deterministic.

Examples are ChatML conversations (user prompt, assistant answer); the loss covers the
assistant tokens only (answer + ``<|im_end|>``), as the distiller's LoRA SFT does, so
the student learns to answer and to stop. The learnable tasks (reverse, sort) are
never shown: the distiller teaches them later from the teacher's answers.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from distillserve.testbed.tasks import BASE_TASKS, sample

IGNORE_INDEX = -100


@dataclass(frozen=True)
class PretrainRecipe:
    tasks: tuple[str, ...] = tuple(BASE_TASKS)
    examples: int = 20000
    steps: int = 700
    batch_size: int = 64
    # 3e-3 stalls on the plateau before copying emerges (loss ≈2.5 after 1000 steps); 1e-3 leaves it
    # after ≈150 steps.
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0


def encode_sft_example(tokenizer: Any, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one chat turn; labels mask everything but the answer and eos."""
    prompt_ids = list(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_dict=True
        )["input_ids"]
    )
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for training (positions start at 0 for every row)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def pretrain(model: Any, tokenizer: Any, recipe: PretrainRecipe, *, seed: int) -> dict[str, Any]:
    """Train ``model`` in place; returns figures for the model card. Same seed, same weights."""
    import torch

    # One thread: the same weights on any core count, and no OpenMP spinning on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(model, tokenizer, recipe, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _train(model: Any, tokenizer: Any, recipe: PretrainRecipe, *, seed: int) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    pairs = sample(list(recipe.tasks), recipe.examples, seed=seed + 1)
    data = [encode_sft_example(tokenizer, p, a) for p, a in pairs]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)

    def lr_at(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        return max(0.1, 1.0 - progress)  # linear decay to 10 %

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    start = time.monotonic()
    losses: list[float] = []
    order: list[int] = []
    for _step in range(recipe.steps):
        if len(order) < recipe.batch_size:
            order += rng.sample(range(len(data)), len(data))
        batch = collate([data[i] for i in order[: recipe.batch_size]], tokenizer.pad_token_id)
        del order[: recipe.batch_size]
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return {
        "steps": recipe.steps,
        "seconds": round(time.monotonic() - start, 1),
        "final_loss": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4),
    }
