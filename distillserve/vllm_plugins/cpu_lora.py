"""LoRA on vLLM's CPU build through one matrix product per adapter, instead of a per-token copy.

vLLM's CPU build has no punica kernels: ``PunicaWrapperCPU`` calls its PyTorch fallback
(``vllm.lora.ops.torch_ops``), which gathers every token's adapter weights
(``weights[indices]``: a rank × hidden copy per token, per projection, per layer) and multiplies
token by token. On SmolLM2 with a rank-16 adapter that is 3.2 ms per projection pair for a
256-token prefill against 0.28 ms for the same product done once (``bench/vllm_cpu_lora_ops.py``),
and on a 2-core machine without AVX512-VNNI it took the demo's vLLM student from 12-22 to
1-8 tokens/s once an adapter was live.

These ops compute the same thing grouped by adapter: the rows of one adapter in one product, and
with one adapter in the batch (the usual case) no gather at all. A row without an adapter
(index -1) is left alone, as punica's GPU kernels do (the fallback multiplies it by the last
slot's weights). ``register`` is a vLLM general plugin (entry point ``vllm.general_plugins``),
loaded in each vLLM process; it swaps the ops into the CPU wrapper only on the CPU platform.
``DISTILLSERVE_VLLM_CPU_LORA=upstream`` keeps vLLM's own.

This module imports nothing of distillserve: it runs inside vLLM's processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

#: Environment switch: ``grouped`` (default) or ``upstream`` (vLLM's per-token ops).
SWITCH = "DISTILLSERVE_VLLM_CPU_LORA"

Rows = slice | torch.Tensor


def _groups(indices: torch.Tensor) -> list[tuple[int, Rows]]:
    """(adapter slot, its rows) for each slot in ``indices``; rows of slot -1 (no adapter) left out."""
    if indices.numel() == 0:
        return []
    first = int(indices[0])
    if bool((indices == first).all()):
        return [] if first < 0 else [(first, slice(None))]
    return [(s, (indices == s).nonzero().squeeze(1)) for s in indices.unique().tolist() if s >= 0]


def _weight(weights: torch.Tensor, slot: int, dtype: torch.dtype) -> torch.Tensor:
    w = weights[slot]
    return (w.squeeze(0) if w.dim() == 3 else w).to(dtype)


def bgmv_shrink(
    inputs: torch.Tensor,
    lora_a_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    scaling: float = 1.0,
) -> None:
    """``output[t, :rank] = scaling * inputs[t] @ A[slot(t)].T`` (rows of no adapter: zero)."""
    groups = _groups(lora_indices_tensor)
    x = inputs.to(output_tensor.dtype)
    rank = lora_a_weights.shape[-2]
    if len(groups) != 1 or not isinstance(groups[0][1], slice):
        output_tensor[:, :rank] = 0
    for slot, rows in groups:
        output_tensor[rows, :rank] = scaling * (x[rows] @ _weight(lora_a_weights, slot, x.dtype).T)


def bgmv_expand_slice(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = True,
) -> None:
    """``output[t, offset:offset+size] (+)= inputs[t] @ B[slot(t)].T``; rows of no adapter untouched."""
    x = inputs.to(output_tensor.dtype)
    for slot, rows in _groups(lora_indices_tensor):
        y = x[rows] @ _weight(lora_b_weights, slot, x.dtype).T
        width = min(y.shape[1], slice_size, output_tensor.shape[1] - slice_offset)
        target = output_tensor[rows, slice_offset : slice_offset + width]
        output_tensor[rows, slice_offset : slice_offset + width] = (
            target + y[:, :width] if add_inputs else y[:, :width]
        )


def bgmv_expand(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    add_inputs: bool = True,
) -> None:
    bgmv_expand_slice(
        inputs, lora_b_weights, output_tensor, lora_indices_tensor, 0, output_tensor.shape[1], add_inputs
    )


def _per_sequence(bgmv: Callable[..., None]) -> Callable[..., None]:
    """The prefill (sgmv) form of a bgmv op, in vLLM's signature: one slot per sequence, spread
    over its tokens (``seq_len_tensor``), then the per-token op with the remaining arguments
    (``PunicaWrapperCPU`` passes each one, so the per-token op's defaults never apply)."""

    def sgmv(
        inputs: torch.Tensor,
        weights: torch.Tensor,
        output_tensor: torch.Tensor,
        b_seq_start_loc: torch.Tensor,
        seq_len_tensor: torch.Tensor,
        lora_indices_tensor: torch.Tensor,
        batches: int,
        max_seq_length: int,
        token_nums: int,
        *rest: Any,
    ) -> None:
        bgmv(
            inputs,
            weights,
            output_tensor,
            torch.repeat_interleave(lora_indices_tensor, seq_len_tensor),
            *rest,
        )

    return sgmv


sgmv_shrink = _per_sequence(bgmv_shrink)
sgmv_expand = _per_sequence(bgmv_expand)
sgmv_expand_slice = _per_sequence(bgmv_expand_slice)


GROUPED_OPS = {
    "bgmv_shrink": bgmv_shrink,
    "bgmv_expand": bgmv_expand,
    "bgmv_expand_slice": bgmv_expand_slice,
    "sgmv_shrink": sgmv_shrink,
    "sgmv_expand": sgmv_expand,
    "sgmv_expand_slice": sgmv_expand_slice,
}


def register() -> None:
    """vLLM general plugin: the grouped ops into ``PunicaWrapperCPU``, on the CPU platform only.
    Safe to call more than once (vLLM loads plugins in every process)."""
    if os.environ.get(SWITCH, "grouped") != "grouped":
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.logger import init_logger
    from vllm.lora.punica_wrapper import punica_cpu

    for name, op in GROUPED_OPS.items():
        setattr(punica_cpu, name, op)
    # Under vLLM's logger: the line shows in the engine's own log, from the process that runs the model.
    init_logger("vllm.distillserve_cpu_lora").info(
        "distillserve: grouped CPU LoRA ops in vLLM's PunicaWrapperCPU (%s=upstream keeps vLLM's)", SWITCH
    )
