"""Which distiller settings teach the testbed student a new task without losing its base skills?

One distiller run per configuration, on the worker's own code path (filters, held-out slice,
replay mix, ``train_adapter``, ``Evaluator``) but without the broker: ``--records`` testbed
teacher answers for ``--task``, then greedy exact match on the run's held-out slice, the
regression set, 60 fresh prompts of the task and 60 base-task prompts. Prints one JSON line per
configuration and seed.

    .venv/bin/python bench/distiller_settings.py \\
        '{"lr_scheduler": "constant", "epochs": 20, "replay_ratio": 0.25}' \\
        '{"lr_scheduler": "cosine", "epochs": 30, "replay_ratio": 1.5}' --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.config import DistillerConfig
from distillserve.distiller.evaluation import Evaluator
from distillserve.distiller.examples import build_examples
from distillserve.distiller.replay import (
    base_replay_examples,
    labelled_examples,
    mix_replay,
    regression_examples,
)
from distillserve.distiller.trainer import train_adapter
from distillserve.distiller.worker import is_held_out, resolve_base_model
from distillserve.testbed.tasks import BASE_TASKS, sample
from tests.support.teacher_records import teacher_records

# The settings every configuration starts from (the test loop's, before tuning).
COMMON = {"learning_rate": 3e-3, "holdout_fraction": 0.2, "regression_size": 90, "eval_max_new_tokens": 16}


def run(over: dict[str, object], records: int, task: str, seed: int, work: Path) -> dict[str, object]:
    cfg = DistillerConfig(**{**COMMON, "device": "cpu", **over, "seed": seed})
    base_dir = resolve_base_model("testbed-student")
    examples, _ = build_examples(
        teacher_records([task], records, 11), learn_reasoning=True, seen_fingerprints=set()
    )
    held = [e for e in examples if is_held_out(e.key, cfg.holdout_fraction, cfg.seed)]
    train = [e for e in examples if not is_held_out(e.key, cfg.holdout_fraction, cfg.seed)]
    pool = base_replay_examples(max(64, math.ceil(records * cfg.replay_ratio)))  # as the worker sizes it
    mixed = mix_replay(
        train, [], pool, ratio=cfg.replay_ratio, base_share=cfg.replay_base_share, rng=random.Random(seed)
    )
    out = work / f"run-{time.time_ns()}"
    start = time.perf_counter()
    trained = train_adapter(base_dir, mixed, cfg, out / "adapter", work_dir=out / "trainer")
    seconds = time.perf_counter() - start
    sets = {
        "heldout": held,
        "regression": regression_examples(cfg.regression_size),
        f"{task}_60": labelled_examples(sample([task], 60, 555), "teacher"),
        "base_60": labelled_examples(sample(BASE_TASKS, 60, 556), "base"),
    }
    scores = Evaluator(base_dir, device="cpu", max_new_tokens=cfg.eval_max_new_tokens).score(
        out / "adapter", sets
    )
    return {
        "config": over,
        "seed": seed,
        "records": records,
        "train_examples": len(mixed),
        "steps": trained.steps,
        "train_s": round(seconds, 1),
        "final_loss": round(trained.losses["loss"], 4),
        **{name: round(s.exact_match, 3) for name, s in scores.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="+", help="JSON objects of DistillerConfig overrides")
    ap.add_argument("--records", type=int, default=240)
    ap.add_argument("--task", default="reverse")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(
        prefix="distiller-settings-", dir=Path(__file__).parents[1] / ".cache"
    ) as tmp:
        for text in args.configs:
            for seed in args.seeds:
                print(json.dumps(run(json.loads(text), args.records, args.task, seed, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
