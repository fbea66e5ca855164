"""Which distiller settings teach the testbed student a new task without losing its base skills?

One distiller run per configuration and seed, through the worker itself (``Distiller.run_once``
on a JSONL teacher log, the file sink's format): ``--records`` testbed teacher answers for
``--task``; the run's own filters, held-out slice, replay mix, training, evaluation and card.
Then the registered version is also scored on 60 fresh prompts of the task and 60 base-task
prompts. Prints one JSON line per configuration and seed.

    .venv/bin/python bench/distiller_settings.py \\
        '{"optim": {"lr_scheduler": "constant", "epochs": 20}, "replay": {"ratio": 0.25}}' \\
        '{"optim": {"lr_scheduler": "cosine", "epochs": 30}, "replay": {"ratio": 1.5}}' --seeds 0 1 2

Each configuration is merged key by key over the common settings below (nested ``distiller`` keys).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.adapters.promotion import NoActivator, Promoter
from distillserve.adapters.registry import AdapterRegistry
from distillserve.config import DistillerConfig
from distillserve.distiller.replay import labelled_examples
from distillserve.distiller.sources import JsonlFileSource
from distillserve.distiller.worker import Distiller, resolve_base_model
from distillserve.teacher_log.sink import JsonlFileSink
from distillserve.testbed.tasks import BASE_TASKS, sample
from tests.support.teacher_records import teacher_records

# The settings every configuration starts from (the test loop's, before tuning).
COMMON: dict[str, Any] = {
    "device": "cpu",
    "optim": {"learning_rate": 3e-3},
    "eval": {"holdout_fraction": 0.2, "regression_size": 90, "max_new_tokens": 16},
}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``, nested groups key by key."""
    out = dict(base)
    for key, value in over.items():
        both_groups = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both_groups else value
    return out


def run(over: dict[str, Any], records: int, task: str, seed: int, work: Path) -> dict[str, object]:
    # One trigger's worth: the whole log is one batch, and nothing is promoted.
    fixed = {"seed": seed, "trigger": {"records": records}, "promotion": {"auto": False}}
    cfg = DistillerConfig(**merged(merged(COMMON, over), fixed))
    log_path = work / "teacher-log.jsonl"
    sink = JsonlFileSink(log_path)
    for record in teacher_records([task], records, 11):
        sink.submit(record)
    asyncio.run(sink.aclose())
    registry = AdapterRegistry(str(work / "registry"), "testbed-student")
    base_dir = resolve_base_model("testbed-student")
    distiller = Distiller(
        cfg,
        base_model="testbed-student",
        base_dir=base_dir,
        registry=registry,
        promoter=Promoter(registry, NoActivator()),
        state_dir=work / "state",
    )
    source = JsonlFileSource(log_path, cfg.group_id)
    outcome = distiller.run_once(source.poll(records, timeout_s=0), source, final=True)
    card = outcome.card
    assert card is not None, f"the run trained nothing: {outcome.outcome} {outcome.details}"
    fresh = {
        f"{task}_60": labelled_examples(sample([task], 60, 555), "teacher"),
        "base_60": labelled_examples(sample(BASE_TASKS, 60, 556), "base"),
    }
    extra = distiller.evaluator.score(registry.local_path(card.version), fresh)
    scores = {name: s["score"] for name, s in card.eval["candidate"].items()}
    return {
        "config": over,
        "seed": seed,
        "records": records,
        "train_examples": card.records["train_new"] + card.records["replayed"],
        "steps": card.training["steps"],
        "train_s": card.timings["train_s"],
        "final_loss": card.losses["loss"],
        **{name: round(v, 3) for name, v in scores.items()},
        **{name: round(s.score, 3) for name, s in extra.items()},
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
        for i, text in enumerate(args.configs):
            for seed in args.seeds:
                work = Path(tmp) / f"config{i}-seed{seed}"  # a fresh log, registry and state per run
                print(json.dumps(run(json.loads(text), args.records, args.task, seed, work)), flush=True)


if __name__ == "__main__":
    main()
