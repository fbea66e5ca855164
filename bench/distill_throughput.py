"""Training throughput of the distiller's trainer vs TRL's SFTTrainer, same LoRA job, one run.

Both sides train the same LoRA config (rank, alpha, targets, lr, batch, epochs, seed) on the
same chat examples (testbed teacher answers: prompt → assistant answer, loss on the answer),
from the same base model; we time ``trainer.train()`` only and count the tokens each side fed
the model (its own tokenization, no padding). Prints JSON with tokens/s of each and the ratio
ours / TRL (≥ 1.0: ours is at least as fast). A bare PyTorch loop doing the same job shows
what the Trainer machinery itself costs.

    .venv/bin/python bench/distill_throughput.py                    # the testbed student
    .venv/bin/python bench/distill_throughput.py --model DIR --examples 512 --repeats 3
    .venv/bin/python bench/distill_throughput.py --model smollm2 --examples 64 --batch-size 8 --rank 8

``--model smollm2`` (the SmolLM2-135M-Instruct shipped in a wheel) trains on the natural-language
workload the SmolLM2 demo logs (the testbed teacher's answers to word problems, conversions, dates
and field extraction, without the trace: ``kd.learn_reasoning: false``), at the demo's lr 1e-3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from distillserve.config import DistillerConfig
from distillserve.distiller.replay import labelled_examples
from distillserve.distiller.trainer import (
    load_base,
    lora_config,
    resolve_device,
    train_adapter,
    training_seq_len,
)
from distillserve.testbed.tasks import BASE_TASKS, sample


def ours(base: Path, examples: list[Any], cfg: DistillerConfig, work: Path) -> dict[str, float]:
    out = train_adapter(base, examples, cfg, work / "ours-adapter", work_dir=work / "ours-trainer")
    return {"tokens": out.tokens, "seconds": out.seconds, "final_loss": out.losses["loss"]}


def plain_loop(base: Path, examples: list[Any], cfg: DistillerConfig, work: Path) -> dict[str, float]:
    """The same job as a bare PyTorch loop (our encoder, collator and loss): Trainer's overhead."""
    import math
    import random

    from peft import get_peft_model
    from transformers import get_linear_schedule_with_warmup, set_seed

    from distillserve.distiller.encoding import ChatEncoder, DistillationCollator
    from distillserve.distiller.loss import distillation_loss

    device = resolve_device(cfg.device)
    set_seed(cfg.seed)
    model, tokenizer = load_base(base, device)
    encoded = ChatEncoder(tokenizer, training_seq_len(base, cfg.optim.max_seq_len)).encode_all(examples)
    model = get_peft_model(model, lora_config(cfg.lora))
    collate = DistillationCollator(tokenizer.pad_token_id)
    steps = math.ceil(len(encoded) / cfg.optim.batch_size) * cfg.optim.epochs
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.learning_rate)
    sched = get_linear_schedule_with_warmup(opt, 0, steps)
    rng = random.Random(cfg.seed)
    model.train()
    start = time.perf_counter()
    loss = torch.tensor(0.0)
    for _ in range(cfg.optim.epochs):
        order = rng.sample(range(len(encoded)), len(encoded))
        for i in range(0, len(order), cfg.optim.batch_size):
            batch = {
                k: v.to(device)
                for k, v in collate([encoded[j] for j in order[i : i + cfg.optim.batch_size]]).items()
            }
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = distillation_loss(logits, batch["labels"], alpha=cfg.kd.alpha, temperature=1.0).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    tokens = sum(len(e.input_ids) for e in encoded) * cfg.optim.epochs
    return {"tokens": tokens, "seconds": seconds, "final_loss": float(loss.detach())}


def trl_sft(base: Path, examples: list[Any], cfg: DistillerConfig, work: Path) -> dict[str, float]:
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    device = resolve_device(cfg.device)
    set_seed(cfg.seed)
    model, tokenizer = load_base(base, device)
    tokenizer.padding_side = "right"
    data = Dataset.from_list(
        [{"prompt": e.messages, "completion": [{"role": "assistant", "content": e.target}]} for e in examples]
    )
    args = SFTConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=cfg.optim.batch_size,
        num_train_epochs=cfg.optim.epochs,
        learning_rate=cfg.optim.learning_rate,
        lr_scheduler_type="linear",
        max_length=training_seq_len(base, cfg.optim.max_seq_len),
        completion_only_loss=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        save_strategy="no",
        # Every step's loss, so the final loss is the last step's as on the other sides:
        # ``TrainOutput.training_loss`` is the mean over the whole run (its early steps included).
        logging_strategy="steps",
        logging_steps=1,
        use_cpu=device == "cpu",
        dataloader_pin_memory=device != "cpu",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora_config(cfg.lora),
    )
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * cfg.optim.epochs
    start = time.perf_counter()
    result = trainer.train()
    return {
        "tokens": tokens,
        "seconds": time.perf_counter() - start,
        "final_loss": [h["loss"] for h in trainer.state.log_history if "loss" in h][-1],
        "mean_loss": float(result.training_loss),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="testbed-student", help="HF model dir, testbed-student or smollm2")
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="runs per side, alternating; the median counts")
    a = ap.parse_args()

    lr = 2e-3
    if a.model == "testbed-student":
        from distillserve.testbed.student_model import ensure_testbed_student

        base = ensure_testbed_student()
        pairs = sample(["reverse", *BASE_TASKS], a.examples, seed=3)
    elif a.model == "smollm2":
        from distillserve.distiller.worker import resolve_base_model
        from distillserve.testbed import language

        base, lr = Path(resolve_base_model("smollm2")), 1e-3
        pairs = [(i.prompt, i.answer) for i in language.sample(list(language.FAMILIES), a.examples, 3)]
    else:
        base = Path(a.model)
        pairs = sample(["reverse", *BASE_TASKS], a.examples, seed=3)
    cfg = DistillerConfig(
        optim={"epochs": a.epochs, "batch_size": a.batch_size, "learning_rate": lr},
        lora={"rank": a.rank, "alpha": 2 * a.rank},
    )
    examples = labelled_examples(pairs, "teacher")
    sides = {"ours": ours, "trl_sft": trl_sft, "plain_loop": plain_loop}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory(prefix="distill-bench-", dir=Path(__file__).parent) as tmp:
        for i in range(a.repeats):
            for name, fn in sides.items():
                with contextlib.redirect_stdout(sys.stderr):  # trainers print their own summaries
                    runs[name].append(fn(base, examples, cfg, Path(tmp) / f"{name}-{i}"))

    def summary(rs: list[dict[str, float]]) -> dict[str, float]:
        tps = [r["tokens"] / r["seconds"] for r in rs]
        return {
            "tokens_per_s": round(statistics.median(tps), 1),
            "runs_tokens_per_s": [round(x, 1) for x in tps],
            "tokens_per_run": rs[0]["tokens"],
            "final_loss": round(rs[-1]["final_loss"], 4),
        }

    s_ours, s_trl, s_plain = summary(runs["ours"]), summary(runs["trl_sft"]), summary(runs["plain_loop"])
    print(
        json.dumps(
            {
                "benchmark": "distill_throughput",
                "model": str(base),
                "device": resolve_device(cfg.device),
                "torch_threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(),
                "config": {
                    "examples": a.examples,
                    "epochs": a.epochs,
                    "batch_size": a.batch_size,
                    "lora_rank": a.rank,
                    "target_modules": cfg.lora.target_modules,
                },
                "ours": s_ours,
                "trl_sft": s_trl,
                "plain_loop": s_plain,
                "ratio_ours_over_trl": round(s_ours["tokens_per_s"] / s_trl["tokens_per_s"], 3),
                # < 1.0 is the cost of transformers' Trainer over a bare loop doing the same job.
                "ratio_ours_over_plain_loop": round(s_ours["tokens_per_s"] / s_plain["tokens_per_s"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
