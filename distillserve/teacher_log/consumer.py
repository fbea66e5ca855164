"""Reading the teacher log as a consumer group, for the distiller.

At-least-once and explicit: ``poll_batch`` hands over parsed records with the offset range
they cover per partition; the caller makes their effect durable (a dataset file written, an
adapter trained and registered) and only then calls ``commit(batch)``. A consumer killed before
that leaves the batch uncommitted, and the group's next member reads it again.

Malformed records (not JSON, an unknown schema version, invalid fields) do not stop the
consumer: each goes to the dead-letter topic with the reason in its headers, and its offset is
committed with the batch once the dead letter is acknowledged.

Lag is the high watermark minus the committed offset per partition (tansu's ``end_offsets``
answers too low, so the watermark comes from fetch responses).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from distillserve.config import TeacherLogConfig
from distillserve.monitoring import metrics
from distillserve.teacher_log.kafka_options import client_options
from distillserve.teacher_log.record import TeacherLogRecord

log = logging.getLogger(__name__)


@dataclass
class ConsumedRecord:
    record: TeacherLogRecord
    partition: int
    offset: int


@dataclass
class Batch:
    """Records of one poll and, per partition, the first and last offset they cover.

    The ranges include dead-lettered records, so committing the batch moves past them too.
    """

    records: list[ConsumedRecord] = field(default_factory=list)
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    dead_lettered: int = 0

    def __len__(self) -> int:
        return len(self.records)

    def covers(self) -> int:
        """How many log offsets this batch spans (records plus dead letters)."""
        return sum(last - first + 1 for first, last in self.offsets.values())

    def _see(self, partition: int, offset: int) -> None:
        first, last = self.offsets.get(partition, (offset, offset))
        self.offsets[partition] = (min(first, offset), max(last, offset))


def parse_record(value: bytes | None) -> TeacherLogRecord:
    """A record from its Kafka value; ``ValueError`` says why it is malformed."""
    if not value:
        raise ValueError("empty message value")
    return TeacherLogRecord.from_json(value)  # pydantic's ValidationError is a ValueError


class TeacherLogConsumer:
    def __init__(
        self,
        cfg: TeacherLogConfig,
        group_id: str,
        *,
        session_timeout_ms: int = 6000,
        max_poll_interval_ms: int = 3_600_000,
        client_id: str = "distillserve-distiller",
    ) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        self.cfg = cfg
        self.group_id = group_id
        opts = client_options(cfg)
        # tansu holds a JoinGroup for half the session timeout, so keep it short; training
        # between polls can take long, hence the generous poll interval.
        self._consumer = KafkaConsumer(
            cfg.topic,
            **opts,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 3),
            max_poll_interval_ms=max_poll_interval_ms,
        )
        self._dlq = KafkaProducer(**opts, acks="all", linger_ms=5)
        self._lag = metrics.TEACHER_LOG_CONSUMER_LAG.labels(group_id)

    def poll_batch(self, max_records: int = 500, timeout_s: float = 1.0) -> Batch:
        """Up to ``max_records`` records; returns early once it caught up with the log."""
        batch = Batch()
        deadline = time.monotonic() + timeout_s
        while batch.covers() < max_records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = self._consumer.poll(
                timeout_ms=int(remaining * 1000), max_records=max_records - batch.covers()
            )
            if not polled:
                if batch.offsets:
                    break  # caught up
                continue
            for tp, messages in polled.items():
                for m in messages:
                    batch._see(tp.partition, m.offset)
                    try:
                        record = parse_record(m.value)
                    except ValueError as exc:
                        self._dead_letter(m, str(exc))
                        batch.dead_lettered += 1
                        continue
                    batch.records.append(ConsumedRecord(record, tp.partition, m.offset))
        return batch

    def _dead_letter(self, message: Any, reason: str) -> None:
        log.warning(
            "teacher-log record %s/%d@%d is malformed (%s): dead-lettered",
            message.topic,
            message.partition,
            message.offset,
            reason[:200],
        )
        headers = [
            ("reason", reason[:1000].encode()),
            ("source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
        ]
        self._dlq.send(
            self.cfg.dead_letter_topic, key=message.key, value=message.value or b"", headers=headers
        )
        metrics.TEACHER_LOG_RECORDS.labels("dead_lettered").inc()

    def commit(self, batch: Batch) -> None:
        """The batch's effect is durable: commit past it (dead letters acknowledged first).

        Raises kafka's ``CommitFailedError`` when the group rebalanced meanwhile; the batch is then
        read again by whichever member owns its partitions now.
        """
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        if batch.dead_lettered:
            self._dlq.flush(timeout=30)
        if not batch.offsets:
            return
        offsets = {
            TopicPartition(self.cfg.topic, p): OffsetAndMetadata(last + 1, "", -1)
            for p, (_, last) in batch.offsets.items()
        }
        self._consumer.commit(offsets)
        self.lag()

    def committed(self) -> dict[int, int]:
        """Committed offset per assigned partition (partitions without one are left out)."""
        out = {}
        for tp in self._consumer.assignment():
            c = self._consumer.committed(tp)
            if c is not None:
                out[tp.partition] = c
        return out

    def lag(self) -> int:
        """High watermark minus committed offset, summed over the assigned partitions; sets the gauge."""
        total = 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue  # no fetch answer for it yet
            total += max(0, high - (self._consumer.committed(tp) or 0))
        self._lag.set(total)
        return total

    def close(self) -> None:
        self._dlq.flush(timeout=10)
        self._dlq.close(timeout=5)
        self._consumer.close(autocommit=False)

    def __enter__(self) -> TeacherLogConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
