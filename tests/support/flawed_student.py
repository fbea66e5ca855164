"""A student that has not learned some tasks: it answers them by copying the input.

This is a fault injection for drift tests (the real embedded or vLLM student disagrees
with the teacher too, but not on a share we can choose in advance). It is the testbed
oracle with chosen tasks broken, served as its own OpenAI-compatible process, so the
gateway reaches it over real HTTP like any student.

    python -m tests.support.flawed_student --port P --wrong reverse,sort
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from distillserve.backends.testbed_teacher import TestbedTeacher
from distillserve.serving.single_backend_server import create_single_app
from distillserve.testbed.tasks import parse_prompt
from tests.support.processes import free_port, python_module, running
from tests.support.servers import Server


class FlawedStudent(TestbedTeacher):
    kind = "testbed"

    def __init__(self, name: str, wrong: set[str]) -> None:
        super().__init__(name)
        self.wrong = wrong

    def _answer(self, prompt: str) -> tuple[str, str | None]:
        parsed = parse_prompt(prompt)
        if parsed is not None and parsed[0].name in self.wrong:
            return parsed[1], None  # what a student that never learned the task does: echo the input
        return super()._answer(prompt)


@contextlib.contextmanager
def start_flawed_student(tmp: Path, wrong: str = "reverse", name: str = "student") -> Iterator[Server]:
    port = free_port()
    log = tmp / f"flawed-student-{port}.log"
    cmd = python_module("tests.support.flawed_student", "--port", str(port), "--name", name, "--wrong", wrong)
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/healthz", log_path=log, timeout=60) as proc:
        yield Server(f"http://127.0.0.1:{port}/v1", port, proc.pid, log)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="student")
    ap.add_argument("--wrong", default="reverse", help="comma-separated task names answered wrongly")
    args = ap.parse_args()
    backend = FlawedStudent(args.name, set(filter(None, args.wrong.split(","))))
    uvicorn.run(create_single_app(backend), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
