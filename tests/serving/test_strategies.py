"""The gateway's two execution strategies, fast and without servers: direct (with one failover)
and the confidence cascade (escalation, held-back streams, degraded answers). The backends are
scripted fakes (``tests/support/scripted_backend.py`` says why); the end-to-end tests cover the
same paths on real backends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from distillserve.config import RouterConfig, Settings
from distillserve.protocol.errors import BackendUnavailable
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.router import Router
from distillserve.serving.gateway import Gateway
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.teacher_log.sink import TeacherLogSink
from tests.support.metrics import sample
from tests.support.scripted_backend import Script, ScriptedBackend

SURE, UNSURE = -0.01, -3.0


class ListSink(TeacherLogSink):
    def __init__(self) -> None:
        self.records: list[TeacherLogRecord] = []

    def submit(self, record: TeacherLogRecord) -> None:
        self.records.append(record)


def _gateway(student: Script, teacher: Script, scorer: str = "cascade") -> tuple[Gateway, ListSink]:
    settings = Settings()
    sink = ListSink()
    gw = Gateway(
        settings,
        ScriptedBackend("student", script=student),
        ScriptedBackend("teacher", kind="teacher-kind", script=teacher),
        Router(RouterConfig(scorer=scorer)),
        sink=sink,
    )
    return gw, sink


def _req(stream: bool = False, logprobs: bool = False) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "reverse: abc"}],
            "stream": stream,
            "logprobs": logprobs,
        }
    )


async def _drain(gw: Gateway, req: ChatCompletionRequest) -> tuple[list[dict[str, Any]], Any]:
    plan = await gw.plan(req, forced=None, api_key=None)
    it, first, served = await gw.open_stream(req, plan)
    chunks = [c async for c in gw.relay(req, served, it, first, 0.0)]
    await asyncio.sleep(0)  # the record is built in a callback once the stream has ended (delivery.py)
    return chunks, served


async def test_a_sure_student_answers_and_the_client_gets_no_logprobs_it_did_not_ask_for() -> None:
    gw, sink = _gateway(Script(["c", "b", "a"], SURE), Script(["cba"]))
    req = _req()
    plan = await gw.plan(req, forced=None, api_key=None)
    assert plan.strategy == "cascade" and plan.route == "student"
    body, served = await gw.complete(req, plan)
    assert served.route == "student" and body["choices"][0]["message"]["content"] == "cba"
    assert body["choices"][0]["logprobs"] is None
    assert gw.student.calls[0]["logprobs"] is True  # the cascade asked for them
    assert gw.teacher.calls == [] and sink.records == []
    assert body["distillserve"]["scorer"] == "cascade" and 0 <= body["distillserve"]["difficulty"] < 0.1


async def test_an_unsure_student_escalates_and_the_teacher_record_keeps_the_student_answer(
    fresh_metrics: CollectorRegistry,
) -> None:
    gw, sink = _gateway(Script(["x"], UNSURE), Script(["cba"]))
    req = _req()
    body, served = await gw.complete(req, await gw.plan(req, forced=None, api_key=None))
    assert served.route == "teacher" and body["model"] == "teacher"
    assert sample(fresh_metrics, "distillserve_cascade_escalations_total") == 1
    [record] = sink.records
    assert record.route == "cascade" and record.response_text == "cba"
    assert (record.student_model, record.student_text) == ("student", "x")
    assert record.teacher_backend == "teacher-kind" and record.difficulty is not None


async def test_a_dead_student_escalates_without_a_student_answer_in_the_record(
    fresh_metrics: CollectorRegistry,
) -> None:
    gw, sink = _gateway(Script(fault="down"), Script(["cba"]))
    req = _req()
    _, served = await gw.complete(req, await gw.plan(req, forced=None, api_key=None))
    assert served.route == "teacher"
    fallbacks = sample(
        fresh_metrics, "distillserve_fallbacks_total", from_route="student", to_route="teacher"
    )
    assert fallbacks == 1
    assert sample(fresh_metrics, "distillserve_cascade_escalations_total") == 0  # a failure, not doubt
    assert sink.records[0].student_text is None


async def test_a_dead_teacher_on_escalation_serves_the_unsure_student_answer(
    fresh_metrics: CollectorRegistry,
) -> None:
    gw, sink = _gateway(Script(["x"], UNSURE), Script(fault="down"))
    req = _req()
    body, served = await gw.complete(req, await gw.plan(req, forced=None, api_key=None))
    assert served.route == "student" and body["choices"][0]["message"]["content"] == "x"
    fallbacks = sample(
        fresh_metrics, "distillserve_fallbacks_total", from_route="teacher", to_route="student"
    )
    assert fallbacks == 1
    assert (
        sample(
            fresh_metrics,
            "distillserve_backend_errors_total",
            backend="teacher-kind",
            route="teacher",
            kind="backend_unavailable",
        )
        == 1
    )
    assert sink.records == []


async def test_a_stream_is_held_back_then_replayed_whole_when_the_student_is_sure() -> None:
    gw, _ = _gateway(Script(["c", "b", "a"], SURE), Script(["cba"]))
    chunks, served = await _drain(gw, _req(stream=True))
    assert served.route == "student"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "cba"
    assert all(c["choices"][0]["logprobs"] is None for c in chunks)
    assert gw.student.closed_streams == 1


async def test_an_unsure_stream_is_answered_by_the_teacher_and_the_student_stream_is_closed() -> None:
    gw, sink = _gateway(Script(["x", "y"], UNSURE), Script(["c", "b", "a"]))
    chunks, served = await _drain(gw, _req(stream=True, logprobs=True))
    assert served.route == "teacher" and chunks[0]["model"] == "teacher"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "cba"
    assert gw.student.closed_streams == 1
    [record] = sink.records
    assert record.student_text == "x"  # min statistic: unsure after the first token already


async def test_a_student_dying_mid_stream_before_the_decision_escalates() -> None:
    gw, sink = _gateway(Script(["c", "b"], SURE, fault="mid_stream"), Script(["cb"]))
    chunks, served = await _drain(gw, _req(stream=True))
    assert served.route == "teacher" and sink.records[0].student_text is None
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "cb"


async def test_direct_fails_over_once_from_a_dead_teacher_to_the_student(
    fresh_metrics: CollectorRegistry,
) -> None:
    gw, sink = _gateway(Script(["s"]), Script(fault="down"), scorer="heuristic")
    req = _req()
    plan = await gw.plan(req, forced="teacher", api_key=None)
    assert plan.strategy == "direct" and plan.route == "teacher"
    body, served = await gw.complete(req, plan)
    assert served.route == "student" and body["choices"][0]["message"]["content"] == "s"
    assert sink.records == []
    assert (
        sample(fresh_metrics, "distillserve_fallbacks_total", from_route="teacher", to_route="student") == 1
    )
    tokens = sample(fresh_metrics, "distillserve_tokens_total", route="student", direction="completion")
    assert tokens == 1


async def test_direct_without_a_fallback_raises_the_backend_error() -> None:
    gw, _ = _gateway(Script(fault="down"), Script(), scorer="heuristic")
    req = _req().model_copy(update={"model": "student"})
    plan = await gw.plan(req, forced=None, api_key=None)
    assert plan.fallback is None
    with pytest.raises(BackendUnavailable):
        await gw.complete(req, plan)
