"""A sink that scrubs PII from every record and dead letter before handing it on.

Wrapping the sink (rather than each caller) means every way into the log is covered: blocking and
streamed teacher answers, shadow pairs, and answers dead-lettered because they could not become a
record. ``build_sink`` puts it in front of the Kafka or file sink when ``teacher_log.scrub`` is on.
Scrubbing happens on the caller's side of ``submit``, so neither the spool on disk nor the broker
ever holds the raw text.
"""

from __future__ import annotations

import dataclasses

import orjson

from distillserve.teacher_log.dead_letter import DeadLetter
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.teacher_log.scrub import RecordScrubbing
from distillserve.teacher_log.sink import TeacherLogSink


class ScrubbingSink(TeacherLogSink):
    def __init__(self, inner: TeacherLogSink, scrubbing: RecordScrubbing) -> None:
        self.inner = inner
        self.scrubbing = scrubbing

    def submit(self, record: TeacherLogRecord) -> None:
        self.inner.submit(self.scrubbing(record))

    def dead_letter(self, letter: DeadLetter) -> None:
        try:
            value = orjson.dumps(self.scrubbing.scrub_json(orjson.loads(letter.value)))
        except orjson.JSONDecodeError:  # not JSON: keep no text of it rather than the raw bytes
            value = orjson.dumps({"unreadable": len(letter.value)})
        self.inner.dead_letter(dataclasses.replace(letter, value=value))

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()
