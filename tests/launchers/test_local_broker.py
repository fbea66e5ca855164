"""The local broker (tansu): topics created, durable data kept across an outage, CLI stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from kafka import KafkaProducer

from distillserve.launchers.local_broker import LocalBroker, TopicSpec
from tests.support.broker import create_topics, read_topic, running_broker, teacher_log_config
from tests.support.processes import child_env, free_port, python_module


def _produce(bootstrap: str, topic: str, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(n):
        producer.send(topic, key=str(i % 7).encode(), value=f"m{i}".encode())
    producer.flush()
    producer.close()


def test_durable_broker_keeps_messages_across_restart_and_kill(tmp_path: Path) -> None:
    with running_broker(tmp_path, durable=True) as broker:
        cfg = teacher_log_config(broker, tmp_path)
        create_topics(broker, cfg)
        _produce(broker.bootstrap_servers, cfg.topic, 50)
        first_pid = broker.pid
        broker.stop_broker_only()
        assert broker.pid is None
        broker.start()
        create_topics(broker, cfg)  # must not recreate (and so empty) the existing topic
        assert broker.pid != first_pid
        _produce(broker.bootstrap_servers, cfg.topic, 25)
        broker.kill()
        broker.start()
        values = Counter(m.value.decode() for m in read_topic(broker.bootstrap_servers, cfg.topic, expect=75))
        assert values == Counter([f"m{i}" for i in range(50)] + [f"m{i}" for i in range(25)])


def test_memory_broker_forgets_on_restart(tmp_path: Path) -> None:
    broker = LocalBroker(topics=[TopicSpec("t", 2)], log_dir=tmp_path)
    with broker:
        _produce(broker.bootstrap_servers, "t", 10)
        assert len(read_topic(broker.bootstrap_servers, "t", expect=10)) == 10
        broker.stop()
        broker.start()
        assert read_topic(broker.bootstrap_servers, "t", timeout=3) == []
    assert broker.pid is None


def test_cli_broker_serves_topics_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        python_module("distillserve", "broker", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert f"127.0.0.1:{port}" in line and "durable" in line, line
        _produce(f"127.0.0.1:{port}", "distillserve.teacher-log", 5)
        assert len(read_topic(f"127.0.0.1:{port}", "distillserve.teacher-log", expect=5)) == 5
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        time.sleep(0.2)
        # Its children (tansu, rclone) went with it: the port is free again.
        with LocalBroker(port, data_dir=tmp_path / "data") as again:
            assert len(read_topic(again.bootstrap_servers, "distillserve.teacher-log", expect=5)) == 5
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
