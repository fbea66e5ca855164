"""Start distillserve's own servers (gateway, testbed teacher) as real processes for tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import free_port, python_module, running


@dataclass
class Server:
    url: str  # base URL including /v1
    port: int
    pid: int
    log_path: Path


@contextlib.contextmanager
def start_testbed_teacher(tmp: Path, *args: str, name: str = "teacher") -> Iterator[Server]:
    port = free_port()
    log = tmp / f"teacher-{port}.log"
    cmd = python_module("distillserve", "testbed-teacher", "--port", str(port), "--name", name, *args)
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/healthz", log_path=log, timeout=60) as proc:
        yield Server(f"http://127.0.0.1:{port}/v1", port, proc.pid, log)


def one_engine_thread(student: dict[str, Any] | None) -> dict[str, Any] | None:
    """An embedded student (also the default one) on one engine thread unless the test says
    otherwise: tests share two cores with other processes, and a two-thread engine team waits at
    every barrier for a member the busy core preempted (54x slower, bench/engine_beside_training.py)."""
    if student is None:
        return {"kind": "embedded", "name": "student", "model_path": "testbed-student", "threads": 1}
    if student.get("kind") == "embedded":
        return {"threads": 1, **student}
    return student


@contextlib.contextmanager
def start_gateway(
    tmp: Path, config: dict[str, Any], *, timeout: float = 180, ready_path: str = "/healthz"
) -> Iterator[Server]:
    """Run ``distillserve serve`` with ``config`` (written as YAML) on a free port."""
    port = free_port()
    cfg_path = tmp / f"gateway-{port}.yaml"
    config = {**config, "server": {**config.get("server", {}), "host": "127.0.0.1", "port": port}}
    config["student"] = one_engine_thread(config.get("student"))
    cfg_path.write_text(yaml.safe_dump(config))
    log = tmp / f"gateway-{port}.log"
    cmd = python_module("distillserve", "serve", "--config", str(cfg_path))
    with running(
        cmd, ready_url=f"http://127.0.0.1:{port}{ready_path}", log_path=log, timeout=timeout
    ) as proc:
        yield Server(f"http://127.0.0.1:{port}/v1", port, proc.pid, log)
