"""The distiller with a real student (SmolLM2-135M-Instruct, shipped in a wheel) uses no testbed data.

Two runs on ordinary chat traffic (tests/support/chat_records.py), training a few steps on CPU.
The first run freezes a golden slice of its own batch as the regression set (in the registry,
never trained on); the second replays the first run's teacher answers. Both cards say so, and a
spy on the real trainer and evaluator sees no testbed task in any training or evaluation item.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

import distillserve.distiller.worker as worker_module
from distillserve.adapters.promotion import NoActivator, Promoter
from distillserve.adapters.registry import AdapterRegistry
from distillserve.config import DistillerConfig
from distillserve.distiller.examples import TrainingExample
from distillserve.distiller.worker import Distiller, resolve_base_model
from distillserve.testbed.tasks import parse_prompt
from tests.support.batch_source import BatchSource
from tests.support.chat_records import chat_records, more_chat_records

CFG = DistillerConfig(
    lora={"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    optim={"max_steps": 2, "batch_size": 4},
    eval={"regression_size": 4, "holdout_fraction": 0.25, "max_new_tokens": 4},
    trigger={"records": 16, "min_records": 4},
    replay={"ratio": 0.5},
    gate={"promote_margin": -1.0, "max_regression": 1.0},  # promote whatever: run 2 continues run 1
    promotion={"via": "none"},
    device="cpu",
    torch_threads=1,
)


class Spy:
    """Records what the real ``train_adapter`` and ``compare`` were given, and calls them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trained: list[list[TrainingExample]] = []
        self.evaluated: list[dict[str, list[TrainingExample]]] = []
        train, compare = worker_module.train_adapter, worker_module.compare

        def spy_train(base_dir: Any, examples: Sequence[TrainingExample], *a: Any, **kw: Any) -> Any:
            self.trained.append(list(examples))
            return train(base_dir, examples, *a, **kw)

        def spy_compare(evaluator: Any, candidate: Any, live: Any, sets: Any) -> Any:
            self.evaluated.append({k: list(v) for k, v in sets.items()})
            return compare(evaluator, candidate, live, sets)

        self.train = spy_train  # the worker's ``train=`` seam (the trainer of one process or of several)
        monkeypatch.setattr(worker_module, "compare", spy_compare)


def _prompts(examples: Sequence[TrainingExample]) -> list[str]:
    return [m["content"] for e in examples for m in e.messages if m["role"] == "user"]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return resolve_base_model("smollm2")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """As ``distiller.torch_threads: 1`` does in the worker process: no OpenMP spinning on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_smollm2_student_trains_and_is_gated_on_its_own_traffic_only(
    smollm2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    spy = Spy(monkeypatch)
    registry = AdapterRegistry(str(tmp_path / "registry"), "smollm2")
    worker = Distiller(
        CFG,
        base_model="smollm2",
        base_dir=smollm2,
        registry=registry,
        promoter=Promoter(registry, NoActivator()),
        state_dir=tmp_path / "state",
        train=spy.train,
    )
    first, second = (
        BatchSource([r.to_json() for r in chat_records()], 0),
        BatchSource([r.to_json() for r in more_chat_records()], 16),
    )
    one = worker.run_once(first.poll(16, 0), first)
    two = worker.run_once(second.poll(16, 0), second)
    assert (one.outcome, two.outcome) == ("promoted", "promoted") and first.committed == list(range(16))

    # Run 1: the regression set is a golden slice of its own batch, frozen in the registry.
    card1, card2 = registry.card("v1"), registry.card("v2")
    golden = card1.data_sources["regression_set"]
    assert golden["source"] == "golden" and golden["version"] == "v1" and golden["n"] == 4
    assert golden["complete"] and len(golden["sha256"]) == 64
    assert card1.records["golden"] == {"reserved": 4, "excluded": 0}
    assert card1.data_sources["replay"] == {"source": "traffic", "pool": 0, "past": 0, "base": 0}
    # Run 2: the same frozen slice; the replayed examples are run 1's teacher answers.
    assert card2.data_sources["regression_set"] == golden
    replay = card2.data_sources["replay"]
    assert (
        replay["source"] == "traffic"
        and replay["past"] == card2.records["replayed"] > 0
        and replay["base"] == 0
    )
    # The budget is SmolLM2's context length; nothing was too long, nothing mis-templated.
    assert card1.training["max_seq_len"] == 8192 and card1.records["too_long"] == {}
    assert "template_mismatch" not in card1.records["encode"]

    # No testbed task anywhere in what was trained on or evaluated.
    trained = [p for batch in spy.trained for p in _prompts(batch)]
    evaluated = [p for sets in spy.evaluated for items in sets.values() for p in _prompts(items)]
    assert len(trained) == card1.records["train_new"] + card2.records["train_new"] + card2.records["replayed"]
    assert evaluated and not [p for p in trained + evaluated if parse_prompt(p) is not None]
    golden_prompts = set(_prompts(spy.evaluated[0]["regression"]))
    assert len(golden_prompts) == 4 and not golden_prompts & set(trained)  # held out from training
    assert all(_prompts(s["regression"]) == _prompts(spy.evaluated[0]["regression"]) for s in spy.evaluated)
