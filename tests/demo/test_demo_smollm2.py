"""``distillserve demo --student smollm2``, shortened to a smoke run: the real SmolLM2-135M-Instruct
(embedded engine, its own tokenizer and chat template) as the student, the testbed teacher
answering the natural-language workload in R1's form, SDK traffic through the gateway, teacher
answers logged to the broker, and the distiller training one LoRA adapter on them with tiny
settings. It checks that the loop turns once, not that the student learns (too few steps)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from distillserve.demo.run import DemoOptions, run_demo
from distillserve.testbed import language

pytestmark = pytest.mark.slow

# Tiny on purpose: one short training run on 2 shared cores, an eval of a few short answers.
TINY_DISTILLER = {
    "trigger": {"records": 24, "seconds": 20, "min_records": 12},
    "optim": {"epochs": 1, "max_steps": 3, "batch_size": 4, "max_seq_len": 256},
    "eval": {"regression_size": 4, "max_new_tokens": 32, "batch_size": 8, "holdout_fraction": 0.2},
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_smollm2_demo_serves_logs_and_trains_an_adapter(tmp_path: Path) -> None:
    out = tmp_path / "report"
    opts = DemoOptions(
        out=out,
        student="smollm2",
        duration_s=40.0,
        rate_per_s=1.5,
        concurrency=4,
        window_s=20.0,
        # Wait for the distiller's first version rather than guess how long 2 busy cores take.
        wait_for_versions=1,
        max_wait_s=900.0,
        config_overrides={"distiller": TINY_DISTILLER, "monitoring": {"shadow_rate": 0.0}},
    )
    summary, pids = run_demo(opts)

    assert summary.requests >= 40 and summary.failed == 0
    assert summary.teacher_share_first >= 0.9, "cold start sends everything to the teacher"
    # The teacher's R1-style answers pass the families' own graders.
    assert summary.teacher_only_quality == 1.0
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert {o["task"] for o in outcomes} == set(language.FAMILIES)
    assert {o["grader"] for o in outcomes} == {"final_answer", "json"}
    events = json.loads((out / "summary.json").read_text())["events"]
    assert events, "the distiller registered no adapter version"
    config = (out / "config.yaml").read_text()
    assert "model_path: smollm2" in config and "field_extraction" in config
    assert pids and not [p for p in pids if _alive(p)], "the demo left processes running"
