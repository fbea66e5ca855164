"""Build the configured teacher-log sink."""

from __future__ import annotations

from pathlib import Path

from distillserve.config import TeacherLogConfig, cache_dir
from distillserve.teacher_log.scrub import record_scrubbing
from distillserve.teacher_log.scrubbing_sink import ScrubbingSink
from distillserve.teacher_log.sink import JsonlFileSink, NullSink, TeacherLogSink


def build_sink(cfg: TeacherLogConfig) -> TeacherLogSink:
    if not cfg.enabled or cfg.sink == "none":
        return NullSink()
    sink = _delivery_sink(cfg)
    scrubbing = record_scrubbing(cfg.scrub)
    if scrubbing is None:
        return sink
    return ScrubbingSink(sink, scrubbing, max_pending=cfg.queue_size)


def _delivery_sink(cfg: TeacherLogConfig) -> TeacherLogSink:
    if cfg.sink == "file":
        spool = Path(cfg.spool_dir) if cfg.spool_dir else cache_dir() / "teacher-log"
        return JsonlFileSink(spool / "teacher-log.jsonl")
    from distillserve.teacher_log.kafka_sink import KafkaSink

    return KafkaSink(cfg)
