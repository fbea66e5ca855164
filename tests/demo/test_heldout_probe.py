"""The demo's held-out probe: prompts apart from the traffic, compared before -> after per task,
never logged for distillation, and shown in the report."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from distillserve.config import load_settings
from distillserve.demo.heldout_probe import HeldoutResult, compare, draw_probe
from distillserve.demo.report import write_report
from distillserve.demo.stack import EVAL_TENANT, demo_config, demo_keys
from distillserve.demo.traffic import DEFAULT_MIX, LANGUAGE_MIX, Outcome, TrafficItem
from distillserve.serving.keys.keyring import hash_key


def _outcome(item: TrafficItem, correct: bool, model: str = "student", error: str | None = None) -> Outcome:
    return Outcome(0.0, item.task, "student", model, correct, 0.1, 0.05, error, item.prompt, item.answer)


def test_the_probe_is_the_learnable_tasks_and_none_of_the_traffic() -> None:
    assert LANGUAGE_MIX.learnable == ("field_extraction",) and DEFAULT_MIX.learnable == ("reverse",)
    probe = draw_probe(LANGUAGE_MIX.learnable, 24, seed=0)
    assert [i.task for i in probe] == ["field_extraction"] * 24 and probe == draw_probe(
        ("field_extraction",), 24, 0
    )
    assert all(i.grader == "json" for i in probe)
    rng = random.Random(0)  # the traffic of seed 0
    traffic = {LANGUAGE_MIX.draw(rng).prompt for _ in range(4000)}
    assert len({i.prompt for i in probe}) == 24 and not traffic & {i.prompt for i in probe}


def test_compare_counts_per_task_and_drops_what_the_traffic_sent() -> None:
    items = draw_probe(("reverse", "field_extraction"), 4, seed=3)
    before = [_outcome(i, correct=k == 0) for k, i in enumerate(items)]
    after = [_outcome(i, correct=k != 1, model="student@v2") for k, i in enumerate(items)]
    traffic = [_outcome(items[3], True)]  # the traffic happened to send this one: not held out
    results = compare(items, before, after, traffic)
    assert results == [
        HeldoutResult("reverse", "exact", 3, before=1 / 3, after=2 / 3, after_model="student@v2"),
        HeldoutResult("field_extraction", "json", 4, before=0.0, after=1.0, after_model="student@v2"),
    ]


def test_a_failed_probe_request_is_counted_failed_and_wrong() -> None:
    items = draw_probe(("reverse",), 2, seed=0)
    before = [_outcome(i, False) for i in items]
    after = [_outcome(items[0], True, "student@v1"), _outcome(items[1], False, "", error="404 no such model")]
    [result] = compare(items, before, after, [])
    assert (result.n, result.before, result.after, result.failed) == (2, 0.0, 0.5, 1)
    assert result.after_model == "student@v1"


def test_the_report_shows_before_and_after(tmp_path: Path) -> None:
    item = draw_probe(("field_extraction",), 1, seed=0)[0]
    outcomes = [_outcome(item, True)]
    result = HeldoutResult(
        "field_extraction", "json", 24, before=1 / 24, after=0.875, after_model="student@v1"
    )
    summary = write_report(tmp_path, outcomes, 1.0, [], heldout=[result])
    assert summary.heldout == [result]
    report = (tmp_path / "report.md").read_text()
    assert "| field_extraction | json | 24 | 4.2% | 87.5% | student@v1 | 0 |" in report


def test_the_probe_key_is_never_logged_and_the_traffic_key_is(tmp_path: Path) -> None:
    ports = dict.fromkeys(("gateway", "teacher", "broker", "distiller_metrics", "vllm"), 1234)
    path = tmp_path / "config.yaml"
    cfg = demo_config(tmp_path, ports, "smollm2", "admin", demo_keys("sk-app", "sk-eval"))
    path.write_text(yaml.safe_dump(cfg))
    entries = {e.sha256: e for e in load_settings(path).keys.entries}
    assert entries[hash_key("sk-app")].log and entries[hash_key("sk-app")].tenant != EVAL_TENANT
    assert not entries[hash_key("sk-eval")].log and entries[hash_key("sk-eval")].tenant == EVAL_TENANT
