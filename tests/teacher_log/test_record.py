"""The teacher-log record keeps an answer as the provider sent it; old records still read; an
answer that cannot become a record is dead-lettered and counted, never dropped silently."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from distillserve.config import TeacherLogConfig
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.teacher_log.answer import AnswerOrigin, TeacherAnswer
from distillserve.teacher_log.intake import log_answer
from distillserve.teacher_log.kafka_sink import KafkaSink
from distillserve.teacher_log.record import SCHEMA_VERSION, TeacherLogRecord
from distillserve.teacher_log.sink import JsonlFileSink
from tests.support.fixture_teacher import FIXTURES
from tests.support.metrics import sample
from tests.support.processes import free_port

ORIGIN = AnswerOrigin(teacher_model="teacher", teacher_backend="openai", route="teacher")
REQUEST = ChatCompletionRequest(model="teacher", messages=[{"role": "user", "content": "hi"}])

# A record as version 1 wrote it (flat integer usage), before usage kept the provider's shape.
V1_RECORD = {
    "schema_version": 1,
    "kind": "teacher",
    "request_id": "chatcmpl-v1",
    "timestamp": 1760000000.0,
    "key": "0f" * 12,
    "endpoint": "chat",
    "messages": [{"role": "user", "content": "reverse: abc"}],
    "sampling": {"temperature": 0},
    "route": "teacher",
    "teacher_model": "teacher",
    "teacher_backend": "testbed",
    "response_text": "cba",
    "finish_reason": "stop",
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}


def answer_of(body: dict) -> TeacherAnswer:
    return TeacherAnswer.from_body(REQUEST, ORIGIN, body)


def fixture_body(name: str) -> dict:
    return orjson.loads((FIXTURES / name).read_bytes())


def test_version_1_records_still_read() -> None:
    record = TeacherLogRecord.from_json(orjson.dumps(V1_RECORD))
    assert record.schema_version == 1 and record.response_text == "cba"
    assert record.usage.prompt_tokens == 5 and record.usage.total_tokens == 8
    assert record.usage.prompt_tokens_details is None and record.tool_calls is None


def test_unknown_versions_are_refused() -> None:
    with pytest.raises(ValueError, match="schema_version"):
        TeacherLogRecord.from_json(orjson.dumps({**V1_RECORD, "schema_version": SCHEMA_VERSION + 1}))


def test_usage_round_trips_as_sent_with_unknown_counters_kept() -> None:
    body = fixture_body("deepseek/reasoner-blocking.json")
    body["usage"]["completion_tokens_details"]["future_tokens"] = 4  # a counter no one knows yet
    body["usage"]["vendor_cost_microcents"] = 12
    record = TeacherLogRecord.from_json(answer_of(body).to_record().to_json())
    assert record.schema_version == SCHEMA_VERSION == 2
    assert record.usage.model_dump(exclude_none=True) == body["usage"]
    assert record.usage.reasoning_tokens == 81


def test_vllm_null_details_and_null_completion_count_are_accepted() -> None:
    body = fixture_body("vllm/chat-blocking.json")
    body["usage"]["completion_tokens"] = None  # UsageInfo allows it
    record = answer_of(body).to_record()
    assert record.usage.prompt_tokens_details is None and record.usage.completion_tokens is None
    assert record.usage.prompt_tokens == 27


def test_content_parts_annotations_and_empty_tool_calls() -> None:
    body = fixture_body("openai/chat-blocking.json")
    citation = {"type": "url_citation", "url_citation": {"url": "https://example.org", "title": "x"}}
    body["choices"][0]["message"].update(
        content=[{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
        annotations=[citation],
        tool_calls=[],
    )
    record = answer_of(body).to_record()
    assert record.response_text == "Hello there"
    assert record.content_parts == body["choices"][0]["message"]["content"]
    assert record.message_extras == {"annotations": [citation]}
    assert record.tool_calls is None  # [] means none


def test_an_invalid_answer_is_dead_lettered_and_counted(
    tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    sink = JsonlFileSink(tmp_path / "teacher-log.jsonl")
    good = fixture_body("vllm/chat-blocking.json")
    bad = fixture_body("faults/invalid-usage.json")
    assert log_answer(sink, answer_of(good)) is not None
    assert log_answer(sink, answer_of(bad)) is None
    assert sample(fresh_metrics, "distillserve_teacher_log_records_total", outcome="invalid") == 1
    assert len((tmp_path / "teacher-log.jsonl").read_bytes().splitlines()) == 1
    (letter,) = [
        orjson.loads(line) for line in (tmp_path / "teacher-log.dlq.jsonl").read_bytes().splitlines()
    ]
    assert letter["source"] == "gateway" and letter["key"] == "chatcmpl-negativeusage0001"
    assert "usage.prompt_tokens" in letter["reason"] and "greater than or equal to 0" in letter["reason"]
    assert (
        letter["answer"]["usage"]["prompt_tokens"] == -27
        and letter["answer"]["request"]["model"] == "teacher"
    )
    assert letter["answer"]["text"] == "Paris is the capital of France."


def test_kafka_sink_keeps_dead_letters_on_disk_when_the_broker_never_took_them(tmp_path: Path) -> None:
    cfg = TeacherLogConfig(
        bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens there
        spool_dir=str(tmp_path / "spool"),
        delivery_timeout_s=0.5,
    )
    sink = KafkaSink(cfg)
    sink.start_background()
    log_answer(sink, answer_of(fixture_body("faults/invalid-usage.json")))
    sink.close(timeout=30)
    lines = (tmp_path / "spool" / "dead-letters.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["key"] for line in lines] == ["chatcmpl-negativeusage0001"]
