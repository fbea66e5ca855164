"""Requests that real apps send, through the gateway with the official ``openai`` SDK: tools,
tool turns, JSON mode and image parts reach a teacher that serves them, unchanged; the embedded
student (which serves none of them) is never asked to half-answer one; and the teacher's top-k
logprobs are asked on every call while the client gets exactly what it asked for.

The gateway is a real process (``distillserve serve``). Its student is the testbed oracle, a
token-stream backend like the embedded engine: both render a text prompt, serve none of these
features and refuse them the same way (the embedded engine's own refusals are in
``tests/backends/test_embedded_refusals.py``). The teacher is ``reference_teacher``: a real HTTP server answering in the exact shapes
of OpenAI's API reference (``tests/fixtures/openai_reference/README.md`` cites each), and, for
the refusal test, with DeepSeek's reasoner 400 to ``logprobs``. A real vLLM teacher serving
tools and JSON mode is in ``tests/backends/test_vllm_teacher_features.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from distillserve.teacher_log.record import TeacherLogRecord
from tests.support.log_file import read_log_once
from tests.support.reference_teacher import ReferenceTeacher, reference_teacher
from tests.support.servers import Server, start_gateway

KEY = "sk-capabilities"
EASY = "copy: hello"  # the heuristic router sends it to the student when it can serve it
TOP_K = 3
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]},
                },
                "required": ["location"],
            },
        },
    }
]
IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
    ],
}
FORCE_STUDENT = {"x-distillserve-route": "student"}


def gateway_config(tmp: Path, teacher_url: str, top_logprobs: int) -> dict[str, Any]:
    return {
        "server": {"api_keys": [KEY]},
        "student": {"kind": "testbed", "name": "student"},
        "teacher": {"kind": "openai", "name": "teacher", "url": teacher_url, "top_logprobs": top_logprobs},
        "router": {"scorer": "heuristic", "policy": "threshold", "threshold": 0.5},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
    }


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capabilities")


@pytest.fixture(scope="module")
def teacher() -> Iterator[ReferenceTeacher]:
    with reference_teacher() as t:
        yield t


@pytest.fixture(scope="module")
def gw(tmp: Path, teacher: ReferenceTeacher) -> Iterator[Server]:
    with start_gateway(tmp, gateway_config(tmp, teacher.url, TOP_K)) as g:
        yield g


@pytest.fixture
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0)


def metric(gw: Server, name: str, **labels: str) -> float:
    text = httpx.get(gw.url.removesuffix("/v1") + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def capability_counts(gw: Server, feature: str) -> tuple[float, float, float]:
    return (
        metric(gw, "distillserve_route_decisions_total", route="teacher", reason="capability"),
        metric(gw, "distillserve_unsupported_feature_requests_total", feature=feature, outcome="teacher"),
        metric(gw, "distillserve_unsupported_feature_requests_total", feature=feature, outcome="refused"),
    )


def records_for(tmp: Path, prompt: str) -> list[TeacherLogRecord]:
    """The teacher-log records of ``prompt``, once there is one (the sink writes in the background)."""

    def about(r: TeacherLogRecord) -> bool:
        return r.messages[-1]["content"] == prompt

    return [r for r in read_log_once(tmp / "log" / "teacher-log.jsonl", about) if about(r)]


# --- tools, JSON mode, images: to the teacher, unchanged ----------------------------------------
def test_tools_go_to_the_teacher_for_capability_and_the_tool_call_comes_back(
    client: openai.OpenAI, teacher: ReferenceTeacher, gw: Server
) -> None:
    before = capability_counts(gw, "tools")
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], tools=TOOLS, tool_choice="auto"
    )
    resp = raw.parse()
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert resp.model_extra["distillserve"]["reason"] == "capability"
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id == "call_abc123" and call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments) == {"location": "Boston, MA"}
    sent = teacher.requests[-1]
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"  # the schema's null enum value too
    after = capability_counts(gw, "tools")
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 1, 0)


def test_a_streamed_tool_call_arrives_whole(client: openai.OpenAI, teacher: ReferenceTeacher) -> None:
    stream = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": EASY}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_current_weather"}},
        stream=True,
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for d in choice.delta.tool_calls or []:
                name += d.function.name or ""
                arguments += d.function.arguments or ""
            finish = choice.finish_reason or finish
    assert (name, json.loads(arguments), finish) == (
        "get_current_weather",
        {"location": "Boston, MA"},
        "tool_calls",
    )
    assert teacher.requests[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_current_weather"},
    }


def test_tool_turns_reach_the_teacher_as_sent(client: openai.OpenAI, teacher: ReferenceTeacher) -> None:
    messages = [
        {"role": "user", "content": "What's the weather like in Boston today?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location": "Boston, MA"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temperature": 22, "unit": "celsius"}'},
    ]
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, tools=TOOLS)
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert teacher.requests[-1]["messages"] == messages


def test_json_schema_goes_to_the_teacher_and_parses(
    client: openai.OpenAI, teacher: ReferenceTeacher, gw: Server
) -> None:
    before = capability_counts(gw, "json_schema")
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "weather",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"}},
                "required": ["city", "temperature_c"],
                "additionalProperties": False,
            },
        },
    }
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], response_format=response_format
    )
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert json.loads(raw.parse().choices[0].message.content) == {"city": "Paris", "temperature_c": 21}
    assert teacher.requests[-1]["response_format"] == response_format
    after = capability_counts(gw, "json_schema")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_json_object_mode_goes_to_the_teacher(client: openai.OpenAI, teacher: ReferenceTeacher) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], response_format={"type": "json_object"}
    )
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert teacher.requests[-1]["response_format"] == {"type": "json_object"}


def test_an_image_part_goes_to_the_teacher_as_sent(
    client: openai.OpenAI, teacher: ReferenceTeacher, gw: Server
) -> None:
    before = capability_counts(gw, "vision")
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[IMAGE_MESSAGE])
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert teacher.requests[-1]["messages"] == [IMAGE_MESSAGE]
    assert capability_counts(gw, "vision")[1] - before[1] == 1


def test_a_plain_request_still_goes_to_the_student(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], response_format={"type": "text"}
    )
    assert raw.headers["x-distillserve-route"] == "student"


# --- the student never half-answers ---------------------------------------------------------------
def test_tools_forced_to_the_student_get_a_400_naming_the_feature(client: openai.OpenAI, gw: Server) -> None:
    before = capability_counts(gw, "tools")[2]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": EASY}],
            tools=TOOLS,
            extra_headers=FORCE_STUDENT,
        )
    assert err.value.status_code == 400
    body = err.value.body
    assert body["code"] == "unsupported_feature" and body["param"] == "tools"
    assert body["type"] == "invalid_request_error" and "tool calling" in body["message"]
    assert "'student'" in body["message"]
    assert capability_counts(gw, "tools")[2] - before == 1


def test_an_image_pinned_to_the_student_gets_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="student", messages=[IMAGE_MESSAGE], stream=True)
    assert err.value.body["param"] == "messages" and "image" in err.value.body["message"]


def test_json_mode_pinned_to_the_student_gets_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="student",
            messages=[{"role": "user", "content": EASY}],
            response_format={"type": "json_object"},
        )
    assert err.value.body["param"] == "response_format"


# --- teacher logprobs: asked every time, the client gets its own ask ------------------------------
def test_teacher_logprobs_are_asked_logged_and_kept_from_the_client(
    client: openai.OpenAI, teacher: ReferenceTeacher, tmp: Path
) -> None:
    prompt = "hi, blocking"
    resp = client.chat.completions.create(model="teacher", messages=[{"role": "user", "content": prompt}])
    assert resp.choices[0].logprobs is None  # not asked for: not sent
    sent = teacher.requests[-1]
    assert sent["logprobs"] is True and sent["top_logprobs"] == TOP_K
    (record,) = records_for(tmp, prompt)
    assert record.logprobs and all(len(t.top) == TOP_K for t in record.logprobs)
    assert "".join(t.token for t in record.logprobs) == resp.choices[0].message.content

    fewer = client.chat.completions.create(
        model="teacher", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=1
    )
    assert teacher.requests[-1]["top_logprobs"] == TOP_K
    content = fewer.choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 1 for t in content)


def test_streamed_teacher_logprobs_are_kept_from_the_client(
    client: openai.OpenAI, teacher: ReferenceTeacher, tmp: Path
) -> None:
    def stream(prompt: str, **kw: Any) -> list[Any]:
        return list(
            client.chat.completions.create(
                model="teacher", messages=[{"role": "user", "content": prompt}], stream=True, **kw
            )
        )

    chunks = stream("hi, streamed")
    assert teacher.requests[-1]["top_logprobs"] == TOP_K
    assert chunks and all(c.choices[0].logprobs is None for c in chunks if c.choices)
    (record,) = records_for(tmp, "hi, streamed")
    assert record.logprobs and all(len(t.top) == TOP_K for t in record.logprobs)

    chunks = stream("hi, streamed with 2 logprobs", logprobs=True, top_logprobs=2)
    entries = [
        t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content
    ]
    assert entries and all(len(t.top_logprobs) == 2 for t in entries)


def test_a_teacher_that_refuses_logprobs_is_remembered(tmp: Path) -> None:
    """DeepSeek's reasoner answers 400 to logprobs (fixture README cites the doc)."""
    with (
        reference_teacher(refuse_logprobs=True) as reasoner,
        start_gateway(tmp, gateway_config(tmp / "refusing", reasoner.url, 5)) as gw,
    ):
        client = openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0)
        ask = {"model": "teacher", "messages": [{"role": "user", "content": "hi"}]}
        first = client.chat.completions.create(**ask)
        assert first.choices[0].message.content and first.choices[0].logprobs is None
        assert ["top_logprobs" in r for r in reasoner.requests] == [
            True,
            False,
        ]  # refused, then asked without
        assert list(client.chat.completions.create(**ask, stream=True))
        client.chat.completions.create(**ask)
        assert ["top_logprobs" in r for r in reasoner.requests] == [True, False, False, False]  # remembered
        assert metric(gw, "distillserve_teacher_logprobs_refused_total", backend="openai") == 1
        with pytest.raises(openai.BadRequestError):  # a client's own ask still gets the teacher's answer
            client.chat.completions.create(**ask, logprobs=True)
        warnings = [line for line in gw.log_path.read_text().splitlines() if "refused top_logprobs=5" in line]
        assert len(warnings) == 1
