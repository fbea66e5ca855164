"""Sequence-level KD (CE on the teacher's text) against token-level KD with each alignment, across tokenizers.

The same logged teacher answers train every arm. Default (``--teacher testbed``, the fair setup):
the pre-trained testbed character model answers ``--task``'s prompts greedily and logs, for each
token it chose, the top-20 logprobs of that same step (what vLLM's ``logprobs.content`` carries;
``bench/kd_teacher.py``, cached under ``.cache/kd_bench``); the student is SmolLM2-135M-Instruct
(BPE), so alignment runs character tokens -> BPE tokens. ``--teacher smollm2-forced`` is the
unfair baseline kept for comparison: SmolLM2 teacher-forced on the oracle's answers (its top-k
barely covers them) teaching the testbed character model.

Arms: ``ce`` (the teacher's text alone), ``exact`` (the same-vocabulary path: the text re-spelt
with the teacher's tokens), ``span`` and ``uld``; each a fresh LoRA trained ``--steps`` steps per
seed with the project's own encoder, collator and loss, α and a T schedule from the flags. Every
``--eval-every`` steps, greedy answers on held-out prompts give exact match vs the oracle and
agreement with the teacher's own greedy answer (fidelity). Kept top-k mass is reported on the
student's tokenizer and on the real Qwen2.5 tokenizer. Prints JSON (and writes it to ``--out``).

    nice -n 19 .venv/bin/python bench/kd_alignment.py [--task upper] [--seeds 0 1 2] [--steps 10]
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
from bench.kd_teacher import generate_records, load_smollm2, score_answers
from distillserve.config import LoraAdapterConfig
from distillserve.distiller.encoding import ChatEncoder, DistillationCollator, EncodedExample
from distillserve.distiller.examples import TrainingExample, build_examples
from distillserve.distiller.loss import distillation_loss, scheduled_temperature
from distillserve.distiller.trainer import load_model, load_training_tokenizer, with_adapter
from distillserve.models.prepared import ensure_smollm2
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.testbed.exact_match import greedy_answers
from distillserve.testbed.student_model import ensure_testbed_student
from distillserve.testbed.tasks import sample
from tests.support.qwen_tokenizer import qwen25_tokenizer

ARMS = ("ce", "exact", "span", "uld")


TEACHERS = ("testbed", "smollm2-forced")


@dataclasses.dataclass
class Setup:
    """Who teaches whom: the logged records, the student's base, and the held-out references."""

    records: list[TeacherLogRecord]
    student_base: Path
    held: list[tuple[str, str]]  # (prompt, oracle answer)
    teacher_held: list[str]  # the teacher's own answer to each held-out prompt
    about: dict[str, Any]


def testbed_teacher() -> tuple[Any, Any]:
    base = ensure_testbed_student()
    return load_model(base, "cpu").eval(), load_training_tokenizer(base)


def cached_records(path: Path, make: Any) -> list[TeacherLogRecord]:
    if not path.is_file():
        records = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    return [TeacherLogRecord.model_validate_json(line) for line in path.read_text().splitlines()]


def testbed_setup(a: Any) -> Setup:
    """Fair: the testbed character model answers greedily and logs the top-k that chose each token."""
    model, tok = testbed_teacher()
    train = [p for p, _ in sample([a.task], a.train, seed=11)]
    records = cached_records(
        a.cache / f"testbed-{a.task}-{a.train}-top{a.top}.jsonl",
        lambda: generate_records(model, tok, train, a.top, "testbed-student (char)"),
    )
    held = sample([a.task], a.held, seed=99)
    teacher_held = greedy_answers(model, tok, [p for p, _ in held], max_new_tokens=a.max_new_tokens)
    train_oracle = dict(sample([a.task], a.train, seed=11))
    about = {
        "teacher": f"testbed character model (pre-trained), its own greedy answers, top-{a.top} logprobs "
        "of the step that chose each token",
        "student": "SmolLM2-135M-Instruct (BPE 49k) + a fresh LoRA per arm and seed",
        "teacher_accuracy_train": _share(r.response_text == train_oracle[r.key] for r in records),
        "teacher_accuracy_held": _share(t == o for t, (_, o) in zip(teacher_held, held, strict=True)),
        "teacher_accuracy_by_task": {t: _teacher_accuracy(model, tok, t, a) for t in a.probe_tasks},
    }
    return Setup(records, ensure_smollm2(), held, teacher_held, about)


def forced_setup(a: Any) -> Setup:
    """The unfair baseline: SmolLM2 teacher-forced on the oracle's answers (its top-k barely
    covers them), the testbed character model as student."""
    records = cached_records(
        a.cache / f"{a.task}-{a.train}-top{a.top}.jsonl",
        lambda: score_answers(*load_smollm2(), sample([a.task], a.train, seed=11), a.top),
    )
    held = sample([a.task], a.held, seed=99)
    about = {
        "teacher": f"SmolLM2-135M-Instruct top-{a.top}, teacher-forced on the testbed's exact answers "
        "(unfair: the logged top-k is not the distribution that produced the answer)",
        "student": "testbed character model + a fresh LoRA per arm and seed",
    }
    return Setup(records, ensure_testbed_student(), held, [o for _, o in held], about)


def _teacher_accuracy(model: Any, tok: Any, task: str, a: Any) -> float:
    pairs = sample([task], a.probe_n, seed=99)
    got = greedy_answers(model, tok, [p for p, _ in pairs], max_new_tokens=a.max_new_tokens)
    return _share(g == o for g, (_, o) in zip(got, pairs, strict=True))


def _share(hits: Any) -> float:
    hits = list(hits)
    return round(sum(hits) / max(1, len(hits)), 4)


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


def evaluate(model: Any, tokenizer: Any, setup: Setup, step: int, a: Any) -> dict[str, Any]:
    """Held-out greedy answers: exact match vs the oracle, and agreement with the teacher's own."""
    prompts = [p for p, _ in setup.held]
    got = greedy_answers(model.eval(), tokenizer, prompts, max_new_tokens=a.max_new_tokens)
    return {
        "step": step,
        "accuracy": _share(g == o for g, (_, o) in zip(got, setup.held, strict=True)),
        "fidelity": _share(g == t for g, t in zip(got, setup.teacher_held, strict=True)),
    }


def train_step(model: Any, params: list[Any], opt: Any, batch: dict[str, Any], t: float, a: Any) -> None:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
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


def train_arm(
    setup: Setup, tokenizer: Any, encoded: list[EncodedExample], base_eval: dict, seed: int, a: Any
) -> dict[str, Any]:
    """One LoRA run; the held-out curve and the steps to reach ``a.target``.

    Step 0 is the base model's evaluation, shared by every run: a fresh LoRA (B = 0) changes nothing.
    """
    torch.manual_seed(seed)
    lora = LoraAdapterConfig(rank=a.rank, alpha=2 * a.rank)
    model = with_adapter(load_model(setup.student_base, "cpu"), lora, None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr)
    collate = DistillationCollator(tokenizer.pad_token_id)
    rng = random.Random(seed)
    curve = [base_eval]
    start = time.perf_counter()
    for step in range(1, a.steps + 1):
        model.train()
        t = scheduled_temperature(a.t_start, a.t_end, a.schedule, (step - 1) / max(1, a.steps - 1))
        train_step(model, params, opt, collate(rng.sample(encoded, a.batch)), t, a)
        if step % a.eval_every == 0 or step == a.steps:
            curve.append(evaluate(model, tokenizer, setup, step, a))
    reached = next((c["step"] for c in curve if c["accuracy"] >= a.target), None)
    return {
        "seed": seed,
        "final_accuracy": curve[-1]["accuracy"],
        "final_fidelity": curve[-1]["fidelity"],
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
        "final_fidelity_mean": round(statistics.fmean(r["final_fidelity"] for r in runs), 4),
        "seeds_reaching_target": len(reached),
        "steps_to_target_mean": round(statistics.fmean(reached), 1) if reached else None,
    }


def args_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--teacher", default="testbed", choices=TEACHERS, help="smollm2-forced: the unfair baseline"
    )
    ap.add_argument("--task", default="upper")
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--held", type=int, default=24)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--t-start", type=float, default=5.0)
    ap.add_argument("--t-end", type=float, default=1.0)
    ap.add_argument("--schedule", default="cosine", choices=["constant", "linear", "cosine"])
    ap.add_argument("--target", type=float, default=0.5, help="held-out accuracy for steps-to-target")
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--probe-tasks", nargs="*", default=["copy", "upper", "first", "reverse", "sort"])
    ap.add_argument("--probe-n", type=int, default=50, help="prompts per task for the teacher's accuracy")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--cache", type=Path, default=Path(".cache/kd_bench"))
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return ap


def run_arms(setup: Setup, tokenizer: Any, examples: list[TrainingExample], a: Any) -> dict[str, Any]:
    base_eval = evaluate(load_model(setup.student_base, "cpu"), tokenizer, setup, 0, a)
    out: dict[str, Any] = {"base_student_eval": base_eval, "arms": {}}
    for arm in a.arms:
        encoded, stats = encode(tokenizer, examples, arm)
        if arm == "exact" and stats["kd_examples"] < len(encoded) / 10:
            out["arms"][arm] = {
                "encode": stats,
                "note": "(almost) every record fell back to CE: as ce, not trained",
            }
            continue
        runs = [train_arm(setup, tokenizer, encoded, base_eval, seed, a) for seed in a.seeds]
        out["arms"][arm] = {"encode": stats, **summary(runs), "runs": runs}
        print(arm, json.dumps(out["arms"][arm] | {"runs": "..."}), file=sys.stderr, flush=True)
    return out


def main() -> None:
    a = args_parser().parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    setup = testbed_setup(a) if a.teacher == "testbed" else forced_setup(a)
    examples, _ = build_examples(setup.records, learn_reasoning=False)
    tokenizer = load_training_tokenizer(setup.student_base)
    result: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        **setup.about,
        "training_examples": len(examples),
        "kept_mass_on_student": {m: encode(tokenizer, examples, m)[1] for m in ("exact", "span", "uld")},
        "kept_mass_on_qwen25": {m: encode(qwen25_tokenizer(), examples, m)[1] for m in ("span", "uld")},
    }
    result |= run_arms(setup, tokenizer, examples, a)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    if a.out is not None:
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
