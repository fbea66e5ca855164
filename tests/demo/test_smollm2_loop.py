"""The learning loop on the real SmolLM2-135M-Instruct, shortened for CI: the testbed teacher's
R1-style answers to a learnable family, logged as teacher-log records, become one LoRA adapter
trained by the distiller's own worker, gated against the bare base model on held-out prompts
(graded by the family's own grader) and promoted.

The gateway and broker half of the loop is the slow smoke test's (test_demo_smollm2.py); this test
is the part that shows learning, lean enough for CI: one family (``field_extraction``, learnable
by ``bench/smollm2_lora_probe.py``), the answer without its trace (``learn_reasoning: false``:
short targets, short greedy answers), one batch, one adapter.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from distillserve.adapters.promotion import NoActivator, Promoter
from distillserve.adapters.registry import AdapterRegistry
from distillserve.backends.testbed_teacher import TestbedTeacher
from distillserve.config import DistillerConfig
from distillserve.config.grading import GradingConfig, GradingRule
from distillserve.distiller.worker import Distiller, resolve_base_model
from distillserve.grading.factory import build_selection
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.testbed import language
from tests.support.batch_source import BatchSource

TASK = "field_extraction"
RECORDS = 64
# The traffic's seed. CI runs 11; the margin below was measured over seeds 11-13 by setting
# DISTILLSERVE_LOOP_SEED (bench/RESULTS.md, "CI loop test").
SEED = int(os.environ.get("DISTILLSERVE_LOOP_SEED", "11"))
# Sized by bench/smollm2_lora_probe.py (bench/RESULTS.md, "LoRA probe"): the default gate; LoRA at
# the usual pretrained-model rate; answers only (no trace) to keep training and eval short.
CFG = DistillerConfig(
    lora={"rank": 8, "alpha": 16},
    optim={"learning_rate": 1e-3, "lr_scheduler": "cosine", "epochs": 2, "batch_size": 8, "max_seq_len": 384},
    kd={"learn_reasoning": False},
    eval={"regression_size": 8, "holdout_fraction": 0.25, "max_new_tokens": 64, "batch_size": 16},
    trigger={"records": RECORDS, "min_records": 16},
    promotion={"via": "none"},
    device="cpu",
    torch_threads=1,
    seed=0,
)


async def _teacher_records(n: int, seed: int) -> list[bytes]:
    """What the gateway logs when the testbed teacher (R1's ``<think>`` form) answers ``n`` prompts."""
    teacher = TestbedTeacher(reasoning="think_tags")
    out = []
    for k, item in enumerate(language.sample([TASK], n, seed)):
        request = ChatCompletionRequest.model_validate(
            {
                "model": "teacher",
                "messages": [{"role": "user", "content": item.prompt}],
                "metadata": item.metadata,
            }
        )
        body = await teacher.chat(request)
        choice = body["choices"][0]
        record = TeacherLogRecord(
            request_id=f"r{k}",
            key=f"conv-{k}",
            messages=[{"role": "user", "content": item.prompt}],
            teacher_model="teacher",
            teacher_backend="testbed",
            response_text=choice["message"]["content"],
            finish_reason=choice["finish_reason"],
            task=item.task,
        )
        out.append(record.to_json())
    return out


@pytest.fixture
def one_thread() -> Iterator[None]:
    """As ``distiller.torch_threads: 1`` does in the worker process: no OpenMP spinning on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smollm2_learns_a_family_from_the_teachers_answers_and_is_promoted(
    tmp_path: Path, one_thread: None
) -> None:
    registry = AdapterRegistry(str(tmp_path / "registry"), "smollm2")
    rules = [GradingRule(task=f.task, grader=f.grader) for f in language.FAMILIES.values()]
    worker = Distiller(
        CFG,
        base_model="smollm2",
        base_dir=resolve_base_model("smollm2"),
        registry=registry,
        promoter=Promoter(registry, NoActivator()),
        state_dir=tmp_path / "state",
        graders=build_selection(GradingConfig(default="exact", rules=rules)),
    )
    source = BatchSource(asyncio.run(_teacher_records(RECORDS, seed=SEED)))

    outcome = worker.run_once(source.poll(RECORDS, 0), source)

    card = registry.card("v1")
    held = card.eval
    before, after = held["live"]["heldout"], held["candidate"]["heldout"]
    print(
        f"seed {SEED}: held-out before -> after:",
        before,
        after,
        "regression:",
        held["live"]["regression"],
        held["candidate"]["regression"],
    )
    assert before["grader"] == after["grader"] == "json", "graded by the family's grader, by metadata.task"
    assert after["n"] >= 10
    # Measured margins: see bench/RESULTS.md ("LoRA probe", "CI loop test").
    assert after["score"] - before["score"] >= 0.3, (before, after)
    assert outcome.outcome == "promoted" and registry.live() == "v1"
    assert source.committed == list(range(RECORDS))
