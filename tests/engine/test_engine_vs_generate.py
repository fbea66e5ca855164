"""The engine's greedy output equals transformers' ``model.generate`` for the same prompt, whether a
request runs alone or is prefilled and decoded in one left-padded batch with others (the engine
batches prefill and switches peft's adapter path per batch for speed; neither may change an answer)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from distillserve.engine.engine import EmbeddedEngine
from distillserve.engine.sampling import SamplingParams
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.lora_adapters import make_lora_adapter

# Prompts of different lengths, so a batch of them is really left-padded.
PROMPTS = ["copy: hello", "upper: abcdefgh", "first: ab cd ef", "reverse: xyz", "sort: dcba", "copy: q"]
MAX_NEW = 10


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return ensure_testbed_student()


@pytest.fixture(scope="module")
def engine(model_dir: Path):
    eng = EmbeddedEngine(model_dir, max_batch_size=8, dtype="float32", device="cpu")
    eng.start()
    yield eng
    eng.close()


def prompt_ids(engine: EmbeddedEngine, prompt: str) -> list[int]:
    enc = engine.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_dict=True
    )
    return list(enc["input_ids"])


def reference(model: torch.nn.Module, ids: list[int], eos: frozenset[int]) -> list[int]:
    """``model.generate``'s greedy continuation of one prompt, up to (not including) end-of-sequence."""
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]),
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=MAX_NEW,
        )
    new = out[0, len(ids) :].tolist()
    cut = next((i for i, t in enumerate(new) if t in eos), len(new))
    return new[:cut]


async def engine_tokens(engine: EmbeddedEngine, ids: list[int], adapter: str | None = None) -> list[int]:
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW)
    return [e.token_id async for e in engine.generate(ids, params, adapter) if not e.eos]


async def test_greedy_equals_generate_alone_and_batched(engine: EmbeddedEngine) -> None:
    assert engine.loaded is not None
    model, eos = engine.loaded.model, engine.loaded.eos_ids
    all_ids = [prompt_ids(engine, p) for p in PROMPTS]
    assert len({len(i) for i in all_ids}) > 1  # the batch below is padded
    expected = [reference(model, i, eos) for i in all_ids]
    assert len({tuple(e) for e in expected}) > 1
    assert [await engine_tokens(engine, i) for i in all_ids] == expected
    assert list(await asyncio.gather(*(engine_tokens(engine, i) for i in all_ids))) == expected


async def test_one_adapter_for_all_rows_equals_it_alone_and_in_a_mix(
    engine: EmbeddedEngine, model_dir: Path, tmp_path: Path
) -> None:
    adapter = make_lora_adapter(model_dir, tmp_path / "a", seed=1)
    all_ids = [prompt_ids(engine, p) for p in PROMPTS[:4]]
    base = [await engine_tokens(engine, i) for i in all_ids]
    await asyncio.to_thread(engine.load_adapter, "a", str(adapter))
    try:
        alone = [await engine_tokens(engine, i, "a") for i in all_ids]
        assert alone != base
        # Every row on "a" (peft's plain path), then rows alternating base / "a" (the mixed path).
        assert list(await asyncio.gather(*(engine_tokens(engine, i, "a") for i in all_ids))) == alone
        mixed = await asyncio.gather(
            *(engine_tokens(engine, i, "a" if n % 2 else None) for n, i in enumerate(all_ids))
        )
        assert list(mixed) == [alone[n] if n % 2 else base[n] for n in range(len(all_ids))]
        # All-base rows with an adapter loaded: the adapter must be switched off, not applied.
        assert list(await asyncio.gather(*(engine_tokens(engine, i) for i in all_ids))) == base
    finally:
        await engine.unload_adapter("a")
    assert [await engine_tokens(engine, i) for i in all_ids] == base


def test_prefill_groups_keep_order_and_the_token_budget() -> None:
    from types import SimpleNamespace

    from distillserve.engine.engine import _prefill_groups

    reqs = [SimpleNamespace(prompt_ids=[0] * n) for n in (10, 30, 20, 100, 5)]
    groups = _prefill_groups(reqs, budget=100)  # type: ignore[arg-type]
    assert [[len(r.prompt_ids) for r in g] for g in groups] == [[10, 30, 20], [100], [5]]
    assert _prefill_groups(reqs, budget=10_000) == [reqs]  # type: ignore[arg-type]
