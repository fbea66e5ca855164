"""Where the distiller reads teacher-log records: the seam and its implementations.

A source hands out records with their position (topic, partition, offset) and commits
positions only when asked, so the worker can commit after the version trained on them is
durably registered. Uncommitted records come back after a restart (at-least-once).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from distillserve.adapters.registry import OffsetRange
from distillserve.teacher_log.record import TeacherLogRecord


@dataclass(frozen=True)
class SourcedRecord:
    value: bytes | TeacherLogRecord  # raw JSON, or already parsed by the consumer
    topic: str
    partition: int
    offset: int


class RecordSource(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[SourcedRecord]:
        """Up to ``max_records`` records after the last polled ones; waits at most ``timeout_s``."""

    def commit(self, records: Sequence[SourcedRecord]) -> None:
        """Durably mark ``records`` (everything polled since the last commit) as consumed."""

    def lag(self) -> int | None:
        """Records not yet committed (None when unknown)."""

    def close(self) -> None: ...


def offset_ranges(records: Sequence[SourcedRecord]) -> list[OffsetRange]:
    """First and last offset per partition, for the adapter card's lineage."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for r in records:
        lo, hi = spans.get((r.topic, r.partition), (r.offset, r.offset))
        spans[(r.topic, r.partition)] = (min(lo, r.offset), max(hi, r.offset))
    return [
        OffsetRange(topic=t, partition=p, first=lo, last=hi) for (t, p), (lo, hi) in sorted(spans.items())
    ]


def next_offsets(records: Sequence[SourcedRecord]) -> dict[tuple[str, int], int]:
    """Per partition, the offset to resume from once ``records`` are consumed (Kafka's convention)."""
    out: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        out[key] = max(out.get(key, 0), r.offset + 1)
    return out


class JsonlFileSource:
    """The JSONL file that the ``file`` teacher-log sink appends to; offset = line number.

    The committed line count lives next to the file (``<file>.<group>.offset``), replaced atomically.
    """

    def __init__(self, path: str | Path, group_id: str) -> None:
        self.path = Path(path)
        self.offset_path = self.path.with_name(f"{self.path.name}.{group_id}.offset")
        self.committed = self._read_committed()
        self.position = self.committed
        self._byte_pos: int | None = None

    def _read_committed(self) -> int:
        if self.offset_path.exists():
            return int(orjson.loads(self.offset_path.read_bytes())["next"])
        return 0

    def poll(self, max_records: int, timeout_s: float) -> list[SourcedRecord]:
        if not self.path.exists():
            return []
        out: list[SourcedRecord] = []
        with self.path.open("rb") as fh:
            line_no = 0
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a line still being written
                if line_no >= self.position and line.strip():
                    out.append(SourcedRecord(line.rstrip(b"\n"), self.path.name, 0, line_no))
                    if len(out) >= max_records:
                        line_no += 1
                        break
                line_no += 1
        if out:
            self.position = out[-1].offset + 1
        return out

    def commit(self, records: Sequence[SourcedRecord]) -> None:
        nxt = next_offsets(records).get((self.path.name, 0))
        if nxt is None or nxt <= self.committed:
            return
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        tmp.write_bytes(orjson.dumps({"next": nxt}))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.offset_path)
        self.committed = nxt

    def lag(self) -> int | None:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as fh:
            total = sum(1 for line in fh if line.endswith(b"\n"))
        return max(0, total - self.committed)

    def close(self) -> None:
        return None
