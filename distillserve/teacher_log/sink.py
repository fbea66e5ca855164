"""The teacher-log sink seam. ``submit`` never blocks the request path."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from pathlib import Path

from distillserve.teacher_log.dead_letter import DeadLetter
from distillserve.teacher_log.record import TeacherLogRecord

log = logging.getLogger(__name__)


class TeacherLogSink(ABC):
    @abstractmethod
    def submit(self, record: TeacherLogRecord) -> None:
        """Hand a record over for delivery; returns at once."""

    def dead_letter(self, letter: DeadLetter) -> None:
        """Keep an answer that could not become a record (already counted by the caller).

        A sink without a dead-letter store writes the whole letter to the error log, so it is
        at least never silent."""
        log.error(
            "teacher-log dead letter (%s): %s", letter.reason, letter.value[:4000].decode(errors="replace")
        )

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start background delivery."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Flush what can be flushed and stop; nothing accepted is lost (it stays spooled)."""


class NullSink(TeacherLogSink):
    """Logging switched off."""

    def submit(self, record: TeacherLogRecord) -> None:
        pass


class JsonlFileSink(TeacherLogSink):
    """Appends records to a JSON-lines file: for single-machine use without a broker.

    Dead letters go to a sibling file, ``<name>.dlq.jsonl``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dead_letter_path = self.path.with_name(self.path.stem + ".dlq.jsonl")
        self._lock = threading.Lock()
        self._fh = self.path.open("ab")

    def dead_letter(self, letter: DeadLetter) -> None:
        with self._lock, self.dead_letter_path.open("ab") as fh:
            fh.write(letter.to_json_line())

    def submit(self, record: TeacherLogRecord) -> None:
        line = record.to_json() + b"\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    async def aclose(self) -> None:
        with self._lock:
            self._fh.close()
