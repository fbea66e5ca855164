"""The teacher-log sink seam. ``submit`` never blocks the request path."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from pathlib import Path

from distillserve.teacher_log.record import TeacherLogRecord


class TeacherLogSink(ABC):
    @abstractmethod
    def submit(self, record: TeacherLogRecord) -> None:
        """Hand a record over for delivery; returns at once."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start background delivery."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Flush what can be flushed and stop; nothing accepted is lost (it stays spooled)."""


class NullSink(TeacherLogSink):
    """Logging switched off."""

    def submit(self, record: TeacherLogRecord) -> None:
        pass


class JsonlFileSink(TeacherLogSink):
    """Appends records to a JSON-lines file: for single-machine use without a broker."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = self.path.open("ab")

    def submit(self, record: TeacherLogRecord) -> None:
        line = record.to_json() + b"\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    async def aclose(self) -> None:
        with self._lock:
            self._fh.close()
