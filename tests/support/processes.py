"""Start servers for tests on free loopback ports, and stop them by PID, also when a test fails."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from distillserve.launchers import child_process
from distillserve.launchers.child_process import child_env, free_port, stop_process, wait_http

__all__ = ["REPO_ROOT", "child_env", "free_port", "python_module", "running", "stop_process", "wait_http"]

REPO_ROOT = Path(__file__).resolve().parents[2]


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
    """Run ``args`` in its own process group; yield once ``ready_url`` answers; always stop it.
    On a failed start the tail of its log goes to stderr, so the test output says why."""
    with child_process.running(
        args,
        ready_url=ready_url,
        timeout=timeout,
        env=child_env(env),
        log_path=log_path,
        cwd=cwd or REPO_ROOT,
        on_fail=sys.stderr.write,
    ) as proc:
        yield proc


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
