"""The teacher-log topic as a distiller source, over the teacher log's consumer group.

``TeacherLogConsumer`` does the Kafka work (manual commits, dead letters for malformed
records, lag); this adapter keeps every batch polled since the last commit, so one commit
covers them all, dead-lettered offsets included, once the worker says they are safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from distillserve.config import TeacherLogConfig
from distillserve.distiller.sources import SourcedRecord
from distillserve.teacher_log.consumer import Batch, TeacherLogConsumer


class KafkaRecordSource:
    def __init__(self, cfg: TeacherLogConfig, group_id: str, *, session_timeout_ms: int = 6000) -> None:
        self.topic = cfg.topic
        self.consumer = TeacherLogConsumer(cfg, group_id, session_timeout_ms=session_timeout_ms)
        self._uncommitted = Batch()

    def poll(self, max_records: int, timeout_s: float) -> list[SourcedRecord]:
        batch = self.consumer.poll_batch(max_records=max_records, timeout_s=timeout_s)
        for p, (first, last) in batch.offsets.items():
            self._uncommitted._see(p, first)
            self._uncommitted._see(p, last)
        self._uncommitted.dead_lettered += batch.dead_lettered
        return [SourcedRecord(r.record, self.topic, r.partition, r.offset) for r in batch.records]

    def commit(self, records: Sequence[SourcedRecord]) -> None:
        """Commit everything polled so far (the worker consumes all pending records at once)."""
        for r in records:
            self._uncommitted._see(r.partition, r.offset)
        self.consumer.commit(self._uncommitted)
        self._uncommitted = Batch()

    def lag(self) -> int | None:
        return self.consumer.lag()

    def close(self) -> None:
        self.consumer.close()
