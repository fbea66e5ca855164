"""The distill worker: teacher log → train → evaluate → register → commit offsets → promote.

One run, in an order that keeps every promise on a crash at any point:

1. records become examples (filters counted); the regression source takes its share (the golden
   slice of a real student's traffic, written to the registry first); a deterministic slice is held out;
2. a LoRA adapter is trained on the rest plus replayed old data, into a private work folder; a
   batch in which nothing fits (too long, nothing replayed) is skipped: a card says why, its
   offsets are committed, the worker moves on;
3. the candidate and the live version are scored on the same held-out / regression items;
4. the version is registered (visible only when complete) with its card and gate decision;
5. the replay store and past held-out set are updated, then the source offsets are committed;
6. the gate's decision is applied: promote, or leave it waiting for a person.

Killed before 4: nothing visible, offsets uncommitted, the records are trained on again.
Killed between 4 and 5: the records are trained on again (at-least-once), a second version.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillserve.adapters.promotion import Promoter
from distillserve.adapters.registry import AdapterCard, AdapterRegistry, RegistryError, SkippedRunCard
from distillserve.adapters.tenant_deletions import TenantDeletions
from distillserve.config import DistillerConfig
from distillserve.distiller.evaluation import Evaluator, compare
from distillserve.distiller.examples import TrainingExample, build_examples
from distillserve.distiller.gate import GateDecision, decide
from distillserve.distiller.reference_sets import Reservation, base_replay_pool, regression_source
from distillserve.distiller.replay import ExampleStore, mix_replay
from distillserve.distiller.sources import RecordSource, SourcedRecord, offset_ranges
from distillserve.distiller.trainer import AdapterTraining, NothingToTrain, TrainOutcome, train_adapter
from distillserve.grading import GraderSelection
from distillserve.models.prepared import resolve_model
from distillserve.monitoring import metrics

log = logging.getLogger(__name__)


def resolve_base_model(name: str) -> Path:
    """A base model directory from a path or a prepared alias (``testbed-student``, ``smollm2``)."""
    return resolve_model(name)


def is_held_out(key: str, fraction: float, seed: int) -> bool:
    """Deterministic by conversation key, so a conversation never lands on both sides."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")
    return (h % 10_000) < fraction * 10_000


@dataclass
class RunOutcome:
    """What one trigger did. ``consumed`` False = the records stay pending (too few usable)."""

    consumed: bool
    outcome: str  # "promoted", "held", "refused", "skipped", "waiting"
    version: str | None = None
    card: AdapterCard | None = None
    gate: GateDecision | None = None
    details: dict[str, Any] = field(default_factory=dict)
    skipped: SkippedRunCard | None = None  # the card of a run that trained nothing


@dataclass
class TrainingSet:
    """One run's examples: new ones trained on and held out, the mix with replayed old ones, and
    the replay store as it was before the run."""

    new: list[TrainingExample]
    held_out: list[TrainingExample]
    mixed: list[TrainingExample]
    past: list[TrainingExample]
    reservation: Reservation

    @property
    def replayed(self) -> int:
        return len(self.mixed) - len(self.new)

    def replay_counts(self) -> dict[str, int]:
        """Replayed examples by pool: past traffic (the replay store) and base-skill samples."""
        return {
            "past": sum(e.source == "replay" for e in self.mixed),
            "base": sum(e.source == "base" for e in self.mixed),
        }


class Distiller:
    def __init__(
        self,
        cfg: DistillerConfig,
        *,
        base_model: str,
        base_dir: Path,
        registry: AdapterRegistry,
        promoter: Promoter,
        state_dir: Path,
        graders: GraderSelection | None = None,
        train: AdapterTraining = train_adapter,
    ) -> None:
        self.cfg = cfg
        # Judges eval answers against references (the gate's scores); None = exact answer text.
        self.graders = graders
        self.train = train  # several ranks: distributed.DistributedTraining
        self.base_model = base_model
        self.base_dir = base_dir
        self.registry = registry
        # Tenants whose data was deleted: purged from the stores below, skipped in the log.
        self.deletions = TenantDeletions(registry)
        self.promoter = promoter
        self.state_dir = state_dir
        self.replay = ExampleStore(state_dir / "replay.jsonl", cfg.replay.store_max)
        self.past_holdout = ExampleStore(
            state_dir / "past_holdout.jsonl", cfg.eval.past_holdout_max, source="teacher"
        )
        # The testbed's synthetic sets only for the testbed student; a real one's own traffic otherwise.
        self.regression = regression_source(cfg, base_model, registry)
        # Enough distinct base samples for a full batch's replay share, so none repeats within a run.
        base_pool = max(64, math.ceil(cfg.trigger.records * cfg.replay.ratio))
        self.base_replay, self.base_replay_source = base_replay_pool(cfg, base_model, base_pool)
        self.seen: set[str] = set()
        self._evaluator: Evaluator | None = None
        self.runs = 0
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        """A killed run leaves a work folder and maybe a staging entry; neither is a version."""
        work = self.state_dir / "work"
        if work.exists():
            shutil.rmtree(work)
        removed = self.registry.clean_staging()
        if removed:
            log.warning("removed %d half-written version(s) left by a killed run", removed)

    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            self._evaluator = Evaluator(
                self.base_dir,
                device=self.cfg.device,
                max_new_tokens=self.cfg.eval.max_new_tokens,
                batch_size=self.cfg.eval.batch_size,
                graders=self.graders,
            )
        return self._evaluator

    # -- one run --------------------------------------------------------------------------------
    def run_once(
        self, batch: Sequence[SourcedRecord], source: RecordSource, *, final: bool = False
    ) -> RunOutcome:
        started = time.perf_counter()
        seen = set(self.seen)  # adopted only when the batch is consumed
        examples, report = build_examples(
            [r.value for r in batch],
            learn_reasoning=self.cfg.kd.learn_reasoning,
            seen_fingerprints=seen,
            deleted_tenants=self.forget_deleted_tenants(),
        )
        if report.kept == 0:
            self._count_records(report.as_dict())
            self.seen = seen
            return self._skip(batch, source, "no usable record in the batch", report.as_dict())
        if report.kept < self.cfg.trigger.min_records and not final:
            return RunOutcome(False, "waiting", details={"records": report.as_dict()})
        self._count_records(report.as_dict())
        try:
            outcome = self._train_evaluate_register(batch, examples, report.as_dict(), source, started)
        except Exception:
            metrics.DISTILLER_RUNS.labels(outcome="failed").inc()
            raise
        self.seen = seen
        if outcome.outcome != "skipped":
            metrics.DISTILLER_RUNS.labels(outcome=outcome.outcome).inc()
            metrics.DISTILLER_RUN_DURATION.observe(time.perf_counter() - started)
            metrics.DISTILLER_LAST_RUN.set(time.time())
        return outcome

    def _train_evaluate_register(
        self,
        batch: Sequence[SourcedRecord],
        examples: list[TrainingExample],
        records: dict[str, Any],
        source: RecordSource,
        started: float,
    ) -> RunOutcome:
        data = self._training_set(examples)
        records = {**records, "golden": data.reservation.as_dict()}
        live = self.registry.live()
        live_path = self.registry.local_path(live) if live else None
        work = self.state_dir / "work" / f"run-{uuid.uuid4().hex[:8]}"
        adapter_dir = work / "adapter"
        try:
            trained, t_train = self._train(data, adapter_dir, live, live_path, work)
        except NothingToTrain as nothing:
            shutil.rmtree(work, ignore_errors=True)
            self._count_long(nothing.long_examples)
            why = self._nothing_to_train_reason(data, nothing.max_seq_len)
            counts = {"train_new": len(data.new), "held_out": len(data.held_out), **data.replay_counts()}
            encode = {"encode": nothing.stats, "too_long": nothing.long_examples}
            return self._skip(batch, source, why, {**records, **counts, **encode}, data)
        self._count_long(trained.long_examples)
        evaluation, t_eval = self._evaluate(adapter_dir, live, live_path, data.held_out)
        gate = decide(
            evaluation,
            promote_margin=self.cfg.gate.promote_margin,
            max_regression=self.cfg.gate.max_regression,
        )
        timings = {
            "train_s": round(t_train, 2),
            "eval_s": round(t_eval, 2),
            "total_s": round(time.perf_counter() - started, 2),
            "train_tokens_per_s": round(trained.tokens_per_second, 1),
        }
        card = self._card(batch, records, data, trained, evaluation, gate, timings)
        card = self._register(adapter_dir, card, work)
        self._remember(data)
        source.commit(batch)  # only now: the version trained on these records is registered
        self.runs += 1
        log.info("registered %s: %s; gate: %s", card.version, evaluation["candidate"], gate.reasons or "pass")
        return self._apply_gate(card, gate)

    def forget_deleted_tenants(self) -> frozenset[str]:
        """The tenants whose data was deleted; their examples leave the replay store and the past
        held-out set now (counted), before anything of them could be replayed or scored."""
        tenants = self.deletions.tenants()
        for where, store in (("replay_store", self.replay), ("past_holdout", self.past_holdout)):
            n = store.forget_tenants(tenants)
            if n:
                metrics.TENANT_DELETIONS.labels(where=where).inc(n)
                log.info("removed %d examples of deleted tenants from the %s", n, where)
        return tenants

    def _skip(
        self,
        batch: Sequence[SourcedRecord],
        source: RecordSource,
        reason: str,
        records: dict[str, Any],
        data: TrainingSet | None = None,
    ) -> RunOutcome:
        """A batch that trains nothing: its card says why, its offsets are committed, the worker
        moves on (never a loop on the same records)."""
        card = self.registry.record_skipped_run(
            SkippedRunCard(
                base_model=self.base_model,
                reason=reason,
                offsets=offset_ranges(batch),
                records=records,
                data_sources=self._data_sources(data),
            )
        )
        source.commit(batch)
        metrics.DISTILLER_RUNS.labels(outcome="skipped").inc()
        log.warning("skipped %d records (%s): %s", len(batch), card.run_id, reason)
        return RunOutcome(True, "skipped", details={"records": records, "reason": reason}, skipped=card)

    def _nothing_to_train_reason(self, data: TrainingSet, max_seq_len: int) -> str:
        if not data.mixed:
            return "nothing to train: no example left once the regression slice took its share"
        return (
            f"nothing to train: none of {len(data.mixed)} examples ({data.replayed} replayed) fits "
            f"{max_seq_len} tokens with optim.too_long={self.cfg.optim.too_long}"
        )

    def _training_set(self, examples: list[TrainingExample]) -> TrainingSet:
        """New examples less the regression source's share, split into trained and held out (by
        conversation), mixed with replayed ones."""
        reservation = self.regression.reserve(examples)
        examples = reservation.remaining
        fraction, seed = self.cfg.eval.holdout_fraction, self.cfg.seed
        held_out = [e for e in examples if is_held_out(e.key, fraction, seed)]
        new = [e for e in examples if not is_held_out(e.key, fraction, seed)]
        if not new:  # a tiny batch: train on everything rather than nothing
            new, held_out = examples, []
        past = self.replay.load()
        mixed = mix_replay(
            new,
            past,
            self.base_replay,
            ratio=self.cfg.replay.ratio,
            base_share=self.cfg.replay.base_share,
            rng=random.Random(seed + self.runs),
        )
        return TrainingSet(new=new, held_out=held_out, mixed=mixed, past=past, reservation=reservation)

    def _train(
        self, data: TrainingSet, adapter_dir: Path, live: str | None, live_path: str | None, work: Path
    ) -> tuple[TrainOutcome, float]:
        """Train the candidate into ``adapter_dir``, continuing the live adapter; with its seconds."""
        log.info(
            "training on %d new + %d replayed examples (held out %d), continuing from %s",
            len(data.new),
            data.replayed,
            len(data.held_out),
            live or "the base model",
        )
        t0 = time.perf_counter()
        trained = self.train(
            self.base_dir,
            data.mixed,
            self.cfg,
            adapter_dir,
            parent_adapter=live_path,
            work_dir=work / "trainer",
        )
        seconds = time.perf_counter() - t0
        for kind in ("loss", "ce", "kl"):
            if kind in trained.losses:
                metrics.DISTILLER_LOSS.labels(kind=kind).set(trained.losses[kind])
        return trained, seconds

    def _evaluate(
        self, adapter_dir: Path, live: str | None, live_path: str | None, held_out: list[TrainingExample]
    ) -> tuple[dict[str, Any], float]:
        """Candidate and live scored on the same held-out, past held-out and regression sets."""
        t0 = time.perf_counter()
        sets = {
            "heldout": held_out,
            "past_heldout": self.past_holdout.load(),
            "regression": self.regression.examples(),
        }
        evaluation = compare(self.evaluator, adapter_dir, live_path, sets)
        evaluation["live_version"] = live
        return evaluation, time.perf_counter() - t0

    def _data_sources(self, data: TrainingSet | None) -> dict[str, Any]:
        """Where the regression set and replayed data came from (the card's ``data_sources``)."""
        replay = {**self.base_replay_source, **(data.replay_counts() if data else {})}
        return {"training": "teacher", "regression_set": self.regression.describe(), "replay": replay}

    def _card(
        self,
        batch: Sequence[SourcedRecord],
        records: dict[str, Any],
        data: TrainingSet,
        trained: TrainOutcome,
        evaluation: dict[str, Any],
        gate: GateDecision,
        timings: dict[str, float],
    ) -> AdapterCard:
        return AdapterCard(
            base_model=self.base_model,
            parent=evaluation["live_version"],  # the version the candidate continues
            offsets=offset_ranges(batch),
            records={
                **records,
                "train_new": len(data.new),
                "replayed": data.replayed,
                "held_out": len(data.held_out),
                "encode": trained.encode_stats,
                "too_long": trained.long_examples,
            },
            losses={k: round(v, 5) for k, v in trained.losses.items()},
            eval=evaluation,
            gate=gate.as_dict(),
            timings=timings,
            training=self._training_summary(trained),
            data_sources=self._data_sources(data),
        )

    def _register(self, adapter_dir: Path, card: AdapterCard, work: Path) -> AdapterCard:
        """Make the candidate a version: durable and visible from here on."""
        card = self.registry.register(adapter_dir, card)
        shutil.rmtree(work, ignore_errors=True)
        for set_name, scores in card.eval["candidate"].items():
            metrics.ADAPTER_EVAL.labels(version=card.version, dataset=set_name, metric=scores["grader"]).set(
                scores["score"]
            )
        return card

    def _remember(self, data: TrainingSet) -> None:
        """Keep this run's new examples for replay and its held-out ones for later candidates."""
        seed = self.cfg.seed + self.runs
        self.replay.add(_new_only(data.new, data.past), seed=seed)
        self.past_holdout.add(_new_only(data.held_out, self.past_holdout.load()), seed=seed)

    def _apply_gate(self, card: AdapterCard, gate: GateDecision) -> RunOutcome:
        """Promote a version that passed the gate (when auto-promotion is on), else leave it waiting."""
        version = card.version
        if not (self.cfg.promotion.auto and gate.promote):
            return RunOutcome(True, "held", version, card, gate)
        try:
            asyncio.run(
                self.promoter.promote(version, by="distiller", reason=f"gate passed, gain {gate.gain:+.3f}")
            )
        except RegistryError as exc:
            self.registry.update_card(version, gate={**gate.as_dict(), "promotion_error": str(exc)})
            return RunOutcome(True, "refused", version, card, gate, {"error": str(exc)})
        return RunOutcome(True, "promoted", version, self.registry.card(version), gate)

    def _training_summary(self, trained: TrainOutcome) -> dict[str, Any]:
        """The card's ``training`` section (its flat keys are the card format, kept across config layouts)."""
        c = self.cfg
        return {
            "steps": trained.steps,
            "max_seq_len": trained.max_seq_len,
            "too_long_policy": c.optim.too_long,
            "lora_rank": c.lora.rank,
            "lora_alpha": c.lora.alpha,
            "target_modules": c.lora.target_modules,
            "learning_rate": c.optim.learning_rate,
            "epochs": c.optim.epochs,
            "batch_size": c.optim.batch_size,
            "kd_alpha": c.kd.alpha,
            "kd_temperature": c.kd.temperature,
            "kd_temperature_schedule": c.kd.temperature_schedule,
            "kd_temperature_final": c.kd.temperature_final,
            "kd_alignment": c.kd.alignment,
            # Per-run token-level KD figures: mean kept top-k mass, CE fallbacks by reason.
            "kd": trained.kd,
            "learn_reasoning": c.kd.learn_reasoning,
            "replay_ratio": c.replay.ratio,
            "seed": c.seed,
        }

    @staticmethod
    def _count_long(outcomes: dict[str, int]) -> None:
        for outcome, n in outcomes.items():
            if n:
                metrics.DISTILLER_LONG_EXAMPLES.labels(outcome=outcome).inc(n)

    @staticmethod
    def _count_records(records: dict[str, Any]) -> None:
        metrics.DISTILLER_RECORDS.labels(outcome="kept").inc(records["kept"])
        if records["dropped"]["deleted_tenant"]:
            metrics.TENANT_DELETIONS.labels(where="teacher_log").inc(records["dropped"]["deleted_tenant"])
        for reason, n in records["dropped"].items():
            if n:
                metrics.DISTILLER_RECORDS.labels(outcome=reason).inc(n)

    # -- the loop -------------------------------------------------------------------------------
    def run_forever(self, source: RecordSource, *, stop: Any = None, max_runs: int | None = None) -> None:
        """Poll, trigger on size or age, run; until ``stop.is_set()`` or ``max_runs`` runs."""
        trigger = self.cfg.trigger
        pending: list[SourcedRecord] = []
        first_at: float | None = None
        done = 0
        while not (stop is not None and stop.is_set()) and (max_runs is None or done < max_runs):
            room = max(1, trigger.records - len(pending))
            got = source.poll(room, timeout_s=1.0)
            if got:
                pending.extend(got)
                first_at = first_at or time.monotonic()
            lag = source.lag()
            if lag is not None:
                metrics.TEACHER_LOG_CONSUMER_LAG.labels(group=self.cfg.group_id).set(lag)
            aged = first_at is not None and time.monotonic() - first_at >= trigger.seconds
            if pending and (len(pending) >= trigger.records or aged):
                outcome = self.run_once(pending, source)
                log.info("run: %s %s", outcome.outcome, outcome.version or "")
                if outcome.consumed:
                    pending, first_at = [], None
                    done += outcome.outcome != "skipped"
                else:
                    first_at = time.monotonic()  # wait another period for more usable records


def _new_only(items: Sequence[TrainingExample], existing: Sequence[TrainingExample]) -> list[TrainingExample]:
    have = {e.fingerprint() for e in existing}
    return [e for e in items if e.fingerprint() not in have]
