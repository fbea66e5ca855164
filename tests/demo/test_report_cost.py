"""The demo report's money section, from a ``/metrics`` page written by the real cost ledger:
spent (serve + learning overhead) against teacher-only, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from distillserve.config import PricingConfig
from distillserve.demo.report import write_report
from distillserve.demo.report_cost import spend_from_metrics
from distillserve.demo.traffic import Outcome
from distillserve.monitoring.cost import CostLedger

PRICES = {
    "teacher-llm": {"input_per_million": 2.0, "output_per_million": 8.0},
    "student-gpu": {"input_per_million": 0.1, "output_per_million": 0.1},
}


def test_spent_against_teacher_only_by_hand(fresh_metrics: CollectorRegistry, tmp_path: Path) -> None:
    book = CostLedger(
        PricingConfig(models=PRICES, student_model="student-gpu"),  # type: ignore[arg-type]
        teacher_model="teacher-llm",
    )
    book.spend("teacher", "serve", {"prompt_tokens": 100, "completion_tokens": 50}, "a")  # 600 micro-$
    book.spend("student", "serve", {"prompt_tokens": 200, "completion_tokens": 100}, "b")  # 30; saves 1200
    book.spend("teacher", "shadow", {"prompt_tokens": 200, "completion_tokens": 100}, "b")  # 1200
    book.spend_on_model("unlisted-judge", "judge", {"prompt_tokens": 7, "completion_tokens": 3})  # unpriced
    s = spend_from_metrics(generate_latest(fresh_metrics).decode())
    assert s.served_usd == pytest.approx(630e-6, rel=1e-9)
    assert s.learning_usd == pytest.approx(1200e-6, rel=1e-9)
    assert s.teacher_only_usd == pytest.approx(1800e-6, rel=1e-9)  # 600 + the student's 1200 on the teacher
    assert s.unpriced_tokens == 10
    assert s.saved_share == pytest.approx(1 - 1830 / 1800)  # learning overhead outweighed the savings here

    outcome = Outcome(1.0, "copy", "student", "student", True, 0.05, 0.01)
    summary = write_report(tmp_path, [outcome], 1.0, [], window_s=10, spend=s)
    report = (tmp_path / "report.md").read_text()
    assert summary.spend is s and "## Cost" in report
    assert "| **spent** | **0.001830** |" in report and "| teacher-only | 0.001800 |" in report
    assert "10 tokens went to a model without a price" in report


def test_the_demos_own_requests_are_left_out_of_its_money(fresh_metrics: CollectorRegistry) -> None:
    book = CostLedger(
        PricingConfig(models=PRICES, student_model="student-gpu"),  # type: ignore[arg-type]
        teacher_model="teacher-llm",
    )
    book.spend("teacher", "serve", {"prompt_tokens": 100, "completion_tokens": 50}, "app")  # 600 micro-$
    book.spend("student", "serve", {"prompt_tokens": 200, "completion_tokens": 100}, "demo-eval")
    book.spend("teacher", "serve", {"prompt_tokens": 100, "completion_tokens": 50}, "demo-eval")
    s = spend_from_metrics(generate_latest(fresh_metrics).decode(), exclude_tenants=("demo-eval",))
    assert s.served_usd == pytest.approx(600e-6, rel=1e-9)
    assert s.teacher_only_usd == pytest.approx(600e-6, rel=1e-9)  # no savings of the probe's student answer
