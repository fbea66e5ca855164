"""The Kafka sink against a real tansu broker: exactly once when healthy, spooled and replayed
when the broker is away, replay after a restart, drops counted when the spool is full."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from distillserve.config import TeacherLogConfig
from distillserve.launchers.local_broker import LocalBroker
from distillserve.monitoring.metrics import TEACHER_LOG_RECORDS
from distillserve.teacher_log.kafka_sink import KafkaSink, decode_entry, open_spool
from distillserve.teacher_log.record import TeacherLogRecord, conversation_key
from tests.support.broker import create_topics, read_topic, running_broker, teacher_log_config
from tests.support.processes import free_port


def make_record(i: int, conversation: int | None = None) -> TeacherLogRecord:
    conv = i % 97 if conversation is None else conversation
    messages = [{"role": "user", "content": f"reverse: word{conv}"}]
    return TeacherLogRecord(
        request_id=f"req-{i:06d}",
        key=conversation_key(messages, None, None),
        messages=messages,
        sampling={"temperature": 0},
        difficulty=0.9,
        teacher_model="teacher",
        teacher_backend="testbed",
        response_text=f"{conv}drow",
        finish_reason="stop",
        usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    )


def ids_in(bootstrap: str, topic: str, expect: int, timeout: float = 60) -> Counter[str]:
    return Counter(
        orjson.loads(m.value)["request_id"]
        for m in read_topic(bootstrap, topic, expect=expect, timeout=timeout)
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def test_10k_records_arrive_exactly_once_keyed_by_conversation(broker: LocalBroker, tmp_path: Path) -> None:
    cfg = teacher_log_config(broker, tmp_path)
    create_topics(broker, cfg)
    sink = KafkaSink(cfg)
    sink.start_background()
    records = [make_record(i) for i in range(10_000)]
    t0 = time.perf_counter()
    for r in records:
        sink.submit(r)
    submit_s = time.perf_counter() - t0
    assert sink.wait_delivered(60), sink.stats
    sink.close()
    assert sink.stats.produced == 10_000 and sink.stats.spooled == 0
    messages = read_topic(broker.bootstrap_servers, cfg.topic, expect=10_000)
    ids = Counter(orjson.loads(m.value)["request_id"] for m in messages)
    assert ids == Counter(r.request_id for r in records)  # each exactly once
    # One conversation, one partition, in submission order.
    by_key: dict[bytes | None, set[int]] = {}
    for m in messages:
        by_key.setdefault(m.key, set()).add(m.partition)
    assert len(by_key) == 97 and all(len(p) == 1 for p in by_key.values())
    per_conv = [m for m in sorted(messages, key=lambda m: m.offset) if m.key == messages[0].key]
    seq = [orjson.loads(m.value)["request_id"] for m in per_conv]
    assert seq == sorted(seq)
    # The request path only enqueues (a generous bound for a loaded 2-core machine).
    assert submit_s / 10_000 < 0.001


def test_no_broker_spools_then_replays_in_order_when_it_comes(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    fake = LocalBroker(port)
    cfg = teacher_log_config(fake, tmp_path, delivery_timeout_s=1.0, retry_backoff_s=0.3)
    sink = KafkaSink(cfg)
    sink.start_background()
    for i in range(300):
        sink.submit(make_record(i, conversation=1))
    deadline = time.monotonic() + 20
    while sink.stats.spooled < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.stats.spooled == 300 and sink.spool.pending_bytes > 0
    with running_broker(tmp_path, port=port) as broker:
        create_topics(broker, cfg)
        for i in range(300, 400):
            sink.submit(make_record(i, conversation=1))
        assert sink.wait_delivered(60), sink.stats
        sink.close()
        messages = sorted(read_topic(broker.bootstrap_servers, cfg.topic, expect=400), key=lambda m: m.offset)
    seq = [orjson.loads(m.value)["request_id"] for m in messages]
    assert seq == [f"req-{i:06d}" for i in range(400)]  # one conversation: spool first, in order
    assert sink.stats.replayed >= 300
    assert not list(Path(cfg.spool_dir or "").glob("*.seg")) or sink.spool.is_empty()


def test_spool_budget_exhausted_drops_and_counts(tmp_path: Path) -> None:
    fake = LocalBroker(free_port())  # never started: everything must go to the spool
    cfg = teacher_log_config(fake, tmp_path, spool_max_bytes=20_000, delivery_timeout_s=0.5)
    before = TEACHER_LOG_RECORDS.labels("dropped")._value.get()
    sink = KafkaSink(cfg)
    sink.start_background()
    for i in range(200):
        sink.submit(make_record(i))
    sink.close()
    assert 0 < sink.stats.spooled < 200
    assert sink.spool.dropped == 200 - sink.stats.spooled
    assert TEACHER_LOG_RECORDS.labels("dropped")._value.get() - before == sink.spool.dropped


def test_default_spool_slots_let_two_gateways_share_a_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILLSERVE_CACHE_DIR", str(tmp_path))
    cfg = TeacherLogConfig(bootstrap_servers=f"127.0.0.1:{free_port()}")
    a, b = open_spool(cfg), open_spool(cfg)
    assert (
        a.directory != b.directory
        and a.directory.parent == b.directory.parent == tmp_path / "teacher-log-spool"
    )
    a.append([b"left behind by a crashed gateway"])
    a.close()
    c = open_spool(cfg)  # the next gateway takes the free slot, and with it the records
    assert c.directory == a.directory and c.read(10).payloads == [b"left behind by a crashed gateway"]
    b.close()
    c.close()


def test_record_too_large_for_the_broker_is_dropped_and_counted_not_retried(
    broker: LocalBroker, tmp_path: Path
) -> None:
    cfg = teacher_log_config(broker, tmp_path, max_record_bytes=4000)
    create_topics(broker, cfg)
    sink = KafkaSink(cfg)
    sink.start_background()
    big = make_record(1).model_copy(update={"response_text": "x" * 10_000})
    for r in [make_record(0), big, make_record(2)]:
        sink.submit(r)
    assert sink.wait_delivered(30), sink.stats  # not stuck retrying the big one
    sink.close()
    assert sink.stats.dropped == 1 and sink.stats.produced == 2
    assert set(ids_in(broker.bootstrap_servers, cfg.topic, 2)) == {"req-000000", "req-000002"}


def test_slow_broker_spools_then_replays(tmp_path: Path) -> None:
    # SIGSTOP makes the real broker hang with its connections open: the "slow" case.
    with running_broker(tmp_path) as broker:
        cfg = teacher_log_config(broker, tmp_path, delivery_timeout_s=1.0, retry_backoff_s=0.3)
        create_topics(broker, cfg)
        sink = KafkaSink(cfg)
        sink.start_background()
        for i in range(50):
            sink.submit(make_record(i))
        assert sink.wait_delivered(30)
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            for i in range(50, 150):
                sink.submit(make_record(i))
            deadline = time.monotonic() + 20
            while not (sink.spooling and sink.stats.spooled >= 100) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sink.spooling and sink.stats.spooled >= 100, sink.stats
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        assert sink.wait_delivered(60), sink.stats
        sink.close()
        ids = ids_in(broker.bootstrap_servers, cfg.topic, 150)
    # Nothing lost; a record the hung broker took before the sink gave up may arrive twice.
    assert set(ids) == {f"req-{i:06d}" for i in range(150)}
    assert sum(ids.values()) - 150 <= 100


def test_security_settings_pass_through_to_kafka_python() -> None:
    from kafka import KafkaConsumer, KafkaProducer

    from distillserve.teacher_log.kafka_options import client_options

    cfg = TeacherLogConfig(
        bootstrap_servers="b1:9093, b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="gateway",
        sasl_password="s3cret",  # type: ignore[arg-type]
        ssl_cafile="/etc/kafka/ca.pem",
    )
    opts = client_options(cfg)
    assert opts == {
        "bootstrap_servers": ["b1:9093", "b2:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "gateway",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/kafka/ca.pem",
    }
    # Every name is one kafka-python's producer and consumer know.
    assert set(opts) <= set(KafkaProducer.DEFAULT_CONFIG) & set(KafkaConsumer.DEFAULT_CONFIG)


def test_closed_before_start_keeps_submitted_records_in_the_spool(tmp_path: Path) -> None:
    cfg = teacher_log_config(LocalBroker(free_port()), tmp_path)
    sink = KafkaSink(cfg)
    for i in range(5):
        sink.submit(make_record(i))
    sink.close()
    again = KafkaSink(cfg)
    assert again.spooling  # a restart replays them first
    assert [orjson.loads(decode_entry(p)[1])["request_id"] for p in again.spool.read(10).payloads] == [
        f"req-{i:06d}" for i in range(5)
    ]
    again.close()
