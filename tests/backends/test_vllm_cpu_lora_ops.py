"""The grouped CPU LoRA ops against vLLM's own PyTorch fallback (``vllm.lora.ops.torch_ops``),
on the shapes vLLM hands them for SmolLM2 (hidden 576, rank 8 and 16, two adapter slots): the
same numbers for every row that has an adapter, with one adapter in the batch or two mixed, in
the decode (bgmv) and prefill (sgmv) forms. A row without one (slot -1) is left as it was, as
punica's GPU kernels leave it. The real vLLM serving adapters through these ops:
``tests/backends/test_vllm.py``."""

from __future__ import annotations

import pytest
import torch
from vllm.lora.ops.torch_ops import lora_ops as upstream

from distillserve.vllm_plugins import cpu_lora

HIDDEN, SLOTS = 576, 2


def _weights(rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(SLOTS, 1, rank, HIDDEN, generator=g, dtype=torch.float32).to(torch.bfloat16) * 0.05
    b = torch.randn(SLOTS, 1, HIDDEN, rank, generator=g, dtype=torch.float32).to(torch.bfloat16) * 0.05
    return a, b


def _close(x: torch.Tensor, y: torch.Tensor) -> None:
    torch.testing.assert_close(x.float(), y.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("rank", [8, 16])
@pytest.mark.parametrize("slots", [[0] * 7, [1] * 7, [0, 1, 1, 0, 1, 0, 0]])
def test_shrink_then_expand_matches_vllms_ops(rank: int, slots: list[int]) -> None:
    a, b = _weights(rank, seed=rank)
    x = torch.randn(len(slots), HIDDEN, dtype=torch.bfloat16)
    idx = torch.tensor(slots)
    ours_mid, ref_mid = torch.full((len(slots), rank), 9.0), torch.full((len(slots), rank), 9.0)
    cpu_lora.bgmv_shrink(x, a, ours_mid, idx, 0.5)
    upstream.bgmv_shrink(x, a, ref_mid, idx, 0.5)
    _close(ours_mid, ref_mid)
    base = torch.randn(len(slots), HIDDEN, dtype=torch.bfloat16)
    for add in (True, False):
        ours, ref = base.clone(), base.clone()
        cpu_lora.bgmv_expand(ref_mid, b, ours, idx, add)
        upstream.bgmv_expand(ref_mid, b, ref, idx, add)
        _close(ours, ref)


def test_expand_slice_writes_only_its_slice() -> None:
    _, b = _weights(8, seed=3)
    mid = torch.randn(5, 8)
    idx = torch.tensor([1, 1, 0, 1, 0])
    ours, ref = (
        torch.zeros(5, 3 * HIDDEN, dtype=torch.bfloat16),
        torch.zeros(5, 3 * HIDDEN, dtype=torch.bfloat16),
    )
    cpu_lora.bgmv_expand_slice(mid, b, ours, idx, HIDDEN, HIDDEN, True)
    upstream.bgmv_expand_slice(mid, b, ref, idx, HIDDEN, HIDDEN, True)
    _close(ours, ref)
    assert ours[:, :HIDDEN].abs().sum() == 0 and ours[:, 2 * HIDDEN :].abs().sum() == 0
    assert ours[:, HIDDEN : 2 * HIDDEN].abs().sum() > 0


def test_prefill_form_explodes_per_sequence_like_vllms() -> None:
    """sgmv: three sequences of 4, 2 and 3 tokens on slots 1, 0, 1."""
    a, b = _weights(16, seed=5)
    seq_lens, seq_slots = torch.tensor([4, 2, 3]), torch.tensor([1, 0, 1])
    starts = torch.tensor([0, 4, 6])
    x = torch.randn(9, HIDDEN, dtype=torch.bfloat16)
    meta = (starts, seq_lens, seq_slots, 3, 4, 9)
    ours_mid, ref_mid = torch.zeros(9, 16), torch.zeros(9, 16)
    cpu_lora.sgmv_shrink(x, a, ours_mid, *meta, 1.0)
    upstream.sgmv_shrink(x, a, ref_mid, *meta, 1.0)
    _close(ours_mid, ref_mid)
    ours, ref = torch.zeros(9, HIDDEN, dtype=torch.bfloat16), torch.zeros(9, HIDDEN, dtype=torch.bfloat16)
    cpu_lora.sgmv_expand(ref_mid, b, ours, *meta, True)
    upstream.sgmv_expand(ref_mid, b, ref, *meta, True)
    _close(ours, ref)


def test_rows_without_an_adapter_are_left_alone() -> None:
    a, b = _weights(8, seed=7)
    x = torch.randn(4, HIDDEN, dtype=torch.bfloat16)
    idx = torch.tensor([-1, 0, -1, 0])
    mid = torch.full((4, 8), 9.0)
    cpu_lora.bgmv_shrink(x, a, mid, idx, 1.0)
    assert mid[[0, 2]].abs().sum() == 0, "no adapter: nothing to add"
    ref = torch.zeros(4, 8)
    upstream.bgmv_shrink(x[[1, 3]], a, ref[:2], torch.tensor([0, 0]), 1.0)
    _close(mid[[1, 3]], ref[:2])
    out = torch.ones(4, HIDDEN, dtype=torch.bfloat16)
    cpu_lora.bgmv_expand(torch.ones(4, 8), b, out, idx, False)
    assert bool((out[[0, 2]] == 1).all()), "rows of no adapter keep their base output"
    empty = torch.zeros(0, HIDDEN, dtype=torch.bfloat16)
    cpu_lora.bgmv_expand(torch.zeros(0, 8), b, empty, torch.zeros(0, dtype=torch.long), True)
    assert empty.shape == (0, HIDDEN), "an empty batch is a no-op"
    all_base = torch.ones(3, HIDDEN, dtype=torch.bfloat16)
    cpu_lora.bgmv_expand(torch.ones(3, 8), b, all_base, torch.tensor([-1, -1, -1]), True)
    assert bool((all_base == 1).all())


def test_plugin_swaps_the_ops_into_vllms_cpu_wrapper_unless_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vllm.lora.punica_wrapper import punica_cpu

    for name in cpu_lora.GROUPED_OPS:
        monkeypatch.setattr(punica_cpu, name, getattr(upstream, name))
    monkeypatch.setenv(cpu_lora.SWITCH, "upstream")
    cpu_lora.register()
    assert punica_cpu.bgmv_shrink is upstream.bgmv_shrink
    monkeypatch.delenv(cpu_lora.SWITCH)
    cpu_lora.register()
    assert all(getattr(punica_cpu, n) is op for n, op in cpu_lora.GROUPED_OPS.items())


def test_plugin_is_declared_to_vllm() -> None:
    """The entry point vLLM's ``load_general_plugins`` reads, in the installed package's metadata."""
    from importlib.metadata import entry_points

    [ep] = [e for e in entry_points(group="vllm.general_plugins") if e.name == "distillserve_cpu_lora"]
    assert ep.load() is cpu_lora.register
