"""Can a LoRA adapter teach the pre-trained testbed student a new task from a few hundred answers?

peft LoRA SFT on ``--examples`` exact teacher answers of ``--task`` (loss on assistant
tokens only), greedy exact match on held-out prompts every ``--eval-every`` epochs, and
the base task ``copy`` at the end (forgetting without replay). Prints JSON.

    .venv/bin/python bench/testbed_lora_learnability.py [--task reverse] [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.testbed.exact_match import exact_match
from distillserve.testbed.pretraining import collate, encode_sft_example
from distillserve.testbed.student_model import ensure_testbed_student
from distillserve.testbed.tasks import sample


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="reverse")
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    base = ensure_testbed_student()
    tok = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    data = [encode_sft_example(tok, p, a) for p, a in sample([args.task], args.examples, seed=11)]
    held = sample([args.task], 60, seed=99)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr)
    rng = random.Random(0)
    curve = [{"epoch": 0, "steps": 0, "seconds": 0.0, "exact_match": exact_match(model.eval(), tok, held)}]
    start, steps = time.perf_counter(), 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.sample(range(len(data)), len(data))
        for i in range(0, len(order), args.batch):
            loss = model(**collate([data[j] for j in order[i : i + args.batch]], tok.pad_token_id)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)  # without it lr ≥ 3e-3 stalls
            opt.step()
            opt.zero_grad()
            steps += 1
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            em = exact_match(model.eval(), tok, held)
            curve.append(
                {
                    "epoch": epoch,
                    "steps": steps,
                    "seconds": round(time.perf_counter() - start, 1),
                    "exact_match": em,
                }
            )
    copy_after = exact_match(model.eval(), tok, sample(["copy"], 60, seed=5))
    print(
        json.dumps(
            {"task": args.task, "args": vars(args), "curve": curve, "copy_after": copy_after}, indent=2
        )
    )


if __name__ == "__main__":
    main()
