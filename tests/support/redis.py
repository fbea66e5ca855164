"""A real Redis (Debian's ``redis-server``) for tests: on a free loopback port, nothing persisted,
stopped by its PID when the block ends, also when the test fails.

    with running_redis(tmp_path) as redis_url:   # "redis://127.0.0.1:PORT"
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from distillserve.launchers.child_process import start_process, stop_process
from tests.support.processes import free_port


def _wait_ping(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        client.close()


@contextlib.contextmanager
def running_redis(tmp: Path, *, timeout: float = 20.0) -> Iterator[str]:
    port = free_port()
    log = tmp / f"redis-{port}.log"
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = start_process(args, log_path=log, cwd=tmp)
    try:
        _wait_ping(proc, port, timeout)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(proc)
