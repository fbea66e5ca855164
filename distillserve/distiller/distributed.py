"""The distiller on several processes: rank 0 is the worker, the other ranks lend it their cores.

Launched by torchrun (``distiller.ranks`` > 1 makes ``distillserve distill`` launch it). Rank 0
alone reads the teacher log (one consumer in the group), keeps the replay store, evaluates,
registers the version and commits offsets. For each run it **broadcasts the training job** (the
mixed examples and the parent adapter's files) and every rank then trains the same DDP model;
transformers' Trainer gives each rank its share of every global batch (accelerate's batch-sampler
sharding over one seeded permutation), so a step sees the same examples as one process would.

Why broadcast the job rather than let each rank fetch its shard: the training set is not the
Kafka batch. It is the batch filtered, split (held out), mixed with replayed examples from rank 0's
store and continued from the live adapter. Building it once and sending it (kilobytes to a few MB)
keeps that logic in one place and the other ranks stateless: no consumer, no registry access, no
shared disk needed.

A rank that dies breaks the collective: rank 0's training call raises, so nothing is registered
and no offset is committed (torchrun then stops the other ranks); the records are trained on again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from distillserve.config import DistillerConfig
from distillserve.distiller.examples import TrainingExample
from distillserve.distiller.ranks import Ranks, launched_ranks
from distillserve.distiller.trainer import TrainOutcome, resolve_device, train_adapter

log = logging.getLogger(__name__)

# Followers wait for rank 0's next job while it polls the log, trains and evaluates: as long as the
# deployment idles. A dead peer still fails the wait at once (its socket closes).
IDLE_WAIT = dt.timedelta(days=7)


@dataclass(frozen=True)
class TrainJob:
    """What every rank needs for one run; a parent adapter travels as its files."""

    examples: list[TrainingExample]
    parent_files: dict[str, bytes] | None = None


def start_ranks(device: str) -> tuple[Ranks, dist.ProcessGroup]:
    """Join the launcher's process group (NCCL on GPUs, gloo on CPUs) and open the gloo group
    that carries jobs, whose wait for the next job may last as long as the worker idles."""
    ranks = launched_ranks()
    backend = "nccl" if resolve_device(device).startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group(backend=backend)
    jobs = dist.new_group(backend="gloo", timeout=IDLE_WAIT)
    log.info("distiller rank %d/%d (pid %d, %s)", ranks.rank, ranks.world_size, os.getpid(), backend)
    return ranks, jobs


class JobChannel:
    """Rank 0 sends each run's job (or None: stop) to the other ranks over the jobs group."""

    def __init__(self, group: dist.ProcessGroup) -> None:
        self.group = group

    def send(self, job: TrainJob | None) -> None:
        dist.broadcast_object_list([job], src=0, group=self.group)

    def receive(self) -> TrainJob | None:
        box: list[TrainJob | None] = [None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]


def adapter_files(adapter_dir: str | Path | None) -> dict[str, bytes] | None:
    if adapter_dir is None:
        return None
    return {p.name: p.read_bytes() for p in Path(adapter_dir).iterdir() if p.is_file()}


class DistributedTraining:
    """Rank 0's ``train_adapter``: send the job, then train as one of the ranks."""

    def __init__(self, channel: JobChannel) -> None:
        self.channel = channel

    def __call__(
        self,
        base_dir: str | Path,
        examples: Sequence[TrainingExample],
        cfg: DistillerConfig,
        out_dir: str | Path,
        *,
        parent_adapter: str | Path | None = None,
        work_dir: str | Path | None = None,
    ) -> TrainOutcome:
        self.channel.send(TrainJob(list(examples), adapter_files(parent_adapter)))
        return train_adapter(
            base_dir, examples, cfg, out_dir, parent_adapter=parent_adapter, work_dir=work_dir
        )


def follow(channel: JobChannel, base_dir: Path, cfg: DistillerConfig) -> int:
    """A follower rank: train each job rank 0 sends until it says stop; the runs it took part in."""
    runs = 0
    while (job := channel.receive()) is not None:
        with tempfile.TemporaryDirectory(prefix="distill-rank-") as tmp:
            parent = _write_parent(Path(tmp), job.parent_files)
            # Only rank 0 saves the adapter; the out dir just has to be private to this rank.
            train_adapter(base_dir, job.examples, cfg, Path(tmp) / "adapter", parent_adapter=parent)
        runs += 1
        log.info("rank run %d done", runs)
    return runs


def _write_parent(tmp: Path, files: dict[str, bytes] | None) -> Path | None:
    if files is None:
        return None
    parent = tmp / "parent"
    parent.mkdir()
    for name, data in files.items():
        (parent / name).write_bytes(data)
    return parent
