"""Training throughput of the distiller's trainer vs TRL's SFTTrainer, same LoRA job, one run.

Both sides train the same LoRA config (rank, alpha, targets, lr, batch, epochs, seed) on the
same chat examples (testbed teacher answers: prompt → assistant answer, loss on the answer),
from the same base model; we time ``trainer.train()`` only and count the tokens each side fed
the model (its own tokenization, no padding). Prints JSON with tokens/s of each and the ratio
ours / TRL (≥ 1.0: ours is at least as fast).

    .venv/bin/python bench/distill_throughput.py                    # the testbed student
    .venv/bin/python bench/distill_throughput.py --model DIR --examples 512 --repeats 3
"""

from __future__ import annotations

import argparse
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
from distillserve.distiller.trainer import load_base, lora_config, resolve_device, train_adapter
from distillserve.testbed.tasks import BASE_TASKS, sample


def ours(base: Path, examples: list[Any], cfg: DistillerConfig, work: Path) -> dict[str, float]:
    out = train_adapter(base, examples, cfg, work / "ours-adapter", work_dir=work / "ours-trainer")
    return {"tokens": out.tokens, "seconds": out.seconds, "final_loss": out.losses["loss"]}


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
        per_device_train_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="linear",
        max_length=cfg.max_seq_len,
        completion_only_loss=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        use_cpu=device == "cpu",
        dataloader_pin_memory=device != "cpu",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora_config(cfg)
    )
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * cfg.epochs
    start = time.perf_counter()
    result = trainer.train()
    return {
        "tokens": tokens,
        "seconds": time.perf_counter() - start,
        "final_loss": float(result.training_loss),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="testbed-student", help="HF model dir, or testbed-student")
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="runs per side, alternating; the median counts")
    a = ap.parse_args()

    if a.model == "testbed-student":
        from distillserve.testbed.student_model import ensure_testbed_student

        base = ensure_testbed_student()
    else:
        base = Path(a.model)
    cfg = DistillerConfig(
        epochs=a.epochs, batch_size=a.batch_size, lora_rank=a.rank, lora_alpha=2 * a.rank, learning_rate=2e-3
    )
    examples = labelled_examples(sample(["reverse", *BASE_TASKS], a.examples, seed=3), "teacher")
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "trl_sft": []}
    with tempfile.TemporaryDirectory(prefix="distill-bench-", dir=Path(__file__).parent) as tmp:
        for i in range(a.repeats):
            for name, fn in (("ours", ours), ("trl_sft", trl_sft)):
                runs[name].append(fn(base, examples, cfg, Path(tmp) / f"{name}-{i}"))

    def summary(rs: list[dict[str, float]]) -> dict[str, float]:
        tps = [r["tokens"] / r["seconds"] for r in rs]
        return {
            "tokens_per_s": round(statistics.median(tps), 1),
            "runs_tokens_per_s": [round(x, 1) for x in tps],
            "tokens_per_run": rs[0]["tokens"],
            "final_loss": round(rs[-1]["final_loss"], 4),
        }

    s_ours, s_trl = summary(runs["ours"]), summary(runs["trl_sft"])
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
                    "target_modules": cfg.target_modules,
                },
                "ours": s_ours,
                "trl_sft": s_trl,
                "ratio_ours_over_trl": round(s_ours["tokens_per_s"] / s_trl["tokens_per_s"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
