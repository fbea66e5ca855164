"""Reading a file sink's teacher log from a test. Records reach the file after the answer went
out (the scrubbing thread, then the sink's), so a reader waits for the record it expects."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from distillserve.teacher_log.record import TeacherLogRecord


def read_log(path: Path) -> list[TeacherLogRecord]:
    if not path.exists():
        return []
    return [TeacherLogRecord.from_json(line) for line in path.read_bytes().splitlines() if line]


def read_log_once(
    path: Path, expected: Callable[[TeacherLogRecord], bool], timeout: float = 30.0
) -> list[TeacherLogRecord]:
    """Every record in the log, once one of them is ``expected`` (at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_log(path)
        if any(expected(r) for r in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"the record expected in {path} is not there after {timeout} s")
        time.sleep(0.1)
