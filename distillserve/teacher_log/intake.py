"""The one way a teacher's answer enters the log: as a record, or as a counted dead letter.

Building the record can still fail on a shape no provider has sent us yet (a negative token
count, a tool call without a function). Such an answer is never dropped silently: it goes to
the dead-letter topic with the validation error as its reason and is counted as
``distillserve_teacher_log_records_total{outcome="invalid"}``, which an alert watches.
"""

from __future__ import annotations

import logging

from distillserve.monitoring import metrics
from distillserve.teacher_log.answer import TeacherAnswer
from distillserve.teacher_log.dead_letter import dead_letter_of
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.teacher_log.sink import TeacherLogSink

log = logging.getLogger(__name__)


def log_answer(sink: TeacherLogSink, answer: TeacherAnswer) -> TeacherLogRecord | None:
    """Submit the answer's record; None when it went to the dead letters instead."""
    try:
        record = answer.to_record()
    except Exception as exc:  # mostly pydantic's ValidationError; whatever it is, the answer is kept
        reason = f"{type(exc).__name__}: {exc}"
        log.warning(
            "teacher answer %s cannot become a record (%s): dead-lettered", answer.response_id, reason[:300]
        )
        metrics.TEACHER_LOG_RECORDS.labels("invalid").inc()
        sink.dead_letter(dead_letter_of(answer, reason))
        return None
    sink.submit(record)
    return record
