"""Replay: old data mixed into every run so an adapter keeps what earlier runs and the base knew.

Without it a LoRA trained only on a new task wipes out the old skills (seen on the testbed:
88% → 0%); with a share of replayed examples it keeps them. Two pools feed it: a store of
past training examples (``ExampleStore``, a JSONL file bounded in size) and base-task samples
(``base_replay_examples``: the skills the base model had before any adapter).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import orjson
from filelock import FileLock

from distillserve.distiller.examples import ExampleSource, TrainingExample
from distillserve.testbed.tasks import BASE_TASKS, sample


class ExampleStore:
    """A bounded JSONL file of examples; rewrites are atomic (temp file + rename)."""

    def __init__(self, path: str | Path, max_items: int, *, source: ExampleSource = "replay") -> None:
        self.path = Path(path)
        self.max_items = max_items
        self.source: ExampleSource = source

    def load(self) -> list[TrainingExample]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_bytes().splitlines():
            if line.strip():
                out.append(TrainingExample.from_json(orjson.loads(line), source=self.source))
        return out

    def _locked(self) -> FileLock:
        """Serialises read-modify-writes: the distiller adds while a deletion may purge."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(self.path.with_name(f".{self.path.name}.lock"), timeout=60)

    def add(self, examples: Sequence[TrainingExample], *, seed: int = 0) -> None:
        with self._locked():
            items = self.load() + list(examples)
            if len(items) > self.max_items:
                # Keep a uniform sample so early skills stay represented, in their original order.
                keep = sorted(random.Random(seed).sample(range(len(items)), self.max_items))
                items = [items[i] for i in keep]
            self._write(items)

    def forget_tenants(self, tenants: frozenset[str]) -> int:
        """Remove every example of ``tenants``; how many were removed."""
        if not tenants or not self.path.exists():
            return 0
        with self._locked():
            items = self.load()
            kept = [e for e in items if e.tenant is None or e.tenant not in tenants]
            if len(kept) != len(items):
                self._write(kept)
            return len(items) - len(kept)

    def _write(self, items: Sequence[TrainingExample]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            for e in items:
                fh.write(orjson.dumps(e.to_json()) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self.load())


def labelled_examples(pairs: Sequence[tuple[str, str]], source: ExampleSource) -> list[TrainingExample]:
    return [TrainingExample([{"role": "user", "content": p}], a, a, None, source, p) for p, a in pairs]


def load_jsonl_examples(path: str | Path, source: ExampleSource) -> list[TrainingExample]:
    """Rows ``{"messages": [...]}`` or ``{"prompt": "..."}`` with ``"answer"``: a fixed labelled set."""
    out = []
    for n, line in enumerate(Path(path).read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        row = orjson.loads(line)
        messages = row.get("messages") or [{"role": "user", "content": row.get("prompt")}]
        if "answer" not in row or not isinstance(messages[-1].get("content"), str):
            raise ValueError(f"{path}:{n}: a row needs messages or prompt, and answer")
        out.append(TrainingExample(messages, row["answer"], row["answer"], None, source, str(n)))
    return out


# Seeds far apart so replay samples and the regression set never share items by construction.
_BASE_REPLAY_SEED = 1_000_003
_REGRESSION_SEED = 7_000_001


def base_replay_examples(n: int, path: str | None = None) -> list[TrainingExample]:
    """Base-skill examples to replay: rows of ``path`` (JSONL) or testbed base-task samples."""
    if path:
        return load_jsonl_examples(path, "base")[:n]
    return labelled_examples(sample(BASE_TASKS, n, _BASE_REPLAY_SEED), "base")


def regression_examples(n: int, path: str | None = None) -> list[TrainingExample]:
    """The fixed regression set every candidate and the live version are scored on."""
    if path:
        return load_jsonl_examples(path, "base")[:n]
    pairs = sample(BASE_TASKS, n, _REGRESSION_SEED)
    replay_prompts = {p for p, _ in sample(BASE_TASKS, 4096, _BASE_REPLAY_SEED)}
    return labelled_examples([(p, a) for p, a in pairs if p not in replay_prompts], "base")


def mix_replay(
    new: Sequence[TrainingExample],
    past: Sequence[TrainingExample],
    base: Sequence[TrainingExample],
    *,
    ratio: float,
    base_share: float,
    rng: random.Random,
) -> list[TrainingExample]:
    """``new`` plus ``ratio × len(new)`` replayed examples (``base_share`` of them base skills), shuffled."""
    want = round(ratio * len(new))
    n_base = min(len(base), round(want * base_share)) if base else 0
    n_past = min(len(past), want - n_base)
    n_base = min(len(base), want - n_past) if base else 0  # top up from base when little past data
    mixed = (
        list(new)
        + rng.sample(list(past), n_past)
        + [base[i % len(base)] for i in _picks(rng, len(base), n_base)]
    )
    rng.shuffle(mixed)
    return mixed


def _picks(rng: random.Random, pool: int, k: int) -> list[int]:
    if pool == 0 or k == 0:
        return []
    return rng.sample(range(pool), k) if k <= pool else [rng.randrange(pool) for _ in range(k)]
