"""The embedded engine on the real (tiny, pre-trained) testbed student: batching, sampling, stop strings,
logprobs, streaming, cancellation and LoRA adapters (real PEFT adapters, loaded by peft)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from distillserve.engine.engine import EmbeddedEngine, TokenEvent
from distillserve.engine.sampling import SamplingParams
from distillserve.protocol.errors import AdapterError, ModelNotFound
from distillserve.testbed.student_model import build_testbed_student, ensure_testbed_student
from tests.support.lora_adapters import make_lora_adapter

PROMPTS = ["copy: hello", "upper: abc", "first: ab cd ef", "reverse: xyz", "sort: dcba", "copy: q"]
GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return ensure_testbed_student()


@pytest.fixture(scope="module")
def engine(model_dir: Path):
    eng = EmbeddedEngine(model_dir, max_batch_size=4)
    eng.start()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def adapters(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    other_base = build_testbed_student(root / "other-base", pretrain=False, seed=1)
    # A base of another shape: same tokenizer, twice the hidden size -> its adapter cannot fit.
    import json as _json

    cfg = _json.loads((other_base / "config.json").read_text())
    wrong = root / "wrong-base"
    wrong.mkdir()
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(other_base)
    config.hidden_size, config.intermediate_size = cfg["hidden_size"] * 2, cfg["intermediate_size"] * 2
    config.head_dim = config.hidden_size // config.num_attention_heads
    AutoModelForCausalLM.from_config(config).save_pretrained(wrong)
    not_peft = root / "not-peft"
    not_peft.mkdir()
    (not_peft / "weights.txt").write_text("not an adapter")
    not_lora = root / "not-lora"
    not_lora.mkdir()
    (not_lora / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    return {
        "a": make_lora_adapter(model_dir, root / "a", seed=1),
        "b": make_lora_adapter(model_dir, root / "b", seed=2),
        "wrong_base": make_lora_adapter(wrong, root / "wrong-adapter", seed=3),
        "not_peft": not_peft,
        "not_lora": not_lora,
        "missing": root / "does-not-exist",
    }


def ids(engine: EmbeddedEngine, prompt: str) -> list[int]:
    enc = engine.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_dict=True
    )
    return list(enc["input_ids"])


async def run(
    engine: EmbeddedEngine, prompt: str, params: SamplingParams = GREEDY, adapter: str | None = None
) -> tuple[str, list[TokenEvent]]:
    events = [e async for e in engine.generate(ids(engine, prompt), params, adapter)]
    return "".join(e.text for e in events), events


async def test_batched_greedy_equals_one_at_a_time(engine: EmbeddedEngine) -> None:
    alone = [(await run(engine, p))[0] for p in PROMPTS]
    together = await asyncio.gather(*(run(engine, p) for p in PROMPTS))
    assert [t for t, _ in together] == alone
    assert len(set(alone)) > 1  # the prompts really produce different outputs


async def test_max_tokens_gives_finish_reason_length(engine: EmbeddedEngine) -> None:
    text, events = await run(engine, "copy: abcdefgh", SamplingParams(temperature=0.0, max_tokens=3))
    assert text == "abc"
    assert events[-1].finish_reason == "length" and events[-1].completion_tokens == 3 == len(events)
    assert events[-1].prompt_tokens == len(ids(engine, "copy: abcdefgh"))
    text, events = await run(engine, "copy: abc", SamplingParams(temperature=0.0, max_tokens=20))
    assert text == "abc" and events[-1].finish_reason == "stop" and events[-1].eos


async def test_stop_string_cuts_the_text_and_never_leaks(engine: EmbeddedEngine) -> None:
    full, _ = await run(engine, "copy: helloworld", SamplingParams(temperature=0.0, max_tokens=12))
    assert len(full) >= 6, full
    stop = full[3:5]
    cut = full[: full.find(stop)]
    text, events = await run(
        engine, "copy: hello", SamplingParams(temperature=0.0, max_tokens=12, stop=(stop,))
    )
    assert text == cut
    assert events[-1].finish_reason == "stop"
    assert stop not in "".join(e.text for e in events)


async def test_logprobs_match_the_greedy_choice(engine: EmbeddedEngine) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=8, logprobs=True, top_logprobs=3)
    _, events = await run(engine, "upper: abc", params)
    for e in events:
        assert e.logprob is not None and e.logprob <= 0.0
        assert len(e.top_logprobs) == 3
        best_token, best_lp = e.top_logprobs[0]
        assert best_token == e.token and math.isclose(best_lp, e.logprob, abs_tol=1e-5)
        assert [lp for _, lp in e.top_logprobs] == sorted((lp for _, lp in e.top_logprobs), reverse=True)


async def test_seeded_sampling_is_reproducible(engine: EmbeddedEngine) -> None:
    # An unseen task: the student is unsure, so sampling really varies with the seed.
    prompt = "reverse: hellothere"
    params = SamplingParams(temperature=1.5, top_p=0.95, seed=7, max_tokens=10, ignore_eos=True)
    first, _ = await run(engine, prompt, params)
    second, _ = await asyncio.gather(run(engine, prompt, params), run(engine, "sort: abc", GREEDY))
    assert first == second[0]
    others = {
        (await run(engine, prompt, SamplingParams(temperature=1.5, seed=s, max_tokens=10, ignore_eos=True)))[
            0
        ]
        for s in (8, 9, 10)
    }
    assert others - {first}


async def test_streaming_comes_token_by_token_in_order(engine: EmbeddedEngine) -> None:
    full, _ = await run(engine, "copy: garden")
    assert full == "garden"
    seen: list[str] = []
    async for ev in engine.generate(ids(engine, "copy: garden"), GREEDY):
        seen.append(ev.text)
    assert "".join(seen) == full
    assert len([s for s in seen if s]) > 1  # more than one chunk: it really streamed


async def test_cancelled_request_frees_its_slot(model_dir: Path) -> None:
    eng = EmbeddedEngine(model_dir, max_batch_size=1)
    eng.start()
    try:
        long = SamplingParams(temperature=0.0, max_tokens=900, ignore_eos=True)
        stream = eng.generate(ids(eng, "copy: abc"), long)
        await stream.__anext__()
        assert eng.num_running == 1
        await stream.aclose()  # what the gateway does when the client disconnects
        # With one slot, this only finishes if the cancelled request left the batch.
        _text, events = await asyncio.wait_for(run(eng, "copy: abc", GREEDY), timeout=120)
        assert events[-1].finish_reason in ("stop", "length")
        for _ in range(100):
            if eng.num_running == 0:
                break
            await asyncio.sleep(0.05)
        assert eng.num_running == 0 and eng.num_waiting == 0
    finally:
        eng.close()


async def test_adapters_load_switch_mix_and_unload(engine: EmbeddedEngine, adapters: dict[str, Path]) -> None:
    prompt = "copy: hello"
    base, _ = await run(engine, prompt)
    await asyncio.to_thread(engine.load_adapter, "a", str(adapters["a"]))
    await asyncio.to_thread(engine.load_adapter, "b", str(adapters["b"]))
    try:
        on_a, _ = await run(engine, prompt, adapter="a")
        on_b, _ = await run(engine, prompt, adapter="b")
        assert len({base, on_a, on_b}) == 3, (base, on_a, on_b)
        # One batch, three different models per row: each row gets its own.
        mixed = await asyncio.gather(
            run(engine, prompt, adapter="a"), run(engine, prompt), run(engine, prompt, adapter="b")
        )
        assert [t for t, _ in mixed] == [on_a, base, on_b]
        assert (await run(engine, prompt))[0] == base
    finally:
        await engine.unload_adapter("a")
    assert engine.adapters is not None and engine.adapters.names == ["b"]
    with pytest.raises(ModelNotFound):
        await run(engine, prompt, adapter="a")
    assert (await run(engine, prompt, adapter="b"))[0] == on_b
    await engine.unload_adapter("b")
    assert (await run(engine, prompt))[0] == base  # back to the plain base model


@pytest.mark.parametrize("bad", ["missing", "not_peft", "not_lora", "wrong_base", "name_in_use"])
async def test_bad_adapters_are_refused_and_the_live_one_keeps_serving(
    engine: EmbeddedEngine, adapters: dict[str, Path], bad: str
) -> None:
    await asyncio.to_thread(engine.load_adapter, "live", str(adapters["a"]))
    try:
        before, _ = await run(engine, "copy: hello", adapter="live")
        name, path = ("live", adapters["b"]) if bad == "name_in_use" else ("candidate", adapters[bad])
        with pytest.raises(AdapterError) as err:
            await asyncio.to_thread(engine.load_adapter, name, str(path))
        assert err.value.message
        assert engine.adapters is not None and engine.adapters.names == ["live"]
        after, _ = await run(engine, "copy: hello", adapter="live")
        assert after == before
    finally:
        await engine.unload_adapter("live")
