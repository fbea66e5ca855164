"""Distiller training throughput on 1 vs 2 DDP ranks (CPU, gloo), same job, same global batch.

Each configuration is a real torchrun launch of the distiller's job channel and trainer
(``tests/support/ranked_training.py``: rank 0 broadcasts the examples, every rank trains); the
figure is examples/s over ``trainer.train()`` as rank 0 times it (examples × epochs / seconds),
plus the launch's wall time (imports, rendezvous, model load). One rank is run with 1 and with 2
torch threads, so "2 ranks × 1 thread" is compared with the same cores used by one process.

    .venv/bin/python bench/distill_ranks.py                      # testbed student, 256 examples
    .venv/bin/python bench/distill_ranks.py --examples 512 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from distillserve.config import DistillerConfig
from distillserve.distiller.examples import build_examples
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.teacher_records import teacher_records

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [(1, 1), (1, 2), (2, 1)]  # (ranks, torch threads per rank)


def launch(
    ranks: int, threads: int, job: dict[str, Path], cfg: DistillerConfig, work: Path
) -> dict[str, Any]:
    cfg_path = work / f"cfg-{ranks}x{threads}.json"
    cfg_path.write_text(cfg.model_copy(update={"torch_threads": threads}).model_dump_json())
    out = work / f"out-{ranks}x{threads}-{time.monotonic_ns()}"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
        "-m", "tests.support.ranked_training", str(job["base"]), str(job["examples"]), str(cfg_path), str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{ranks} ranks failed:\n{proc.stderr[-3000:]}")
    outcome = json.loads((out / "outcome.json").read_text())
    return {
        "train_s": outcome["seconds"],
        "wall_s": wall,
        "steps": outcome["steps"],
        "loss": outcome["losses"]["loss"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    cfg = DistillerConfig(
        lora={"rank": 8, "alpha": 16},
        optim={"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": 3e-3},
        seed=0,
    )
    examples, _ = build_examples(
        teacher_records(["reverse"], args.examples, seed=5, top_logprobs=1), learn_reasoning=False
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ranks-") as tmp:
        work = Path(tmp)
        (work / "examples.pkl").write_bytes(pickle.dumps(examples))
        job = {"base": Path(ensure_testbed_student()), "examples": work / "examples.pkl"}
        for ranks, threads in CONFIGS:
            runs = [launch(ranks, threads, job, cfg, work) for _ in range(args.repeats)]
            train_s = statistics.median(r["train_s"] for r in runs)
            results[f"{ranks}x{threads}"] = {
                "ranks": ranks,
                "threads_per_rank": threads,
                "examples_per_s": round(len(examples) * args.epochs / train_s, 1),
                "train_s": [round(r["train_s"], 2) for r in runs],
                "wall_s": [round(r["wall_s"], 1) for r in runs],
                "steps": runs[0]["steps"],
                "final_loss": round(runs[0]["loss"], 5),
            }
    base = results["1x1"]["examples_per_s"]
    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "job": {"examples": len(examples), "epochs": args.epochs, "global_batch": args.batch_size},
                "results": results,
                "speedup_2_ranks_vs_1x1": round(results["2x1"]["examples_per_s"] / base, 2),
                "speedup_2_ranks_vs_1x2": round(
                    results["2x1"]["examples_per_s"] / results["1x2"]["examples_per_s"], 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
