"""A real Kafka-protocol broker (tansu) for tests, and a way to read a whole topic back.

    with running_broker(tmp_path) as broker:            # in memory
    with running_broker(tmp_path, durable=True) as b:   # S3 API on a local directory; survives restarts
        cfg = teacher_log_config(b, tmp_path)           # TeacherLogConfig pointing at it
        b.stop_broker_only(); b.start()                  # an outage on the same port, data kept

Every process is stopped by PID when the block ends, also when the test fails.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from distillserve.config import TeacherLogConfig
from distillserve.launchers.local_broker import LocalBroker, topics_for


def teacher_log_config(broker: LocalBroker, tmp: Path, **overrides: object) -> TeacherLogConfig:
    """Unique topic names per call, so tests sharing a module-scoped broker do not see each other."""
    suffix = uuid.uuid4().hex[:8]
    fields: dict[str, object] = {
        "sink": "kafka",
        "bootstrap_servers": broker.bootstrap_servers,
        "topic": f"teacher-log-{suffix}",
        "dead_letter_topic": f"teacher-log-{suffix}.dlq",
        "spool_dir": str(tmp / f"spool-{suffix}"),
        "compression": "lz4",
    }
    fields.update(overrides)
    return TeacherLogConfig(**fields)  # type: ignore[arg-type]


def create_topics(broker: LocalBroker, cfg: TeacherLogConfig) -> None:
    for topic in topics_for(cfg):
        broker.create_topic(topic)


@contextlib.contextmanager
def running_broker(tmp: Path, *, durable: bool = False, port: int | None = None) -> Iterator[LocalBroker]:
    """Start tansu on a free loopback port (durable: with its data under ``tmp``); always stop it."""
    data_dir = tmp / f"broker-data-{uuid.uuid4().hex[:6]}" if durable else None
    broker = LocalBroker(port, data_dir=data_dir, log_dir=tmp / "broker-logs")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@dataclass
class TopicMessage:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def read_topic(
    bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 30.0
) -> list[TopicMessage]:
    """Every message of ``topic`` from the beginning (no consumer group, nothing committed).

    Reads until each partition's position reaches its high watermark (tansu's ``end_offsets``
    is too low, so the watermark comes from fetch responses), and, when ``expect`` is given,
    until that many messages arrived or ``timeout`` passed.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        deadline = time.monotonic() + timeout
        parts: set[int] | None = None
        while parts is None and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                time.sleep(0.2)
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[TopicMessage] = []
        while time.monotonic() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=300, max_records=10_000).items():
                out += [
                    TopicMessage(tp.partition, m.offset, m.key, m.value, dict(m.headers or [])) for m in msgs
                ]

            caught_up = all(
                consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp)
                for tp in tps
            )
            if caught_up and (expect is None or len(out) >= expect):
                break
        return out
    finally:
        consumer.close()
