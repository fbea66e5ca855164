"""Run ``distillserve triton-serve`` (a real tritonserver via PyTriton) for tests, and stop it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.processes import REPO_ROOT, child_env, free_port, stop_process, wait_http

#: The Triton server's interpreter: numpy<2 for tritonserver's Python backend stub (scripts/setup.sh).
TRITON_PYTHON = REPO_ROOT / ".venv-triton" / "bin" / "python"


@dataclass
class TritonServer:
    http_url: str  # http://127.0.0.1:P
    grpc_url: str  # 127.0.0.1:P
    proc: subprocess.Popen[bytes]
    workspace: Path
    log_path: Path


def shm_entries(pid: int) -> list[str]:
    """Shared-memory files PyTriton made for the server process ``pid`` (it puts the pid in the name)."""
    return sorted(p.name for p in Path("/dev/shm").iterdir() if p.name.startswith(f"pytrtion{pid}-"))


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_triton(server: TritonServer, timeout: float = 60.0) -> float:
    """SIGTERM the PyTriton parent only (it tears down tritonserver and the stubs); seconds it took.

    Signalling the whole group would hit tritonserver and the stubs behind PyTriton's back;
    whatever is still alive after ``timeout`` is killed with the group.
    """
    proc = server.proc
    started = time.monotonic()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    took = time.monotonic() - started
    deadline = time.monotonic() + 10
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)  # stubs exit a moment after the parent
    stop_process(proc)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return took


@contextlib.contextmanager
def start_triton(
    tmp: Path, models: dict[str, dict[str, Any]], *, timeout: float = 120
) -> Iterator[TritonServer]:
    """``models``: Triton model name -> backend config; yields once every model is ready."""
    if not TRITON_PYTHON.exists():
        raise RuntimeError(f"{TRITON_PYTHON} missing: run scripts/setup.sh (it makes .venv-triton)")
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    models_file = tmp / f"triton-models-{http}.yaml"
    models_file.write_text(yaml.safe_dump(models))
    workspace = tmp / f"triton-ws-{http}"
    log_path = tmp / f"triton-{http}.log"
    cmd = [
        str(TRITON_PYTHON), "-m", "distillserve", "triton-serve", "--models", str(models_file),
        "--http-port", str(http), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics),
        "--workspace", str(workspace),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, env=child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO_ROOT
        )
    server = TritonServer(f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc_port}", proc, workspace, log_path)
    try:
        try:
            # /v2/health/ready turns true before the models have loaded: wait on each model.
            for name in models:
                wait_http(f"{server.http_url}/v2/models/{name}/ready", timeout, proc)
        except Exception:
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
            raise
        yield server
    finally:
        stop_triton(server)


def model_ready(server: TritonServer, name: str) -> bool:
    try:
        return httpx.get(f"{server.http_url}/v2/models/{name}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
