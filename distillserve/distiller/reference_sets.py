"""Where a run's regression set and base replay come from; the testbed only for the testbed student.

The testbed's synthetic ``copy``/``upper``/``first`` tasks measure the loop offline; a real student
must never be trained or gated on them. So, for a student other than the testbed model:

- the **regression set** is a user file (``eval.regression_path``) or the **golden slice**: teacher
  answers of the deployment's own traffic, set aside from the first batches the distiller consumes
  (a share of each until it holds ``eval.regression_size`` items), never trained on, kept as
  immutable versions in the registry with their SHA-256;
- the **base replay** is a user file (``replay.base_path``) or nothing: the whole replay share is then
  drawn from past traffic (the replay store of earlier runs' teacher examples).

Every adapter card says which (``data_sources``), so "no testbed data" can be checked on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from distillserve.adapters.registry import AdapterRegistry, GoldenSetInfo
from distillserve.config import DistillerConfig
from distillserve.distiller.examples import TrainingExample
from distillserve.distiller.replay import base_replay_examples, load_jsonl_examples, regression_examples

TESTBED_STUDENT = "testbed-student"


def is_testbed_student(base_model: str) -> bool:
    """The testbed model, named by its alias: the one student the synthetic tasks are for."""
    return base_model == TESTBED_STUDENT


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Reservation:
    """A batch after the regression source took its share: what is left, and what was taken out."""

    remaining: list[TrainingExample]
    reserved: int = 0  # new golden items, taken from this batch
    excluded: int = 0  # prompts already in the golden slice: never trained on

    def as_dict(self) -> dict[str, int]:
        return {"reserved": self.reserved, "excluded": self.excluded}


class RegressionSource(ABC):
    """The fixed items every candidate and the live version are scored on, and where they came from."""

    @abstractmethod
    def examples(self) -> list[TrainingExample]: ...

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """For the adapter card: ``{"source": ..., "n": ..., ...}``."""

    def reserve(self, examples: Sequence[TrainingExample]) -> Reservation:
        """Take this source's share of a batch before training; a fixed set takes nothing."""
        return Reservation(list(examples))


class FixedRegression(RegressionSource):
    """A set known up front: a user file, or the testbed base tasks."""

    def __init__(self, examples: list[TrainingExample], description: dict[str, Any]) -> None:
        self._examples = examples
        self._description = {**description, "n": len(examples)}

    def examples(self) -> list[TrainingExample]:
        return self._examples

    def describe(self) -> dict[str, Any]:
        return self._description


def _identity(e: TrainingExample) -> str:
    """A conversation's identity: its log key (first user turn), else its content."""
    return e.key or e.fingerprint()


def _rank(seed: int, e: TrainingExample) -> bytes:
    return hashlib.blake2b(f"golden:{seed}:{_identity(e)}".encode(), digest_size=8).digest()


class GoldenSlice(RegressionSource):
    """Teacher-answered prompts of the deployment's own traffic, versioned in the registry.

    Each batch gives up to ``batch_share`` of its examples (chosen by a hash of the conversation
    key, so the choice does not depend on arrival order) until ``size`` are held; that version is
    frozen. A later record of a golden conversation is never trained on.
    """

    def __init__(self, registry: AdapterRegistry, *, size: int, batch_share: float, seed: int) -> None:
        self.registry = registry
        self.size = size
        self.batch_share = batch_share
        self.seed = seed
        self.info: GoldenSetInfo | None = registry.latest_golden()
        self._examples = self._load(self.info)
        self._keys = {_identity(e) for e in self._examples}

    def _load(self, info: GoldenSetInfo | None) -> list[TrainingExample]:
        if info is None:
            return []
        rows = self.registry.read_golden(info.version).splitlines()
        return [TrainingExample.from_json(orjson.loads(r), source="golden") for r in rows if r.strip()]

    def examples(self) -> list[TrainingExample]:
        return self._examples

    def describe(self) -> dict[str, Any]:
        if self.info is None:
            return {"source": "golden", "version": None, "n": 0, "sha256": None, "complete": False}
        i = self.info
        return {
            "source": "golden",
            "version": i.version,
            "n": i.n,
            "sha256": i.sha256,
            "complete": i.complete,
        }

    def reserve(self, examples: Sequence[TrainingExample]) -> Reservation:
        fresh = [e for e in examples if _identity(e) not in self._keys]
        excluded = len(examples) - len(fresh)
        room = self.size - len(self._examples)
        take = min(room, int(self.batch_share * len(fresh))) if room > 0 else 0
        if take <= 0:
            return Reservation(fresh, 0, excluded)
        chosen = {_identity(e) for e in sorted(fresh, key=lambda e: _rank(self.seed, e))[:take]}
        picked = [e for e in fresh if _identity(e) in chosen]
        self._publish(picked)
        return Reservation([e for e in fresh if _identity(e) not in chosen], len(picked), excluded)

    def _publish(self, picked: list[TrainingExample]) -> None:
        """Write the grown slice as the next immutable version (durable before anything trains)."""
        # Kept whole but for teacher top-k: the task picks the item's grader, the tenant its deletion.
        items = self._examples + [
            dataclasses.replace(e, teacher_tokens=None, source="golden") for e in picked
        ]
        rows = b"".join(orjson.dumps(e.to_json()) + b"\n" for e in items)
        self.info = self.registry.write_golden(rows, n=len(items), complete=len(items) >= self.size)
        self._examples = items
        self._keys |= {_identity(e) for e in picked}


def regression_source(cfg: DistillerConfig, base_model: str, registry: AdapterRegistry) -> RegressionSource:
    """A user file, the testbed base tasks (testbed student only), or the golden slice."""
    size, path = cfg.eval.regression_size, cfg.eval.regression_path
    if path:
        described = {"source": "file", "path": str(path), "sha256": file_sha256(path)}
        return FixedRegression(regression_examples(size, path), described)
    if is_testbed_student(base_model):
        return FixedRegression(regression_examples(size), {"source": "testbed"})
    return GoldenSlice(registry, size=size, batch_share=cfg.eval.golden_batch_share, seed=cfg.seed)


def base_replay_pool(
    cfg: DistillerConfig, base_model: str, n: int
) -> tuple[list[TrainingExample], dict[str, Any]]:
    """Base-skill examples to replay and where they came from; none (all replay from past traffic)
    for a student other than the testbed model without a file."""
    path = cfg.replay.base_path
    if path:
        pool = load_jsonl_examples(path, "base")[:n]
        return pool, {"source": "file", "path": str(path), "sha256": file_sha256(path), "pool": len(pool)}
    if is_testbed_student(base_model):
        pool = base_replay_examples(n)
        return pool, {"source": "testbed", "pool": len(pool)}
    return [], {"source": "traffic", "pool": 0}
