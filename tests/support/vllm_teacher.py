"""One vLLM CPU server as the teacher for the whole session (``vllm_teacher`` in tests/conftest.py):
the teacher-feature tests (tools, structured outputs, top-k logprobs) and the teacher-log test
share it, since vLLM takes minutes to start on 2 cores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from distillserve.backends.vllm_engine_args import VLLMEngineArgs
from distillserve.launchers.vllm_process import VLLMProcess
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.processes import free_port

SERVED_NAME = "teacher-model"  # not the gateway's public name: the gateway maps it (upstream_model)
ENGINE_ARGS = VLLMEngineArgs(
    max_lora_rank=16,
    max_loras=1,
    max_model_len=1024,
    extra_args=[
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--structured-outputs-config",
        '{"backend": "xgrammar", "disable_any_whitespace": true}',
    ],
)


@contextlib.contextmanager
def vllm_teacher_engine(tmp: Path) -> Iterator[VLLMProcess]:
    """vLLM serving the testbed model (untrained: what it says does not matter here)."""
    engine = VLLMProcess(
        ensure_testbed_student(pretrain=False),
        port=free_port(),
        served_name=SERVED_NAME,
        args=ENGINE_ARGS,
        log_path=tmp / "vllm.log",
    )
    engine.start()
    try:  # stopped by its process group, also when the start or a test fails
        engine.wait_ready(timeout=1200)
        yield engine
    finally:
        engine.stop()
