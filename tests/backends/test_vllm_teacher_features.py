"""A real vLLM (CPU build) as the teacher behind the gateway, driven by the official ``openai``
SDK: a conversation with tools and tool turns, JSON schema and JSON mode reach vLLM through the
gateway (routed to the teacher for ``capability``) and come back; the teacher's top-k logprobs
reach the log while the client gets none.

vLLM serves the testbed model with ``--enable-auto-tool-choice --tool-call-parser hermes`` (it
refuses tools without both) and structured outputs on xgrammar without free whitespace, so a JSON
schema is decoded by grammar and comes out whole even from a tiny model; the schema's one-value
``enum`` fixes the answer. Tool *calls* are not asserted here: under ``tool_choice: required`` the
untrained testbed model keeps adding calls until ``max_tokens`` (seen: ``finish_reason: length``,
and streamed arguments that were no JSON), which tests the model, not the wire. The tool-call
round trip is proven against OpenAI's reference shapes in ``tests/serving/test_capabilities.py``.
vLLM takes 1-11 min to start on a loaded 2-core machine: one server for the module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from distillserve.launchers.vllm_process import VLLMProcess
from distillserve.teacher_log.record import TeacherLogRecord
from tests.support.servers import Server, start_gateway
from tests.support.vllm_teacher import SERVED_NAME

pytestmark = pytest.mark.timeout(1500)

KEY = "sk-vllm-teacher"
TOP_K = 2
MAX_TOKENS = 200  # the testbed tokenizer spends about one token per character
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris"]}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": CITY_SCHEMA,
        },
    }
]
ASK = [{"role": "user", "content": "copy: weather"}]  # easy: only a capability sends it to the teacher


@dataclass
class Stack:
    gateway: Server
    client: openai.OpenAI
    log: Path


@pytest.fixture(scope="module")
def stack(vllm_teacher: VLLMProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("vllm-teacher-features")
    config = {
        "server": {"api_keys": [KEY]},
        "student": {"kind": "testbed", "name": "student"},
        "teacher": {
            "kind": "openai",
            "name": "teacher",
            "url": vllm_teacher.url,
            "upstream_model": SERVED_NAME,
            "timeout_s": 300,
            "top_logprobs": TOP_K,
        },
        "router": {"scorer": "heuristic", "policy": "threshold", "threshold": 0.5},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
    }
    with start_gateway(tmp, config) as gw:
        client = openai.OpenAI(base_url=gw.url, api_key=KEY, max_retries=0, timeout=300)
        yield Stack(gw, client, tmp / "log" / "teacher-log.jsonl")


def chat(stack: Stack, model: str = "auto", **kw: Any) -> Any:
    return stack.client.chat.completions.with_raw_response.create(
        model=model,
        messages=kw.pop("messages", ASK),
        max_tokens=kw.pop("max_tokens", MAX_TOKENS),
        temperature=0,
        **kw,
    )


def test_a_tool_turn_is_answered(stack: Stack) -> None:
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    raw = chat(stack, messages=messages, tools=TOOLS)
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert raw.parse().choices[0].finish_reason in ("stop", "length")


def test_json_schema_and_json_mode_are_decoded_by_the_teacher(stack: Stack) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True}}
    raw = chat(stack, response_format=fmt)
    assert raw.headers["x-distillserve-route"] == "teacher"
    assert json.loads(raw.parse().choices[0].message.content) == {"city": "Paris"}
    # No schema: the grammar only makes it JSON; a tiny model never starts with "{" by itself.
    raw = chat(stack, response_format={"type": "json_object"}, max_tokens=8)
    assert raw.parse().choices[0].message.content.startswith("{")


def test_the_teacher_log_keeps_the_top_k_logprobs(stack: Stack) -> None:
    prompt = "reverse: abc"
    resp = chat(stack, model="teacher", messages=[{"role": "user", "content": prompt}], max_tokens=8).parse()
    assert resp.choices[0].logprobs is None
    deadline = time.monotonic() + 10
    records: list[TeacherLogRecord] = []
    while not records and time.monotonic() < deadline:
        lines = stack.log.read_bytes().splitlines() if stack.log.exists() else []
        records = [r for r in map(TeacherLogRecord.from_json, lines) if r.messages[-1]["content"] == prompt]
        time.sleep(0.1)
    (record,) = records
    assert record.logprobs and all(len(t.top) == TOP_K for t in record.logprobs)
    assert "".join(t.token for t in record.logprobs).startswith(resp.choices[0].message.content)
