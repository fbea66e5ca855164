"""The teacher-log topic as a distiller source: a Kafka consumer group with manual commits.

Auto-commit is off: offsets are committed only when the worker says the records are safe
(the version trained on them is registered). After a crash the group resumes from the last
commit. Lag is ``highwater − committed`` per partition (tansu's ``end_offsets`` is too low).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from distillserve.config import TeacherLogConfig
from distillserve.distiller.sources import SourcedRecord, next_offsets

log = logging.getLogger(__name__)


def kafka_client_options(cfg: TeacherLogConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers.split(","),
        "security_protocol": cfg.security_protocol,
    }
    if cfg.sasl_mechanism:
        opts.update(
            sasl_mechanism=cfg.sasl_mechanism,
            sasl_plain_username=cfg.sasl_username,
            sasl_plain_password=cfg.sasl_password.get_secret_value() if cfg.sasl_password else None,
        )
    if cfg.ssl_cafile:
        opts["ssl_cafile"] = cfg.ssl_cafile
    return opts


class KafkaRecordSource:
    def __init__(self, cfg: TeacherLogConfig, group_id: str, *, session_timeout_ms: int = 6000) -> None:
        from kafka import KafkaConsumer

        self.topic = cfg.topic
        self.consumer = KafkaConsumer(
            cfg.topic,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # tansu holds JoinGroup for half the session timeout: keep it short so starts are quick.
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(1000, session_timeout_ms // 3),
            max_poll_interval_ms=3_600_000,  # a training run between polls can take long
            **kafka_client_options(cfg),
        )

    def poll(self, max_records: int, timeout_s: float) -> list[SourcedRecord]:
        got = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out = [SourcedRecord(m.value, m.topic, m.partition, m.offset) for msgs in got.values() for m in msgs]
        return sorted(out, key=lambda r: (r.partition, r.offset))

    def commit(self, records: Sequence[SourcedRecord]) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in next_offsets(records).items()
        }
        if offsets:
            self.consumer.commit(offsets)

    def lag(self) -> int | None:
        from kafka import TopicPartition

        total = 0
        for p in self.consumer.assignment():
            high = self.consumer.highwater(p)
            if high is None:
                return None
            committed = self.consumer.committed(TopicPartition(p.topic, p.partition)) or 0
            total += max(0, high - committed)
        return total

    def close(self) -> None:
        self.consumer.close()
