"""The testbed student: tokenizer and chat template, shapes vLLM needs, pre-trained skills,
and the build cache under concurrent callers (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from distillserve.testbed.exact_match import exact_match
from distillserve.testbed.pretraining import PretrainRecipe, collate, encode_sft_example, pretrain
from distillserve.testbed.student_model import (
    FIXTURES,
    ensure_testbed_student,
    student_dir_name,
)
from distillserve.testbed.student_tokenizer import build_tokenizer
from distillserve.testbed.tasks import ALPHABET, BASE_TASKS, LEARNABLE_TASKS, sample

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pretrained() -> Path:
    return ensure_testbed_student()


@pytest.fixture(scope="module")
def loaded(pretrained: Path):
    return AutoModelForCausalLM.from_pretrained(pretrained), AutoTokenizer.from_pretrained(pretrained)


def test_vocab_size_equals_tokenizer_length(pretrained: Path) -> None:
    assert AutoConfig.from_pretrained(pretrained).vocab_size == len(AutoTokenizer.from_pretrained(pretrained))


def test_every_testbed_character_round_trips_one_token_each() -> None:
    tok = build_tokenizer()
    ids = tok(ALPHABET, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(ALPHABET) and tok.unk_token_id not in ids
    assert tok.decode(ids) == ALPHABET


def test_saved_tokenizer_loads_back_as_the_same_character_tokenizer(pretrained: Path) -> None:
    # AutoTokenizer is what transformers, peft and vLLM use; for some model types it swaps in
    # the architecture's own (byte-level) tokenizer, which would drop spaces and newlines.
    loaded, built = AutoTokenizer.from_pretrained(pretrained), build_tokenizer()
    text = "copy: a b\nc D?"
    assert loaded(text)["input_ids"] == built(text)["input_ids"]
    assert len(loaded(text)["input_ids"]) == len(text)
    assert loaded.decode(loaded(text)["input_ids"]) == text


def test_chat_template_is_chatml_with_im_end_as_eos(pretrained: Path) -> None:
    tok = AutoTokenizer.from_pretrained(pretrained)
    text = tok.apply_chat_template(
        [{"role": "system", "content": "be exact"}, {"role": "user", "content": "copy: abc"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == (
        "<|im_start|>system\nbe exact<|im_end|>\n<|im_start|>user\ncopy: abc<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.eos_token == "<|im_end|>"
    assert AutoConfig.from_pretrained(pretrained).eos_token_id == tok.eos_token_id


def test_the_shipped_fixture_matches_the_current_recipe() -> None:
    # A changed recipe without a rebuilt fixture would silently cost minutes of pre-training in CI.
    name = student_dir_name()
    assert (FIXTURES / name / "model.safetensors").is_file(), (
        f"rebuild the fixture: distillserve prepare testbed-student --out {FIXTURES / name}"
    )


def test_pretrained_student_knows_the_base_tasks_but_not_the_learnable_ones(loaded) -> None:
    model, tok = loaded
    for task in BASE_TASKS:
        assert exact_match(model, tok, sample([task], 50, seed=31337)) >= 0.9, task
    for task in LEARNABLE_TASKS:
        assert exact_match(model, tok, sample([task], 50, seed=31337)) <= 0.1, task


def test_pretraining_lowers_the_loss_on_assistant_tokens() -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer()

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            pad_token_id=tok.pad_token_id,
        )
    )
    batch = collate(
        [encode_sft_example(tok, p, a) for p, a in sample(BASE_TASKS, 32, seed=5)], tok.pad_token_id
    )
    with torch.no_grad():
        before = float(model(**batch).loss)
    stats = pretrain(
        model, tok, PretrainRecipe(examples=256, steps=30, batch_size=16, warmup_steps=5), seed=0
    )
    with torch.no_grad():
        after = float(model(**batch).loss)
    assert after < before - 0.5, (before, after, stats)
    # Only answer tokens and the closing <|im_end|> carry labels.
    ids, labels = encode_sft_example(tok, "copy: ab", "ab")
    assert [t for t in labels if t != -100] == tok("ab", add_special_tokens=False)["input_ids"] + [
        tok.eos_token_id
    ]
    assert len(ids) == len(labels)


def test_concurrent_ensure_calls_build_once(tmp_path: Path) -> None:
    env = {**os.environ, "DISTILLSERVE_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    code = (
        "from distillserve.testbed.student_model import ensure_testbed_student as e;print(e(pretrain=False))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [e.decode()[-500:] for _, e in outs]
    paths = {o.decode().strip().splitlines()[-1] for o, _ in outs}
    assert len(paths) == 1
    built = Path(paths.pop())
    assert (built / "model.safetensors").is_file() and (built / "tokenizer.json").is_file()
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if p.is_dir() and p != built]
    assert leftovers == []  # no half-built directories left behind
    AutoModelForCausalLM.from_pretrained(built)
