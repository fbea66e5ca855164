"""Sequence-level KD (CE on the teacher's text) against token-level KD with each alignment, across tokenizers.

The same logged teacher answers train every arm: the testbed's exact answers to ``--task``, each
scored by SmolLM2-135M-Instruct (a real model with a BPE tokenizer) for its top-20 logprobs at every
answer token (``bench/kd_teacher.py``; cached under ``.cache/kd_bench``). The student is the
pre-trained testbed student (a character tokenizer, so no teacher token but single characters maps
one to one). Arms: ``ce`` (the teacher's text alone), ``exact`` (today's same-vocabulary path),
``span`` and ``uld``; each a fresh LoRA trained ``--steps`` steps per seed with the project's own
encoder, collator and loss, α and a T schedule from the flags, greedy exact match on held-out
prompts every ``--eval-every`` steps. The kept top-k mass is also reported for the same records
aligned onto the real Qwen2.5 tokenizer (BPE to BPE), where no training is needed to measure it.
Prints JSON (and writes it to ``--out`` when given).

    nice -n 19 .venv/bin/python bench/kd_alignment.py [--task reverse] [--seeds 0 1 2] [--steps 120]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.kd_teacher import load_smollm2, score_answers
from distillserve.config import LoraAdapterConfig
from distillserve.distiller.encoding import ChatEncoder, DistillationCollator, EncodedExample
from distillserve.distiller.examples import TrainingExample, build_examples
from distillserve.distiller.loss import distillation_loss, scheduled_temperature
from distillserve.distiller.trainer import load_model, load_training_tokenizer, with_adapter
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.testbed.exact_match import exact_match
from distillserve.testbed.student_model import ensure_testbed_student
from distillserve.testbed.tasks import sample
from tests.support.qwen_tokenizer import qwen25_tokenizer

ARMS = ("ce", "exact", "span", "uld")


def teacher_records(task: str, n: int, top: int, cache: Path) -> list[TeacherLogRecord]:
    """SmolLM2-scored records of ``n`` testbed answers, computed once and cached."""
    path = cache / f"{task}-{n}-top{top}.jsonl"
    if not path.is_file():
        model, tokenizer = load_smollm2()
        records = score_answers(model, tokenizer, sample([task], n, seed=11), top)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    return [TeacherLogRecord.model_validate_json(line) for line in path.read_text().splitlines()]


def encode(tokenizer: Any, examples: list[TrainingExample], arm: str) -> tuple[list[EncodedExample], dict]:
    if arm == "ce":
        examples = [dataclasses.replace(e, teacher_tokens=None) for e in examples]
    enc = ChatEncoder(tokenizer, 256, alignment="exact" if arm == "ce" else arm)  # type: ignore[arg-type]
    encoded = enc.encode_all(examples)
    kept = enc.kept_masses
    return encoded, {
        "examples": len(encoded),
        "kd_examples": len(kept),
        "mean_kept_mass": round(statistics.fmean(kept), 4) if kept else None,
        "min_kept_mass": round(min(kept), 4) if kept else None,
        "fallbacks": dict(enc.kd_fallbacks),
        "kd_positions": sum(len(e.kd) for e in encoded),
        "uld_positions": sum(len(e.uld) for e in encoded),
    }


def train_arm(
    base: Path, tokenizer: Any, encoded: list[EncodedExample], held: list[tuple[str, str]], seed: int, a: Any
) -> dict[str, Any]:
    """One LoRA run; the held-out accuracy curve and the steps to reach ``a.target``."""
    torch.manual_seed(seed)
    model = with_adapter(load_model(base, "cpu"), LoraAdapterConfig(rank=a.rank, alpha=2 * a.rank), None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr)
    collate = DistillationCollator(tokenizer.pad_token_id)
    rng = random.Random(seed)
    curve = [{"step": 0, "accuracy": exact_match(model.eval(), tokenizer, held)}]
    start = time.perf_counter()
    for step in range(1, a.steps + 1):
        model.train()
        batch = collate(rng.sample(encoded, a.batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        t = scheduled_temperature(a.t_start, a.t_end, a.schedule, (step - 1) / max(1, a.steps - 1))
        parts = distillation_loss(
            logits,
            batch["labels"],
            batch.get("kd_ids"),
            batch.get("kd_logprobs"),
            alpha=a.alpha,
            temperature=t,
            uld_logprobs=batch.get("uld_logprobs"),
        )
        parts.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if step % a.eval_every == 0 or step == a.steps:
            curve.append({"step": step, "accuracy": exact_match(model.eval(), tokenizer, held)})
    reached = next((c["step"] for c in curve if c["accuracy"] >= a.target), None)
    return {
        "seed": seed,
        "final_accuracy": curve[-1]["accuracy"],
        "steps_to_target": reached,
        "curve": curve,
        "seconds": round(time.perf_counter() - start, 1),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    finals = [r["final_accuracy"] for r in runs]
    reached = [r["steps_to_target"] for r in runs if r["steps_to_target"] is not None]
    return {
        "final_accuracy_mean": round(statistics.fmean(finals), 4),
        "final_accuracy_min": min(finals),
        "final_accuracy_max": max(finals),
        "seeds_reaching_target": len(reached),
        "steps_to_target_mean": round(statistics.fmean(reached), 1) if reached else None,
    }


def args_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="reverse")
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--held", type=int, default=60)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--t-start", type=float, default=5.0)
    ap.add_argument("--t-end", type=float, default=1.0)
    ap.add_argument("--schedule", default="cosine", choices=["constant", "linear", "cosine"])
    ap.add_argument("--target", type=float, default=0.3, help="held-out accuracy for steps-to-target")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--cache", type=Path, default=Path(".cache/kd_bench"))
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return ap


def main() -> None:
    a = args_parser().parse_args()
    torch.set_num_threads(1)
    records = teacher_records(a.task, a.train, a.top, a.cache)
    examples, _ = build_examples(records, learn_reasoning=False)
    qwen = qwen25_tokenizer()
    result: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "teacher": f"SmolLM2-135M-Instruct top-{a.top}, teacher-forced on the testbed's exact answers",
        "kept_mass_on_qwen25": {m: encode(qwen, examples, m)[1] for m in ("span", "uld")},
        "arms": {},
    }
    base = ensure_testbed_student()
    tokenizer = load_training_tokenizer(base)
    result["kept_mass_on_student"] = {m: encode(tokenizer, examples, m)[1] for m in ("exact", "span", "uld")}
    held = sample([a.task], a.held, seed=99)
    for arm in a.arms:
        encoded, stats = encode(tokenizer, examples, arm)
        if arm == "exact" and stats["kd_examples"] < len(encoded) / 10:
            result["arms"][arm] = {
                "encode": stats,
                "note": "(almost) every record fell back to CE: as ce, not trained",
            }
            continue
        runs = [train_arm(base, tokenizer, encoded, held, seed, a) for seed in a.seeds]
        result["arms"][arm] = {"encode": stats, **summary(runs), "runs": runs}
        print(arm, json.dumps(result["arms"][arm] | {"runs": "..."}), file=sys.stderr, flush=True)
    if a.out is not None:
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
