"""The LoRA trainer on a tiny real model: it learns, it is deterministic, it continues a parent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distillserve.config import DistillerConfig
from distillserve.distiller.examples import build_examples
from distillserve.distiller.trainer import train_adapter
from tests.support.teacher_records import teacher_records
from tests.support.tiny_student import build_tiny_student


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def examples():
    ex, _ = build_examples(teacher_records(["reverse"], 32, seed=31, top_logprobs=1), learn_reasoning=False)
    return ex


CFG = DistillerConfig(
    lora={"rank": 4, "alpha": 8}, optim={"epochs": 4, "batch_size": 8, "learning_rate": 1e-2}, seed=7
)
ONE_EPOCH = CFG.model_copy(update={"optim": CFG.optim.model_copy(update={"epochs": 1})})


def _weights(d: Path) -> dict[str, torch.Tensor]:
    return load_file(str(d / "adapter_model.safetensors"))


def test_training_learns_and_is_deterministic(base: Path, examples, tmp_path: Path) -> None:
    a = train_adapter(base, examples, CFG, tmp_path / "a")
    b = train_adapter(base, examples, CFG, tmp_path / "b")
    assert a.steps == b.steps == 16 and a.examples == 32
    assert a.losses["loss"] < a.losses["first"]  # it learns
    assert "kl" in a.losses  # the records carried teacher top-k: token-level KD was used
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # bit-identical
    other = train_adapter(base, examples, CFG.model_copy(update={"seed": 8}), tmp_path / "c")
    assert other.steps == a.steps
    wc = _weights(tmp_path / "c")
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_continuing_a_parent_adapter(base: Path, examples, tmp_path: Path) -> None:
    train_adapter(base, examples, CFG, tmp_path / "parent")
    child = train_adapter(
        base,
        examples,
        ONE_EPOCH,
        tmp_path / "child",
        parent_adapter=tmp_path / "parent",
    )
    fresh = train_adapter(base, examples, ONE_EPOCH, tmp_path / "fresh")
    # The child starts where the parent ended, so its first loss is well below a fresh start's.
    assert child.history[0]["loss"] < fresh.history[0]["loss"]


def test_nothing_to_train_is_an_error(base: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no example could be encoded"):
        train_adapter(base, [], CFG, tmp_path / "x")
