"""A ``RecordSource`` over one batch of teacher-log records, for driving ``Distiller.run_once``
without a broker; it records what the worker committed."""

from __future__ import annotations

from collections.abc import Sequence

from distillserve.distiller.sources import SourcedRecord


class BatchSource:
    def __init__(self, records: Sequence[bytes], first_offset: int = 0) -> None:
        self.records = [SourcedRecord(r, "teacher-log", 0, first_offset + i) for i, r in enumerate(records)]
        self.committed: list[int] = []

    def poll(self, max_records: int, timeout_s: float) -> list[SourcedRecord]:
        return self.records[:max_records]

    def commit(self, records: Sequence[SourcedRecord]) -> None:
        self.committed += [r.offset for r in records]

    def lag(self) -> int | None:
        return None

    def close(self) -> None:
        return None
