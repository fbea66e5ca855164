"""The demo's processes: broker, testbed teacher, gateway and distiller, each a real
``distillserve`` command in its own process group, logging into the run folder, and all
stopped by PID when the demo ends (normally, on an error or on Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distillserve.config import REPO_ROOT, load_settings
from distillserve.launchers.child_process import child_env, free_port, start_process, stop_process, wait_http
from distillserve.launchers.local_broker import LocalBroker, local_broker
from distillserve.serving.keys.keyring import hash_key
from distillserve.testbed import language


@dataclass
class Endpoints:
    gateway: str  # base URL with /v1
    gateway_root: str
    teacher: str
    broker: str  # host:port
    distiller_metrics: str
    admin_key: str
    app_key: str = ""  # the traffic's API key: logged for distillation
    eval_key: str = ""  # the demo's own measurements (held-out probe, baseline): never logged


@dataclass
class Stack:
    """Started processes, in start order; stopped in reverse."""

    run_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    broker: LocalBroker | None = None
    _contexts: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def enter(self, cm: contextlib.AbstractContextManager[Any]) -> Any:
        """Run a context-managed component (the broker) for the stack's lifetime."""
        return self._contexts.enter_context(cm)

    def start(self, name: str, *args: str, ready_url: str | None = None, timeout: float = 120.0) -> None:
        log = self.run_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = start_process(
            [sys.executable, "-m", "distillserve", *args], env=child_env(), log_path=log, cwd=REPO_ROOT
        )
        self.procs[name] = proc
        if ready_url:
            try:
                wait_http(ready_url, timeout, proc)
            except Exception as exc:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"{name} did not start: {exc}\n--- {log} ---\n{tail}") from exc

    def check_alive(self) -> None:
        if self.broker is not None and not self.broker.running:
            raise RuntimeError(f"the broker exited; see {self.run_dir}/logs")
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.run_dir}/logs/{name}.log"
                )

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            stop_process(self.procs[name], timeout=20)
        self._contexts.close()

    def pids(self) -> list[int]:
        pids = [p.pid for p in self.procs.values()]
        return pids + ([self.broker.pid] if self.broker and self.broker.pid else [])


#: The student's model name on the gateway: requests that name it are pinned to it.
STUDENT_NAME = "student"


def student_config(student: str, ports: dict[str, int]) -> dict[str, Any]:
    students: dict[str, dict[str, Any]] = {
        # One engine thread: the distiller trains on the same cores, and a team of two threads
        # waits on its preempted member (bench/engine_beside_training.py: 50x slower).
        "embedded": {"kind": "embedded", "name": STUDENT_NAME, "model_path": "testbed-student", "threads": 1},
        "smollm2": {"kind": "embedded", "name": STUDENT_NAME, "model_path": "smollm2", "threads": 1},
        # vLLM serves SmolLM2 (``vllm-serve`` reads model_path from this config; the distiller too).
        "vllm": {
            "kind": "vllm",
            "name": STUDENT_NAME,
            "url": f"http://127.0.0.1:{ports['vllm']}/v1",
            "model_path": "smollm2",
            # vLLM's OpenMP team on core 0, the distiller on the others (``vllm_cores``).
            "vllm_args": {"cpu_omp_threads_bind": "0"},
        },
    }
    return students[student]


#: The tenant of the demo's own measurements; the report's money leaves it out.
EVAL_TENANT = "demo-eval"


def demo_keys(app_key: str, eval_key: str) -> dict[str, Any]:
    """Two API keys: the application's traffic, logged for distillation, and the demo's own
    measurements, never logged (so a held-out prompt never reaches the training data)."""
    return {
        "entries": [
            {"sha256": hash_key(app_key), "alias": "demo-app", "tenant": "demo"},
            {"sha256": hash_key(eval_key), "alias": "demo-eval", "tenant": EVAL_TENANT, "log": False},
        ]
    }


def demo_config(
    run_dir: Path, ports: dict[str, int], student: str, admin_key: str, keys: dict[str, Any] | None = None
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": ports["gateway"], "admin_key": admin_key},
        **({"keys": keys} if keys else {}),
        "student": student_config(student, ports),
        "teacher": {
            "kind": "openai",
            "name": "teacher",
            "url": f"http://127.0.0.1:{ports['teacher']}/v1",
            "timeout_s": 30,
        },
        # The learned router starts by sending everything to the teacher, fits itself to the
        # student from the gateway's own traffic, and re-fits as adapters go live.
        "router": {
            "scorer": "embedding",
            # Two shared cores: an embedding can take longer than the production default of 50 ms.
            "scorer_timeout_s": 0.5,
            "cold_start": "teacher",
            # Send a prompt to the teacher once the student is more likely than 0.3 to get it wrong
            # (0.5 by default): on an AVX512 machine the distilled adapter is weaker on the longest
            # reverse words, and at 0.5 the student kept serving prompts it got right about half
            # the time (last-window quality 0.865-0.895 of teacher-only in four runs).
            "threshold": 0.3,
            # A demo is a fresh deployment: its router must not start from a classifier that an
            # earlier run saved in the shared cache.
            "embedding": {"classifier_path": str(run_dir / "router-classifier.npz")},
            "retrain": {"min_examples": 40, "every": 60, "buffer": 300},
        },
        # A share of student-served requests is also asked of the teacher: drift, and the
        # router keeps seeing the prompts the student now serves.
        "monitoring": {"distiller_metrics_port": ports["distiller_metrics"], "shadow_rate": 0.2},
        "teacher_log": {
            "sink": "kafka",
            "bootstrap_servers": f"127.0.0.1:{ports['broker']}",
            "spool_dir": str(run_dir / "spool"),
        },
        "registry": {"url": str(run_dir / "registry")},
        # The testbed teacher priced as DeepSeek's deepseek-reasoner: the report's $ against teacher-only.
        "pricing": {"teacher_model": "deepseek-reasoner"},
        # Tuned for the tiny testbed student on CPU (bench/RESULTS.md, "Distiller settings"): LoRA
        # learns `reverse` at lr 3e-3 when the lr decays (cosine over 30 epochs); 1.5 replayed
        # examples per new one keep the base skills and the earlier batches.
        "distiller": {
            "torch_threads": 1,
            "trigger": {"records": 300, "seconds": 120, "min_records": 32},
            "optim": {"learning_rate": 3e-3, "lr_scheduler": "cosine", "epochs": 30},
            "replay": {"ratio": 1.5, "base_share": 0.5},
            "eval": {"holdout_fraction": 0.2, "regression_size": 90, "max_new_tokens": 16},
            "gate": {"max_regression": 0.05, "promote_margin": 0.05},
            "promotion": {"gateway_url": f"http://127.0.0.1:{ports['gateway']}"},
        },
    }
    if student == "vllm":
        cfg["distiller"]["cpu_affinity"] = vllm_cores()
    return cfg if student == "embedded" else _merge(cfg, language_student_config())


def vllm_cores() -> list[int]:
    """The distiller's cores beside a vLLM student pinned to core 0: an OpenMP team waits for its
    slowest thread, so a training thread that preempts one of vLLM's stalls every decode step
    (bench/vllm_beside_training.py measures it)."""
    cores = sorted(os.sched_getaffinity(0))
    return cores[1:] or cores


def language_student_config() -> dict[str, Any]:
    """A real LLM student (SmolLM2-135M) on the natural-language workload: each family graded by
    its own grader (by ``metadata.task``), and a distiller sized for a 135M model on two cores
    (a first adapter in minutes, not the tiny testbed model's 30 epochs)."""
    return {
        "grading": {
            "default": "exact",
            "rules": [{"task": f.task, "grader": f.grader} for f in language.FAMILIES.values()],
        },
        "distiller": {
            # 120 records: after the golden slice (24) and the held-out fifth, v1 trains on ~38
            # field_extraction answers. At 96 it trained on ~30 and served that family 88.6-89.4%
            # right, too thin for 95% quality; at 144 v1 went live only ~600 s in, too late for a
            # 900 s run's router re-fit on vLLM (bench/RESULTS.md, "SmolLM2 demo").
            "trigger": {"records": 120, "seconds": 180, "min_records": 32},
            "lora": {"rank": 8, "alpha": 16},
            # LoRA on a pretrained model: the usual 1e-4..1e-3 range, a few epochs over small batches
            # (1e-3, 2 epochs: the LoRA probe's setting, bench/RESULTS.md).
            "optim": {
                "learning_rate": 1e-3,
                "lr_scheduler": "cosine",
                "epochs": 2,
                "batch_size": 8,
                "max_seq_len": 512,
            },
            # No base set ships for a real student: the whole replay share comes from past traffic.
            "replay": {"ratio": 0.5, "base_share": 0.0},
            # The answer without its trace, as the LoRA probe measured it: a trace is ~100 more tokens
            # to train on and to generate on two cores (``kd.learn_reasoning: true`` learns it).
            "kd": {"learn_reasoning": False},
            # A bare answer (\boxed{} or a JSON fence) is at most 44 SmolLM2 tokens (measured, 200
            # answers): room for it, and not for a base model's babble on two cores.
            "eval": {"holdout_fraction": 0.2, "regression_size": 24, "max_new_tokens": 64, "batch_size": 8},
        },
        # Re-fit the router when an adapter goes live, on the last 96 teacher answers: the student
        # re-answers each (8 at once, to batch), ~0.5 conversations/s on one engine thread beside
        # training, so 300 (the testbed's window) took over 10 minutes of a 15-minute run.
        "router": {"retrain": {"buffer": 96, "every": 0, "relabel_concurrency": 8}},
    }


def teacher_args(student: str) -> list[str]:
    # A real student learns from R1-style answers: the step-by-step trace inline, then the answer.
    return [] if student == "embedded" else ["--reasoning", "think_tags"]


@contextlib.contextmanager
def demo_stack(
    run_dir: Path, *, student: str, config_overrides: dict[str, Any]
) -> Iterator[tuple[Stack, Endpoints]]:
    ports = {k: free_port() for k in ("gateway", "teacher", "broker", "distiller_metrics", "vllm")}
    admin_key = "demo-admin-" + os.urandom(6).hex()
    app_key, eval_key = "sk-demo-app-" + os.urandom(6).hex(), "sk-demo-eval-" + os.urandom(6).hex()
    keys = demo_keys(app_key, eval_key)
    cfg = _merge(demo_config(run_dir, ports, student, admin_key, keys), config_overrides)
    cfg_path = run_dir / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    stack = Stack(run_dir)
    ep = Endpoints(
        gateway=f"http://127.0.0.1:{ports['gateway']}/v1",
        gateway_root=f"http://127.0.0.1:{ports['gateway']}",
        teacher=f"http://127.0.0.1:{ports['teacher']}/v1",
        broker=f"127.0.0.1:{ports['broker']}",
        distiller_metrics=f"http://127.0.0.1:{ports['distiller_metrics']}/metrics",
        admin_key=admin_key,
        app_key=app_key,
        eval_key=eval_key,
    )
    settings = load_settings(cfg_path)
    try:
        stack.broker = stack.enter(local_broker(settings.teacher_log, log_dir=run_dir / "logs"))
        stack.start(
            "teacher",
            "testbed-teacher",
            "--port",
            str(ports["teacher"]),
            *teacher_args(student),
            ready_url=f"http://127.0.0.1:{ports['teacher']}/healthz",
        )
        if student == "vllm":
            stack.start(
                "vllm",
                "vllm-serve",
                "--config",
                str(cfg_path),
                "--port",
                str(ports["vllm"]),
                ready_url=f"http://127.0.0.1:{ports['vllm']}/health",
                timeout=600,
            )
        stack.start(
            "gateway",
            "serve",
            "--config",
            str(cfg_path),
            ready_url=f"http://127.0.0.1:{ports['gateway']}/readyz",
            timeout=600,
        )
        stack.start(
            "distiller", "distill", "--config", str(cfg_path), ready_url=ep.distiller_metrics, timeout=600
        )
        yield stack, ep
    finally:
        stack.stop()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
