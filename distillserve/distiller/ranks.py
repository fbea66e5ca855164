"""Where this process stands among the distiller's training ranks (torchrun / accelerate launch).

One process (no launcher, or a launcher with one rank) is rank 0 of 1: every helper below is then
a no-op, so the trainer reads the same with and without data parallelism.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that reads the teacher log, registers versions and commits offsets."""
        return self.rank == 0


def launched_ranks() -> Ranks:
    """What torchrun (or ``accelerate launch``) put in the environment; rank 0 of 1 without one."""
    return Ranks(
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def current_ranks() -> Ranks:
    """The ranks of the initialised process group, else of the environment."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), launched_ranks().local_rank)
    return launched_ranks()


def per_rank_batch(global_batch: int, world_size: int) -> int:
    """``optim.batch_size`` is the global batch: the number of ranks changes throughput, not what
    is learned (each optimizer step sees the same examples as one process would)."""
    if global_batch % world_size:
        raise ValueError(
            f"distiller.optim.batch_size={global_batch} must be a multiple of distiller.ranks={world_size}"
        )
    return global_batch // world_size


def rank_device(device: str, ranks: Ranks) -> str:
    """One GPU per local rank (``cuda`` → ``cuda:<local_rank>``); CPU ranks share the host."""
    if device == "cuda" and ranks.world_size > 1:
        return f"cuda:{ranks.local_rank}"
    return device


def token_share(local_tokens: int) -> float:
    """This rank's weight for a global token mean: DDP averages the ranks' gradients, so a rank whose
    loss is the mean over its ``n`` of the step's ``N`` tokens scales it by ``n * world / N``; the
    average is then the gradient of the mean over all ``N``, as one process computes it. 1.0 alone."""
    ranks = current_ranks()
    if ranks.world_size == 1:
        return 1.0
    total = torch.tensor([local_tokens], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return local_tokens * ranks.world_size / float(total.item()) if total.item() else 1.0


def mean_over_ranks(history: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    """Each rank logs the loss of its share of a step; the step's loss is their mean (the same
    mean DDP takes of the gradients). Every rank ends with the same history."""
    ranks = current_ranks()
    if ranks.world_size == 1 or not history:
        return list(history)
    keys = sorted({k for h in history for k in h})
    rows = [[h.get(k, float("nan")) for k in keys] for h in history]
    table = torch.tensor(rows, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(table)
    table = (table / ranks.world_size).cpu()
    return [
        {k: float(v) for k, v in zip(keys, row, strict=True) if k in h}
        for h, row in zip(history, table, strict=True)
    ]


def _collective_device() -> str:
    return "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
