"""Start servers for tests on free loopback ports, and stop them by PID, also when a test fails."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this checkout's code first, offline, caches in the repo."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None, ok=(200,)) -> None:
    """Poll ``url`` until it answers with a status in ``ok``; fail early if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            r = httpx.get(url, timeout=2.0)
            if r.status_code in ok:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s (last: {last!r})")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def running(
    args: Sequence[str],
    *,
    ready_url: str | None = None,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` in its own process group; yield once ``ready_url`` answers; always stop it."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        list(args),
        env=child_env(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd or REPO_ROOT,
    )
    try:
        if ready_url:
            try:
                wait_http(ready_url, timeout, proc)
            except Exception:
                if log_path and log_path.exists():
                    sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
                raise
        yield proc
    finally:
        stop_process(proc)
        if log_path:
            log.close()  # type: ignore[union-attr]


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
