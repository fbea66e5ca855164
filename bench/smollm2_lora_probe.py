"""LoRA probe: can SmolLM2-135M-Instruct learn a natural-language task family from the testbed
teacher's R1-style traces? Measured, per family (or per kind of question), before → after.

For each task (``word_problem`` or ``date_arithmetic:weekday_after_weekday``: a family, or one kind
of question in it) the testbed teacher answers ``--train`` prompts in DeepSeek-R1's form
(``<think>steps</think>`` then the answer); the records become training examples through the
distiller's own ``build_examples`` (``--reasoning learned``: the target keeps the trace;
``--reasoning dropped``: the answer alone), the distiller's ``train_adapter`` trains one LoRA
adapter, and its ``Evaluator`` answers ``--heldout`` unseen prompts greedily, base and adapter,
graded by the family's own grader. Prints JSON: accuracy before/after, the form of the answers,
training steps, tokens/s and seconds.

    nice -n 19 .venv/bin/python bench/smollm2_lora_probe.py \
        --task field_extraction --task date_arithmetic:weekday_after_weekday --reasoning dropped
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch

from distillserve.backends.testbed_teacher import solve_prompt
from distillserve.config import DistillerConfig
from distillserve.config.grading import GradingConfig, GradingRule
from distillserve.distiller.evaluation import Evaluator, grade_set
from distillserve.distiller.examples import TrainingExample, build_examples
from distillserve.distiller.trainer import train_adapter
from distillserve.grading.factory import build_selection
from distillserve.models.prepared import resolve_model
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.testbed import language

# Far from the base bench's item seed (101) and the demo's traffic seeds.
TRAIN_SEED, HELDOUT_SEED = 20_001, 30_001


def items(task: str, n: int, seed: int) -> list[language.LanguageItem]:
    """``n`` items of a family, or of one kind of question (``family:problem``) in it."""
    family, _, problem = task.partition(":")
    rng = random.Random(seed)
    out: list[language.LanguageItem] = []
    while len(out) < n:
        item = language.draw_item(family, rng)
        if not problem or item.problem == problem:
            out.append(item)
    return out


def teacher_record(item: language.LanguageItem, n: int) -> TeacherLogRecord:
    """The record the gateway logs when the testbed teacher answers ``item`` R1's way."""
    solved = solve_prompt(item.prompt)
    text = solved.think_layout.format(trace=solved.trace, answer=solved.answer)
    return TeacherLogRecord(
        request_id=f"probe-{n}",
        key=f"probe-{item.task}-{n}",
        messages=[{"role": "user", "content": item.prompt}],
        teacher_model="teacher",
        teacher_backend="testbed",
        response_text=text,
        finish_reason="stop",
        task=item.task,
    )


def examples(task: str, n: int, seed: int, learn_reasoning: bool) -> list[TrainingExample]:
    records = [teacher_record(i, k) for k, i in enumerate(items(task, n, seed))]
    built, report = build_examples(records, learn_reasoning=learn_reasoning)
    assert report.kept == n, report.as_dict()
    return built


def distiller_config(args: argparse.Namespace, learn_reasoning: bool) -> DistillerConfig:
    return DistillerConfig.model_validate(
        {
            "device": "cpu",
            "seed": args.seed,
            "lora": {"rank": args.rank, "alpha": 2 * args.rank},
            "optim": {
                "learning_rate": args.lr,
                "lr_scheduler": "cosine",
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "max_seq_len": 384,
            },
            "kd": {"learn_reasoning": learn_reasoning},
        }
    )


def answer_form(texts: list[str]) -> dict[str, float]:
    n = len(texts)
    return {
        "boxed": round(sum("\\boxed{" in t for t in texts) / n, 3),
        "json_fence": round(sum("```json" in t for t in texts) / n, 3),
        "think": round(sum("</think>" in t for t in texts) / n, 3),
    }


_BASE_ANSWERS: dict[str, list[str]] = {}  # per task: the base model's held-out answers (same in both modes)


def probe(args: argparse.Namespace, evaluator: Evaluator, task: str, mode: str) -> dict[str, Any]:
    learn = mode == "learned"
    train = examples(task, args.train, TRAIN_SEED + args.seed, learn)
    heldout = examples(task, args.heldout, HELDOUT_SEED + args.seed, learn)
    cfg = distiller_config(args, learn)
    t0 = time.perf_counter()
    if task not in _BASE_ANSWERS:
        _BASE_ANSWERS[task] = evaluator.answers(None, heldout)
    before = _BASE_ANSWERS[task]
    t_before = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        trained = train_adapter(evaluator_base(args), train, cfg, Path(tmp) / "adapter")
        t_train = time.perf_counter() - t1
        after = evaluator.answers(Path(tmp) / "adapter", heldout)
    t_after = time.perf_counter() - t1 - t_train
    acc_before = grade_set(evaluator.graders, heldout, before).score
    acc_after = grade_set(evaluator.graders, heldout, after).score
    return {
        "task": task,
        "reasoning": mode,
        "train": len(train),
        "heldout": len(heldout),
        "accuracy_before": round(acc_before, 3),
        "accuracy_after": round(acc_after, 3),
        "right_before": round(acc_before * len(heldout)),
        "right_after": round(acc_after * len(heldout)),
        "form_before": answer_form(before),
        "form_after": answer_form(after),
        "steps": trained.steps,
        "final_loss": round(trained.losses.get("loss", float("nan")), 4),
        "train_tokens_per_s": round(trained.tokens_per_second, 1),
        "seconds": {
            "eval_before": round(t_before, 1),
            "train": round(t_train, 1),
            "eval_after": round(t_after, 1),
        },
        "examples_after": [
            {"reference": e.answer[:120], "reply": a[:240]} for e, a in zip(heldout, after, strict=False)
        ][:2],
    }


def evaluator_base(args: argparse.Namespace) -> Path:
    return resolve_model(args.model)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--task", action="append", help="a family, or family:problem; repeatable")
    ap.add_argument("--reasoning", choices=["learned", "dropped", "both"], default="both")
    ap.add_argument("--train", type=int, default=96)
    ap.add_argument("--heldout", type=int, default=24)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="1 on shared cores: a 2-thread team waits on its preempted member",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rules = [GradingRule(task=f.task, grader=f.grader) for f in language.FAMILIES.values()]
    evaluator = Evaluator(
        evaluator_base(args),
        device="cpu",
        max_new_tokens=args.max_new_tokens,
        batch_size=12,
        graders=build_selection(GradingConfig(default="exact", rules=rules)),
    )
    modes = ["dropped", "learned"] if args.reasoning == "both" else [args.reasoning]
    for task in args.task or list(language.FAMILIES):
        for mode in modes:
            result = probe(args, evaluator, task, mode)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
