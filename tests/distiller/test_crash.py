"""SIGKILL during training: nothing half-written becomes visible, and the restarted worker
resumes from the committed offsets (real broker, the worker as its own process)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from distillserve.adapters.registry import AdapterRegistry
from distillserve.launchers.local_broker import LocalBroker
from tests.support.broker import create_topics, running_broker, teacher_log_config
from tests.support.distiller_worker import distiller_config, log_to_broker, wait_for, write_config
from tests.support.processes import free_port, python_module, running
from tests.support.teacher_records import teacher_records
from tests.support.tiny_student import build_tiny_student

N = 64


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(c.committed(TopicPartition(topic, p)) or 0 for p in range(partitions))
    finally:
        c.close()


def test_sigkill_mid_training_then_resume(broker: LocalBroker, tmp_path: Path) -> None:
    base = build_tiny_student(tmp_path / "tiny")
    tl = teacher_log_config(broker, tmp_path)
    create_topics(broker, tl)
    log_to_broker(tl, teacher_records(["reverse"], N, seed=21))
    cfg = distiller_config(
        tmp_path, tl, base_model=str(base), trigger={"records": N}, optim={"epochs": 500, "batch_size": 16}
    )
    cfg["registry"]["url"] = str(tmp_path / "registry")
    path = write_config(tmp_path, cfg)
    reg = AdapterRegistry(cfg["registry"]["url"], str(base))
    group = cfg["distiller"].get("group_id", "distillserve-distiller")
    port = cfg["monitoring"]["distiller_metrics_port"]
    log1 = tmp_path / "first.log"
    cmd = python_module("distillserve", "distill", "--config", str(path))
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/metrics", log_path=log1, timeout=120) as proc:
        wait_for(lambda: "training on" in log1.read_text(), 300, proc, "training to start")
        wait_for(
            lambda: log1.read_text().count("it/s]") + log1.read_text().count("s/it]") >= 3, 300, proc, "steps"
        )
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert reg.versions() == [] and reg.live() is None  # nothing visible, nothing promotable
    assert committed_total(broker.bootstrap_servers, group, tl.topic, tl.partitions) == 0

    # Restart (short training this time): it reads the same records again and registers them.
    cfg["monitoring"]["distiller_metrics_port"] = port2 = free_port()
    cfg["distiller"]["optim"]["epochs"] = 1
    path2 = write_config(tmp_path, cfg, "restart.yaml")
    log2 = tmp_path / "second.log"
    cmd2 = python_module("distillserve", "distill", "--config", str(path2))
    with running(cmd2, ready_url=f"http://127.0.0.1:{port2}/metrics", log_path=log2, timeout=120) as proc2:
        wait_for(lambda: reg.versions() == ["v1"], 300, proc2, "the resumed run's version")
        wait_for(
            lambda: committed_total(broker.bootstrap_servers, group, tl.topic, tl.partitions) == N,
            60,
            proc2,
            "offsets committed after registration",
        )
        metrics = httpx.get(f"http://127.0.0.1:{port2}/metrics").text
        assert "distillserve_distiller_last_run_timestamp_seconds" in metrics
    card = reg.card("v1")
    assert sum(o.last - o.first + 1 for o in card.offsets) == N and all(o.first == 0 for o in card.offsets)
    assert card.records["seen"] == N
    assert not list(Path(reg.root, "staging").iterdir())
