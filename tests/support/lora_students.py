"""Student replicas for fleet tests: the embedded engine served on vLLM's OpenAI + LoRA wire
(``distillserve.serving.lora_student_server``), each its own process on a free port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port, python_module, running
from tests.support.servers import Server


@contextlib.contextmanager
def start_lora_student(tmp: Path, model_path: Path, *, name: str = "student") -> Iterator[Server]:
    port = free_port()
    log = tmp / f"lora-student-{port}.log"
    cmd = python_module(
        "distillserve.serving.lora_student_server",
        "--port",
        str(port),
        "--model-path",
        str(model_path),
        "--name",
        name,
    )
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/healthz", log_path=log, timeout=120) as proc:
        yield Server(f"http://127.0.0.1:{port}/v1", port, proc.pid, log)
