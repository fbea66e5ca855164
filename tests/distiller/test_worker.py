"""The distill worker in-process, on an in-memory record source and a temp-dir registry.

Training and evaluation are real (the trainer and evaluator on the tiny untrained student,
one epoch): the student learns nothing in one epoch, so the gate's outcome is set by its
thresholds — a margin of -1 passes any candidate, a margin above 1 holds any. Runs whose
records are all unusable, or too few, never reach the trainer; they drive the trigger and
offset tests. Promotion goes through ``NoActivator`` (registry only). Metrics are read from
the test's own registry.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from distillserve.adapters.promotion import NoActivator, Promoter
from distillserve.adapters.registry import AdapterRegistry
from distillserve.config import DistillerConfig
from distillserve.distiller.sources import SourcedRecord
from distillserve.distiller.worker import Distiller
from tests.support.chat_records import long_reasoning_record
from tests.support.metrics import sample
from tests.support.teacher_records import teacher_records
from tests.support.tiny_student import build_tiny_student

TOPIC = "teacher-log"
# Small and quick. The gate's thresholds and the trigger are set per test.
FAST: dict[str, Any] = {
    "lora": {"rank": 4, "alpha": 8},
    "optim": {"epochs": 1, "batch_size": 8},
    "eval": {"regression_size": 8, "max_new_tokens": 8, "holdout_fraction": 0.25},
    "promotion": {"via": "none"},
    "device": "cpu",
    "seed": 3,
}
PASS_ANY = {"gate": {"promote_margin": -1.0, "max_regression": 1.0}}
HOLD_ANY = {"gate": {"promote_margin": 1.01, "max_regression": 1.0}}


def trigger(records: int = 16, seconds: float = 3600.0, min_records: int = 8) -> dict[str, Any]:
    return {"trigger": {"records": records, "seconds": seconds, "min_records": min_records}}


class ListSource:
    """A ``RecordSource`` over a list. Records what was committed and which registry versions were
    visible at that moment; sets ``idle`` after a few polls that found nothing new (to stop a loop)."""

    def __init__(self, values: Sequence[bytes], registry: AdapterRegistry, *, idle_after: int = 3) -> None:
        self.records = [SourcedRecord(v, TOPIC, 0, i) for i, v in enumerate(values)]
        self.registry = registry
        self.position = 0
        self.commits: list[tuple[list[int], list[str]]] = []  # (offsets, versions visible then)
        self.idle = threading.Event()
        self._empty_polls = 0
        self._idle_after = idle_after

    def poll(self, max_records: int, timeout_s: float) -> list[SourcedRecord]:
        got = self.records[self.position : self.position + max_records]
        self.position += len(got)
        self._empty_polls = 0 if got else self._empty_polls + 1
        if self._empty_polls >= self._idle_after:
            self.idle.set()
        return got

    def commit(self, records: Sequence[SourcedRecord]) -> None:
        self.commits.append(([r.offset for r in records], self.registry.versions()))

    def lag(self) -> int | None:
        return len(self.records) - sum(len(offsets) for offsets, _ in self.commits)

    def close(self) -> None:
        return None

    def committed(self) -> list[int]:
        return [o for offsets, _ in self.commits for o in offsets]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def registry(base: Path, tmp_path: Path) -> AdapterRegistry:
    return AdapterRegistry(str(tmp_path / "registry"), str(base))


def distiller(
    base: Path, registry: AdapterRegistry, tmp_path: Path, *, base_dir: Path | None = None, **cfg: Any
) -> Distiller:
    return Distiller(
        DistillerConfig(**{**FAST, **trigger(), **cfg}),
        base_model=str(base),
        base_dir=base_dir or base,
        registry=registry,
        promoter=Promoter(registry, NoActivator()),
        state_dir=tmp_path / "state",
    )


def good(n: int, seed: int) -> list[bytes]:
    return [r.to_json() for r in teacher_records(["reverse"], n, seed=seed)]


def malformed(n: int) -> list[bytes]:
    return [b"{not json %d" % i for i in range(n)]


def runs(registry: CollectorRegistry, outcome: str) -> float:
    return sample(registry, "distillserve_distiller_runs_total", outcome=outcome)


# --- runs that train ----------------------------------------------------------------------------
def test_a_run_the_gate_passes_is_registered_promoted_and_then_committed(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(good(16, seed=5), registry)
    worker = distiller(base, registry, tmp_path, **PASS_ANY)
    out = worker.run_once(source.poll(16, 0), source)
    assert (out.consumed, out.outcome, out.version) == (True, "promoted", "v1")
    assert registry.live() == "v1" and registry.card("v1").status == "live"
    card = registry.card("v1")
    assert card.base_model == str(base) and card.parent is None
    assert [(o.topic, o.first, o.last) for o in card.offsets] == [(TOPIC, 0, 15)]
    assert card.records["seen"] == 16 and card.records["held_out"] > 0
    assert card.gate is not None and card.gate["promote"] and card.gate["reasons"] == []
    # Offsets committed once, after the version became visible in the registry.
    assert source.commits == [(list(range(16)), ["v1"])]
    kept = card.records["kept"]
    assert runs(fresh_metrics, "promoted") == 1
    assert sample(fresh_metrics, "distillserve_distiller_records_total", outcome="kept") == kept
    assert sample(fresh_metrics, "distillserve_distiller_run_duration_seconds_count") == 1
    assert sample(fresh_metrics, "distillserve_distiller_last_run_timestamp_seconds") > 0
    assert fresh_metrics.get_sample_value("distillserve_distiller_loss", {"kind": "loss"}) is not None
    eval_labels = {"version": "v1", "dataset": "heldout", "metric": "exact"}  # the grader that scored it
    assert fresh_metrics.get_sample_value("distillserve_adapter_eval_score", eval_labels) is not None
    assert sample(fresh_metrics, "distillserve_live_adapter_info", base=str(base), version="v1") == 1


def test_a_run_the_gate_holds_is_a_candidate_with_its_reasons(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(good(16, seed=6), registry)
    worker = distiller(base, registry, tmp_path, **HOLD_ANY)
    out = worker.run_once(source.poll(16, 0), source)
    assert (out.consumed, out.outcome, out.version) == (True, "held", "v1")
    assert out.gate is not None and not out.gate.promote
    card = registry.card("v1")
    assert card.status == "candidate" and registry.live() is None
    assert card.gate is not None and not card.gate["promote"]
    assert any("below the margin" in r for r in card.gate["reasons"]), card.gate
    assert source.commits == [(list(range(16)), ["v1"])]  # held or not, the records are consumed
    assert runs(fresh_metrics, "held") == 1 and runs(fresh_metrics, "promoted") == 0


# --- runs that never reach the trainer -----------------------------------------------------------
def test_too_few_usable_records_wait_uncommitted(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(good(4, seed=7) + malformed(2), registry)
    worker = distiller(base, registry, tmp_path, **trigger(min_records=8))
    out = worker.run_once(source.poll(16, 0), source)
    assert (out.consumed, out.outcome, out.version) == (False, "waiting", None)
    assert out.details["records"]["kept"] == 4
    assert source.commits == [] and registry.versions() == []
    for outcome in ("promoted", "held", "skipped", "failed"):
        assert runs(fresh_metrics, outcome) == 0
    assert sample(fresh_metrics, "distillserve_distiller_records_total", outcome="kept") == 0


def test_a_batch_with_nothing_usable_is_skipped_and_committed(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(malformed(5), registry)
    out = distiller(base, registry, tmp_path).run_once(source.poll(16, 0), source)
    assert (out.consumed, out.outcome) == (True, "skipped")
    assert source.committed() == [0, 1, 2, 3, 4] and registry.versions() == []
    assert runs(fresh_metrics, "skipped") == 1
    assert sample(fresh_metrics, "distillserve_distiller_records_total", outcome="malformed") == 5
    [card] = registry.skipped_runs()  # and a card says why
    assert card.reason == "no usable record in the batch" and card.records["dropped"]["malformed"] == 5


def test_a_failed_run_commits_nothing_and_is_counted(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(good(16, seed=8), registry)
    # The trainer cannot load the base model: the run fails after the records were read.
    worker = distiller(base, registry, tmp_path, base_dir=tmp_path / "no-such-model", **PASS_ANY)
    with pytest.raises(OSError):
        worker.run_once(source.poll(16, 0), source)
    assert source.commits == [] and registry.versions() == []
    assert runs(fresh_metrics, "failed") == 1


# --- the trigger ----------------------------------------------------------------------------------
def test_the_loop_runs_when_enough_records_are_waiting(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(malformed(20), registry)
    worker = distiller(base, registry, tmp_path, **trigger(records=8, seconds=3600.0))
    worker.run_forever(source, stop=source.idle)
    # Two full batches of 8 ran; the last 4 are too few and too young to trigger.
    assert [offsets for offsets, _ in source.commits] == [list(range(8)), list(range(8, 16))]
    assert runs(fresh_metrics, "skipped") == 2


def test_the_loop_waits_below_the_trigger_size(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(malformed(5), registry)
    distiller(base, registry, tmp_path, **trigger(records=8, seconds=3600.0)).run_forever(
        source, stop=source.idle
    )
    assert source.commits == [] and source.position == 5
    assert runs(fresh_metrics, "skipped") == 0


def test_the_loop_runs_on_age_below_the_trigger_size(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(malformed(5), registry)
    distiller(base, registry, tmp_path, **trigger(records=8, seconds=0.0)).run_forever(
        source, stop=source.idle
    )
    assert source.committed() == [0, 1, 2, 3, 4]
    assert runs(fresh_metrics, "skipped") == 1


def test_the_loop_keeps_too_few_usable_records_pending(
    base: Path, registry: AdapterRegistry, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    source = ListSource(good(4, seed=9), registry)
    worker = distiller(base, registry, tmp_path, **trigger(records=8, seconds=0.0, min_records=8))
    worker.run_forever(source, stop=source.idle)
    assert source.commits == [] and registry.versions() == []  # triggered by age, but waiting
    assert sum(runs(fresh_metrics, o) for o in ("promoted", "held", "skipped", "failed")) == 0


# --- a batch that trains nothing ---------------------------------------------------------------
def too_long(n: int, *, long_prompt: bool) -> list[bytes]:
    """R1-style records longer than the tiny student's 256-token context: a long trace with a short
    answer (clippable), or also a long prompt (nothing fits even with the trace cut away)."""
    pad = " Please show every step of the working." * 8 if long_prompt else ""
    return [
        long_reasoning_record(i, f"Question {i}: what is {i} + {i}?{pad}", f"It is {2 * i}.", 120).to_json()
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("policy", "long_prompt", "outcome"),
    [("drop", False, "dropped_by_policy"), ("clip_reasoning", True, "answer_too_long")],
)
def test_a_batch_of_only_too_long_examples_is_skipped_committed_and_left_behind(
    base: Path,
    registry: AdapterRegistry,
    tmp_path: Path,
    fresh_metrics: CollectorRegistry,
    policy: str,
    long_prompt: bool,
    outcome: str,
) -> None:
    source = ListSource(too_long(12, long_prompt=long_prompt), registry)
    worker = distiller(
        base,
        registry,
        tmp_path,
        optim={"epochs": 1, "batch_size": 8, "too_long": policy},
        **trigger(records=12),
    )
    worker.run_forever(source, stop=source.idle)
    # Committed once, and the loop went on polling (no retry of the same batch): nothing trained.
    assert source.commits == [(list(range(12)), [])] and registry.versions() == []
    [card] = registry.skipped_runs()
    assert card.status == "skipped" and card.base_model == str(base)
    n = card.records["train_new"]
    why = f"nothing to train: none of {n} examples (0 replayed) fits 256 tokens with optim.too_long={policy}"
    assert card.reason == why
    assert [(o.first, o.last) for o in card.offsets] == [(0, 11)]
    # The regression slice took its share first, a slice was held out; every other one was too long.
    r = card.records
    assert r["golden"]["reserved"] == 3 and r["golden"]["reserved"] + r["train_new"] + r["held_out"] == 12
    assert r["train_new"] > 0 and r["too_long"] == {outcome: r["train_new"]}
    assert r["past"] == r["base"] == 0  # nothing replayed
    assert card.data_sources["regression_set"]["source"] == "golden"
    assert runs(fresh_metrics, "skipped") == 1 and runs(fresh_metrics, "failed") == 0
    long_total = sample(fresh_metrics, "distillserve_distiller_long_examples_total", outcome=outcome)
    assert long_total == r["train_new"]
