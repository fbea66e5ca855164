"""Child processes that distillserve starts (broker, teacher, gateway, distiller, engines):
each in its own process group, readiness polled over HTTP, stopped by PID — SIGTERM to the
whole group, then SIGKILL for whatever is left — so nothing outlives its owner."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import httpx


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this checkout's code first, offline, unbuffered."""
    from distillserve.config import REPO_ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


#: ``LOW-HIGH``: hand out ports from this range only (e.g. one range per parallel test worker).
PORT_RANGE_ENV = "DISTILLSERVE_PORT_RANGE"
_handed_out: set[int] = set()


def free_port() -> int:
    """A free TCP port on the loopback interface.

    By default the kernel picks one. With ``DISTILLSERVE_PORT_RANGE`` set, the port comes from that
    range and is never handed out twice by this process: between the moment a port is chosen and
    the moment its server binds it, no other process that draws from another range (or the
    kernel's ephemeral range, for outgoing connections) can take it.
    """
    span = os.environ.get(PORT_RANGE_ENV)
    if not span:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    low, high = (int(p) for p in span.split("-"))
    ports = list(range(low, high + 1))
    random.shuffle(ports)  # children of this process draw from the same range: rarely the same port
    for port in ports:
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port left in {PORT_RANGE_ENV}={span}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_http(
    url: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    ok: tuple[int, ...] = (200,),
) -> None:
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
    """SIGTERM the process group, then SIGKILL what is left (also after the leader exited)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # Children of the leader (engine workers) may still hold the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def start_process(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` in a new session (its own process group), output to ``log_path``."""
    log: IO[bytes] | int = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(args),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr] - the child keeps its own descriptor


@contextlib.contextmanager
def running(
    args: Sequence[str],
    *,
    ready_url: str | None = None,
    ready: Callable[[subprocess.Popen[bytes]], None] | None = None,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
    on_fail: Callable[[str], None] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args``; yield once ``ready_url`` answers (or ``ready`` returns); always stop it."""
    proc = start_process(args, env=env, log_path=log_path, cwd=cwd)
    try:
        try:
            if ready_url:
                wait_http(ready_url, timeout, proc)
            if ready is not None:
                ready(proc)
        except Exception:
            if on_fail and log_path and log_path.exists():
                on_fail(log_path.read_text(errors="replace")[-4000:])
            raise
        yield proc
    finally:
        stop_process(proc)
