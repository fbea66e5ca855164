"""Greedy exact match of a local model on testbed (prompt, answer) pairs, in-process.

Used to check the pre-trained student and by experiments; the serving path measures
the same thing over HTTP.
"""

from __future__ import annotations

from typing import Any


def greedy_answers(
    model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int = 24, batch_size: int = 64
) -> list[str]:
    import torch

    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in chunk
        ]
        enc = tokenizer(
            texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        )
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        answers += [tokenizer.decode(row, skip_special_tokens=True) for row in new]
    return answers


def exact_match(model: Any, tokenizer: Any, pairs: list[tuple[str, str]], **kw: Any) -> float:
    """Share of prompts whose greedy answer equals the expected one exactly."""
    got = greedy_answers(model, tokenizer, [p for p, _ in pairs], **kw)
    return sum(g == a for g, (_, a) in zip(got, pairs, strict=True)) / max(1, len(pairs))
