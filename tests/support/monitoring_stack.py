"""A gateway under real traffic, scraped by a real Prometheus: what the dashboard test and
the dashboard snapshot (bench/dashboard_snapshot.py) look at.

Processes: the testbed teacher, a student that gets ``reverse`` wrong (so agreement and
drift have something to show), the gateway with shadow sampling on every student request,
and Prometheus scraping the gateway every second with the shipped rules. The distiller,
the Kafka sink and vLLM are not part of it (see the tests for what that leaves empty).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai

from distillserve.serving.keys.keyring import hash_key
from tests.support.flawed_student import start_flawed_student
from tests.support.prometheus import Prometheus, start_prometheus
from tests.support.servers import Server, start_gateway, start_testbed_teacher

KEY = "sk-monitoring"
# The traffic's key has a money budget (the budget panels and burn-rate rules need one) far above
# what the tests spend, and the testbed teacher is priced as deepseek-reasoner (the spend panels).
COST = {
    "keys": {
        "entries": [
            {
                "sha256": hash_key(KEY),
                "tenant": "monitoring",
                "alias": "monitoring",
                "budget": {"limit": 100.0, "unit": "usd", "period": "day"},
            }
        ]
    },
    "pricing": {"teacher_model": "deepseek-reasoner"},
}
HARD = (
    "Prove step by step that the algorithm below is optimal, analyze its complexity, and explain why "
    "every invariant holds?\n" + "x = y + z * 2 - w / 3\n" * 6 + "reverse: hello"
)
WORDS = ["alpha", "bravo", "delta", "gamma", "kilo", "lima", "mike", "oscar", "papa", "romeo"]


@dataclass
class Stack:
    gateway: Server
    prometheus: Prometheus


@contextlib.contextmanager
def monitoring_stack(tmp: Path, *, agreement_window: int = 10) -> Iterator[Stack]:
    with (
        start_testbed_teacher(tmp) as teacher,
        start_flawed_student(tmp, wrong="reverse") as student,
        start_gateway(
            tmp,
            {
                "server": {"api_keys": [KEY]},
                "student": {"kind": "openai", "name": "student", "url": student.url, "timeout_s": 10},
                "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url, "timeout_s": 10},
                "router": {"scorer": "heuristic", "policy": "threshold", "threshold": 0.5},
                "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
                "monitoring": {"shadow_rate": 1.0, "agreement_window": agreement_window},
                **COST,
            },
        ) as gw,
        start_prometheus(tmp, {"distillserve-gateway": [f"127.0.0.1:{gw.port}"]}) as prom,
    ):
        prom.wait_scraped()
        yield Stack(gw, prom)


def drive_traffic(
    gw: Server, *, rounds: int = 3, per_round: int = 12, pause: float = 1.5, reverse_from_round: int = 0
) -> dict[str, int]:
    """Mixed traffic through the official SDK: easy prompts (student; from ``reverse_from_round``
    on a third of them are reverse, which this student gets wrong), hard ones (teacher),
    streamed and not, and one request for an unknown model per round."""
    client = openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0)
    counts = {"student": 0, "teacher": 0, "errors": 0}
    for r in range(rounds):
        for i in range(per_round):
            hard = i % 4 == 3
            task = ("copy", "upper", "reverse" if r >= reverse_from_round else "copy")[i % 3]
            prompt = HARD if hard else f"{task}: {WORDS[(r * per_round + i) % len(WORDS)]}"
            messages = [{"role": "user", "content": prompt}]
            if i % 2:
                with client.chat.completions.with_streaming_response.create(
                    model="auto", messages=messages, stream=True, stream_options={"include_usage": True}
                ) as resp:
                    route = resp.headers["x-distillserve-route"]
                    for _ in resp.parse():
                        pass
            else:
                raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
                route = raw.headers["x-distillserve-route"]
            counts[route] += 1
        try:
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        except openai.NotFoundError:
            counts["errors"] += 1
        time.sleep(pause)
    return counts


ADMIN_KEY = "adm-monitoring"


@dataclass
class LoopStack:
    gateway: Server
    distiller_metrics: str  # http://127.0.0.1:P/metrics
    prometheus: Prometheus
    registry_url: str
    base_model: str


def distiller_config(tmp: Path, teacher_log: dict, metrics_port: int, base_model: str) -> dict:
    """A distiller that trains a quick adapter as soon as a few dozen records are in."""
    return {
        "server": {"host": "127.0.0.1"},
        "student": {"kind": "embedded", "name": "student", "model_path": base_model},
        "teacher_log": teacher_log,
        "distiller": {
            "source": "kafka",
            "base_model": base_model,
            "trigger": {"records": 24, "seconds": 5, "min_records": 8},
            "optim": {"epochs": 1, "max_steps": 4, "batch_size": 8},
            "eval": {"regression_size": 8, "max_new_tokens": 12, "batch_size": 16},
            # registry only: the gateway's student here is not an adapter host
            "promotion": {"via": "none"},
            "state_dir": str(tmp / "distiller-state"),
            "device": "cpu",
        },
        "registry": {"url": str(tmp / "registry")},
        "monitoring": {"distiller_metrics_port": metrics_port},
    }


@contextlib.contextmanager
def vllm_student(tmp: Path, model: str) -> Iterator[str]:
    """vLLM's CPU build serving ``model`` (LoRA enabled) as "base"; yields its /v1 URL."""
    from distillserve.backends.vllm_engine_args import VLLMEngineArgs
    from distillserve.config import VLLMBackendConfig
    from distillserve.launchers.vllm_process import VLLMProcess
    from tests.support.processes import free_port

    engine = VLLMProcess(
        model,
        port=free_port(),
        served_name="base",
        args=VLLMEngineArgs.of(VLLMBackendConfig(name="student")),
        log_path=tmp / "vllm.log",
    )
    engine.start()
    try:
        engine.wait_ready(600)
        yield engine.url
    finally:
        engine.stop()


@contextlib.contextmanager
def learning_loop_stack(tmp: Path) -> Iterator[LoopStack]:
    """The gateway logging to a real broker (KafkaSink), its student on a real vLLM, and a real
    distiller consuming the log; gateway, distiller and vLLM all scraped by Prometheus."""
    from distillserve.launchers.local_broker import topics_for
    from distillserve.testbed.student_model import ensure_testbed_student
    from tests.support.broker import running_broker, teacher_log_config
    from tests.support.processes import free_port, python_module, running

    # The tiny testbed student without its pre-training (seconds to build, where the pre-trained
    # one takes minutes): the metrics of a run do not depend on how good the student is.
    base_model = str(ensure_testbed_student(pretrain=False))
    with running_broker(tmp) as broker:
        tl = teacher_log_config(broker, tmp)
        for topic in topics_for(tl):
            broker.create_topic(topic)
        teacher_log = tl.model_dump(mode="json", exclude_none=True)
        metrics_port = free_port()
        cfg_path = tmp / "distiller.yaml"
        import yaml

        cfg_path.write_text(yaml.safe_dump(distiller_config(tmp, teacher_log, metrics_port, base_model)))
        with (
            vllm_student(tmp, base_model) as vllm_url,
            start_testbed_teacher(tmp) as teacher,
            start_gateway(
                tmp,
                {
                    "server": {"api_keys": [KEY], "admin_key": ADMIN_KEY},
                    # The distiller's registry: the admin API takes adapter paths only from under it.
                    "registry": {"url": str(tmp / "registry")},
                    "student": {
                        "kind": "vllm",
                        "name": "student",
                        "url": vllm_url,
                        "upstream_model": "base",
                        "model_path": base_model,
                        "timeout_s": 60,
                    },
                    "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url, "timeout_s": 10},
                    "teacher_log": teacher_log,
                    "monitoring": {"shadow_rate": 1.0, "agreement_window": 10},
                    **COST,
                },
            ) as gw,
            running(
                python_module("distillserve", "distill", "--config", str(cfg_path)),
                ready_url=f"http://127.0.0.1:{metrics_port}/metrics",
                timeout=600,
                log_path=tmp / "distiller.log",
            ),
            start_prometheus(
                tmp,
                {
                    "distillserve-gateway": [f"127.0.0.1:{gw.port}"],
                    "distillserve-distiller": [f"127.0.0.1:{metrics_port}"],
                    "vllm": [vllm_url.removeprefix("http://").removesuffix("/v1")],
                },
            ) as prom,
        ):
            prom.wait_scraped()
            yield LoopStack(
                gw, f"http://127.0.0.1:{metrics_port}/metrics", prom, str(tmp / "registry"), base_model
            )


def teacher_traffic(gw: Server, n: int, seed: int = 0) -> None:
    """``n`` distinct learnable-task prompts pinned to the teacher: records for the distiller."""
    import random

    rng = random.Random(seed)
    client = openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0)
    for i in range(n):
        word = "".join(rng.choice("abcdefghij") for _ in range(5))
        task = ("reverse", "sort")[i % 2]
        client.chat.completions.create(
            model="teacher", messages=[{"role": "user", "content": f"{task}: {word}"}]
        )
