"""The running batch's KV cache: one left-padded ``DynamicCache`` that rows join and leave.

Iteration-level batching: newly admitted requests are prefilled together (left-padded),
then their cache is merged into the running batch (both sides left-padded to the same
length) and they decode with the others from the next step on. Finished or cancelled
rows are dropped with ``keep``; columns that became padding for every row are trimmed,
so a long request that left does not keep costing attention over its old length.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache


def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Pad dim -2 (sequence) of a [batch, heads, seq, dim] tensor on the left with zeros."""
    missing = width - t.shape[-2]
    if missing == 0:
        return t
    pad = t.new_zeros((*t.shape[:-2], missing, t.shape[-1]))
    return torch.cat([pad, t], dim=-2)


class BatchCache:
    """KV cache and attention mask ([batch, seq], 1 = real token) of the running rows."""

    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return 0 if self.mask is None else self.mask.shape[0]

    def add(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        """Append prefilled rows (``cache`` with its [rows, seq] ``mask``) after the running rows."""
        if self.cache is None or self.mask is None:
            self.cache, self.mask = cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        merged = [
            (
                torch.cat([_left_pad(k, width), _left_pad(nk, width)], dim=0),
                torch.cat([_left_pad(v, width), _left_pad(nv, width)], dim=0),
            )
            for (k, v), (nk, nv) in zip(_layers(self.cache), _layers(cache), strict=True)
        ]
        pad = lambda m: torch.cat([m.new_zeros((m.shape[0], width - m.shape[1])), m], dim=1)  # noqa: E731
        self.mask = torch.cat([pad(self.mask), pad(mask)], dim=0)
        self.cache = DynamicCache(ddp_cache_data=merged)

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in this order) and trim all-padding columns on the left."""
        if not rows:
            self.cache, self.mask = None, None
            return
        assert self.cache is not None and self.mask is not None
        index = torch.tensor(rows, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        start = int((mask.sum(0) > 0).nonzero()[0])
        self.mask = mask[:, start:]
        self.cache = DynamicCache(
            ddp_cache_data=[
                (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
                for k, v in _layers(self.cache)
            ]
        )

    def grow(self) -> None:
        """The model appended one token per row to ``cache``; extend the mask to match."""
        assert self.mask is not None
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
