"""The distiller's side of the log on a real broker: crash-safe commits, dead letters, lag."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from distillserve.launchers.local_broker import LocalBroker
from distillserve.teacher_log.consumer import TeacherLogConsumer
from distillserve.teacher_log.kafka_sink import KafkaSink
from tests.support.broker import create_topics, read_topic, running_broker, teacher_log_config
from tests.support.processes import child_env, python_module
from tests.teacher_log.test_kafka_sink import make_record


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def _log_records(cfg, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    sink = KafkaSink(cfg)
    sink.start_background()
    ids = []
    for i in range(n):
        rec = make_record(i)
        ids.append(rec.request_id)
        sink.submit(rec)
    assert sink.wait_delivered(30)
    sink.close()
    return ids


def _consume_all(consumer: TeacherLogConsumer, want: int, timeout: float = 40) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        batch = consumer.poll_batch(max_records=200, timeout_s=1.0)
        got += [r.record.request_id for r in batch.records]
        consumer.commit(batch)
    return got


def test_consumer_killed_mid_batch_replacement_resumes_from_commit(
    broker: LocalBroker, tmp_path: Path
) -> None:
    cfg = teacher_log_config(broker, tmp_path)
    create_topics(broker, cfg)
    ids = _log_records(cfg, 400)
    out = tmp_path / "durable-ids.txt"
    worker = subprocess.Popen(
        python_module("tests.support.teacher_log_worker", cfg.model_dump_json(), "g1", str(out), "3"),
        env=child_env(),
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert worker.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith(b"MIDBATCH"):
            line = worker.stdout.readline()
            assert line, f"worker exited: {lines}"
            lines.append(line)
        os.killpg(worker.pid, signal.SIGKILL)  # with a batch in hand, not committed
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    done_before = out.read_text().split()
    assert len(lines) == 4 and 0 < len(done_before) < 400
    with TeacherLogConsumer(cfg, "g1") as replacement:
        rest = _consume_all(replacement, 400 - len(done_before))
        # Nothing lost, nothing the dead worker had made durable is read again.
        assert sorted(done_before + rest) == sorted(ids)
        assert replacement.lag() == 0
        assert sum(replacement.committed().values()) == 400


def test_malformed_records_are_dead_lettered_and_consumer_keeps_going(
    broker: LocalBroker, tmp_path: Path
) -> None:
    cfg = teacher_log_config(broker, tmp_path, partitions=1)
    create_topics(broker, cfg)
    good = [make_record(i).to_json() for i in range(3)]
    unknown_version = orjson.dumps({**orjson.loads(good[0]), "schema_version": 99})
    invalid_fields = orjson.dumps({"schema_version": 1, "request_id": "r", "key": "k"})  # no response etc.
    values = [good[0], b"{not json", good[1], unknown_version, b"[1, 2]", invalid_fields, b"", good[2]]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    for v in values:
        producer.send(cfg.topic, key=b"k", value=v)
    producer.flush()
    producer.close()
    with TeacherLogConsumer(cfg, "g-dlq") as consumer:
        got, dead = [], 0
        deadline = time.monotonic() + 30
        while len(got) + dead < len(values) and time.monotonic() < deadline:
            batch = consumer.poll_batch(max_records=100, timeout_s=1.0)
            got += [r.record.request_id for r in batch.records]
            dead += batch.dead_lettered
            consumer.commit(batch)
        assert got == ["req-000000", "req-000001", "req-000002"] and dead == 5
        assert consumer.lag() == 0  # committed past the dead letters too
    letters = sorted(
        read_topic(broker.bootstrap_servers, cfg.dead_letter_topic, expect=5), key=lambda m: m.offset
    )
    assert [m.value for m in letters] == [b"{not json", unknown_version, b"[1, 2]", invalid_fields, b""]
    reasons = [m.headers["reason"].decode() for m in letters]
    assert "schema_version 99" in reasons[1] and "JSON object" in reasons[2] and "empty" in reasons[4]
    assert all(m.headers["source"].decode().startswith(cfg.topic + "/0/") for m in letters)


def test_lag_is_highwater_minus_committed(broker: LocalBroker, tmp_path: Path) -> None:
    cfg = teacher_log_config(broker, tmp_path)
    create_topics(broker, cfg)
    _log_records(cfg, 120)
    with TeacherLogConsumer(cfg, "g-lag") as consumer:
        batch = consumer.poll_batch(max_records=50, timeout_s=15)
        assert 0 < len(batch) <= 50
        # Nothing committed yet: the whole log counts (for the partitions fetched so far).
        lag_before = consumer.lag()
        consumer.commit(batch)
        assert consumer.lag() == lag_before - len(batch)
