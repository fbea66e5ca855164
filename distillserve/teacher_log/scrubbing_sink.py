"""A sink that scrubs PII from every record and dead letter before handing it on.

Wrapping the sink (rather than each caller) means every way into the log is covered: blocking and
streamed teacher answers, shadow pairs, and answers dead-lettered because they could not become a
record. ``build_sink`` puts it in front of the Kafka or file sink when ``teacher_log.scrub`` is on,
so neither the disk spool nor the broker ever holds the raw text.

Scrubbing costs milliseconds per kilobyte (phone matching dominates), so it runs on one worker
thread of its own, in submission order, never on the gateway's event loop: ``submit`` still returns
at once. When more than ``max_pending`` records wait for it (the thread does not keep up), the
caller scrubs its record itself: slower, but memory stays bounded and nothing is dropped.
``aclose`` scrubs and hands on everything submitted before the inner sink closes. A record the
scrubber fails on is not logged raw: it is counted as ``scrub_failed`` and left out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import orjson

from distillserve.monitoring import metrics
from distillserve.teacher_log.dead_letter import DeadLetter
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.teacher_log.scrub import RecordScrubbing
from distillserve.teacher_log.sink import TeacherLogSink

log = logging.getLogger(__name__)


class ScrubbingSink(TeacherLogSink):
    def __init__(
        self, inner: TeacherLogSink, scrubbing: RecordScrubbing, *, max_pending: int = 10_000
    ) -> None:
        self.inner = inner
        self.scrubbing = scrubbing
        self.max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()
        # One thread: records reach the inner sink in the order they were submitted.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teacher-log-scrub")

    def submit(self, record: TeacherLogRecord) -> None:
        with self._lock:
            queued = self._pending < self.max_pending
            self._pending += queued
        if queued:
            self._worker.submit(self._queued, record)
        else:
            self._scrub_and_submit(record)

    def _queued(self, record: TeacherLogRecord) -> None:
        try:
            self._scrub_and_submit(record)
        finally:
            with self._lock:
                self._pending -= 1

    def dead_letter(self, letter: DeadLetter) -> None:
        self._worker.submit(self._scrub_dead_letter, letter)

    def _scrub_and_submit(self, record: TeacherLogRecord) -> None:
        try:
            clean = self.scrubbing(record)
        except Exception:  # never log what could not be scrubbed
            log.exception("could not scrub teacher-log record %s: left out", record.request_id)
            metrics.TEACHER_LOG_RECORDS.labels("scrub_failed").inc()
            return
        self.inner.submit(clean)

    def _scrub_dead_letter(self, letter: DeadLetter) -> None:
        try:
            value = orjson.dumps(self.scrubbing.scrub_json(orjson.loads(letter.value)))
        except Exception:  # not JSON, or the scrubber failed: keep the reason, not the raw text
            value = orjson.dumps({"unscrubbable_bytes": len(letter.value)})
        self.inner.dead_letter(dataclasses.replace(letter, value=value))

    def flush(self) -> None:
        """Wait until everything submitted so far reached the inner sink."""
        self._worker.submit(lambda: None).result()

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await asyncio.to_thread(self._worker.shutdown, wait=True)
        await self.inner.aclose()
