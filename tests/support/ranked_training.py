"""One training job on every rank of a torchrun launch, through the distiller's own job channel:
rank 0 sends the examples and trains, the other ranks follow. Run as

    python -m torch.distributed.run --standalone --nproc-per-node N tests/support/ranked_training.py \
        BASE_DIR EXAMPLES.pkl CONFIG.json OUT_DIR [PARENT_ADAPTER_DIR]

EXAMPLES.pkl is a pickled list of ``TrainingExample``; CONFIG.json a ``DistillerConfig``. Rank 0
saves the adapter in OUT_DIR and its ``TrainOutcome`` (without the history) as OUT_DIR/outcome.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import sys
from pathlib import Path

import torch

from distillserve.config import DistillerConfig
from distillserve.distiller.distributed import DistributedTraining, JobChannel, follow, start_ranks


def main(
    base_dir: str, examples_path: str, config_path: str, out_dir: str, parent: str | None = None
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = DistillerConfig.model_validate_json(Path(config_path).read_text())
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    ranks, group = start_ranks(cfg.device)
    channel = JobChannel(group)
    if not ranks.is_main:
        follow(channel, Path(base_dir), cfg)
        return
    examples = pickle.loads(Path(examples_path).read_bytes())
    outcome = DistributedTraining(channel)(base_dir, examples, cfg, out_dir, parent_adapter=parent)
    channel.send(None)
    summary = {k: v for k, v in dataclasses.asdict(outcome).items() if k != "history"}
    (Path(out_dir) / "outcome.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:6])
