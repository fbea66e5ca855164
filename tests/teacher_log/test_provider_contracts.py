"""Every answer of a real teacher reaches the teacher log: the contract with the providers' wire formats.

The teacher is ``tests/support/fixture_teacher.py``: it replays, byte for byte, the answers
kept in ``tests/fixtures/providers/`` in the shapes of DeepSeek (``deepseek-reasoner``,
``deepseek-chat``), OpenAI chat completions and vLLM's OpenAI server, blocking and streamed,
with and without usage, with reasoning, tool calls, refusals and ``length`` /
``content_filter`` finishes (the README there cites the reference of each shape). In between
is the real gateway (``distillserve serve``) with the official ``openai`` SDK as the client,
and the log is a real Kafka-protocol broker (tansu). What each fixture means is read by the
SDK (``tests/support/provider_fixtures.py``), not by our code.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from distillserve.config import TeacherLogConfig
from distillserve.launchers.local_broker import LocalBroker
from distillserve.teacher_log.record import SCHEMA_VERSION, TeacherLogRecord
from tests.support.broker import TopicMessage, create_topics, read_topic, running_broker, teacher_log_config
from tests.support.fixture_teacher import FixtureTeacher, fixture_teacher
from tests.support.provider_fixtures import ExpectedAnswer, expected_answer, provider_fixtures
from tests.support.servers import Server, start_gateway

FIXTURES = provider_fixtures()


@dataclass
class Stack:
    broker: LocalBroker
    cfg: TeacherLogConfig
    teacher: FixtureTeacher
    gw: Server


@dataclass
class ClientSaw:
    text: str
    reasoning: str | None
    tool_calls: list[tuple[str | None, str, str]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("contracts")
    with running_broker(tmp) as broker, fixture_teacher() as teacher:
        cfg = teacher_log_config(broker, tmp)
        create_topics(broker, cfg)
        config = {
            "student": {"kind": "testbed", "name": "student"},
            "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url, "timeout_s": 10},
            "teacher_log": cfg.model_dump(mode="json"),
        }
        with start_gateway(tmp, config) as gw:
            yield Stack(broker, cfg, teacher, gw)


def client_of(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0, timeout=30)


def ask(client: openai.OpenAI, name: str) -> ClientSaw:
    """One request through the gateway for the fixture ``name``, read as an application would."""
    messages: Any = [{"role": "user", "content": name}]
    if name.endswith(".json"):
        message = client.chat.completions.create(model="teacher", messages=messages).choices[0].message
    else:
        state = ChatCompletionStreamState()
        stream = client.chat.completions.create(
            model="teacher", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        for chunk in stream:
            state.handle_chunk(chunk)
        message = state.current_completion_snapshot.choices[0].message
    extra = message.model_extra or {}
    return ClientSaw(
        text=message.content or "",
        reasoning=extra.get("reasoning_content") or extra.get("reasoning"),
        tool_calls=[(t.id, t.function.name, t.function.arguments) for t in message.tool_calls or []],
    )


def metric(gw: Server, name: str, labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{gw.port}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def logged(stack: Stack) -> tuple[dict[str, ClientSaw], list[TopicMessage]]:
    """Every provider fixture asked once; what the clients saw and what the log holds."""
    client = client_of(stack.gw)
    saw = {name: ask(client, name) for name in FIXTURES}
    produced = '{outcome="produced"}'
    wait_for(
        lambda: metric(stack.gw, "distillserve_teacher_log_records_total", produced) >= len(FIXTURES),
        30,
        "every record acknowledged by the broker",
    )
    return saw, read_topic(stack.broker.bootstrap_servers, stack.cfg.topic, expect=len(FIXTURES))


def test_every_teacher_answer_is_in_the_log_once(
    logged: tuple[dict[str, ClientSaw], list[TopicMessage]],
) -> None:
    _, messages = logged
    ids = Counter(TeacherLogRecord.from_json(m.value).request_id for m in messages)
    expected = Counter(expected_answer(name).response_id for name in FIXTURES)
    assert ids == expected  # 100% of the answers, each once, nothing else
    assert len(FIXTURES) == 21


@pytest.mark.parametrize("name", FIXTURES)
def test_record_keeps_the_answer_as_the_provider_sent_it(
    name: str, logged: tuple[dict[str, ClientSaw], list[TopicMessage]]
) -> None:
    saw, messages = logged
    want: ExpectedAnswer = expected_answer(name)
    records = {r.request_id: r for r in (TeacherLogRecord.from_json(m.value) for m in messages)}
    record = records[want.response_id]
    assert record.schema_version == SCHEMA_VERSION and record.teacher_backend == "openai"
    assert record.messages == [{"role": "user", "content": name}]
    assert record.response_text == want.text
    assert record.reasoning_content == want.reasoning
    assert record.finish_reason == want.finish_reason
    assert record.usage.model_dump(exclude_none=True) == want.usage
    assert [(t.id, t.function.name, t.function.arguments) for t in record.tool_calls or []] == want.tool_calls
    assert record.refusal == want.refusal
    assert record.system_fingerprint == want.system_fingerprint
    # The client got the same answer, reasoning and tool calls included.
    assert saw[name] == ClientSaw(want.text, want.reasoning, want.tool_calls)


def test_reasoning_and_cache_counters_are_typed(
    logged: tuple[dict[str, ClientSaw], list[TopicMessage]],
) -> None:
    _, messages = logged
    records = {r.request_id: r for r in (TeacherLogRecord.from_json(m.value) for m in messages)}
    reasoner = records[expected_answer("deepseek/reasoner-blocking.json").response_id]
    assert reasoner.usage.reasoning_tokens == 81 and reasoner.usage.prompt_cache_miss_tokens == 21
    cached = records[expected_answer("deepseek/chat-tools-blocking.json").response_id]
    assert cached.usage.prompt_tokens_details is not None
    assert cached.usage.prompt_tokens_details.cached_tokens == cached.usage.prompt_cache_hit_tokens == 192
    vllm = records[expected_answer("vllm/chat-blocking.json").response_id]
    assert vllm.usage.prompt_tokens_details is None and vllm.usage.prompt_tokens == 27  # sent as null
    openai_ = records[expected_answer("openai/chat-blocking.json").response_id]
    assert openai_.message_extras is None  # "annotations": [] says nothing and is left out


def test_an_answer_that_cannot_become_a_record_is_dead_lettered_and_counted(stack: Stack) -> None:
    """Fault injection (a synthetic fixture): a token count no provider sends (negative)."""
    client = client_of(stack.gw)
    invalid = '{outcome="invalid"}'
    before = metric(stack.gw, "distillserve_teacher_log_records_total", invalid)
    answer = client.chat.completions.create(
        model="teacher", messages=[{"role": "user", "content": "faults/invalid-usage.json"}]
    )
    assert answer.choices[0].message.content == "Paris is the capital of France."  # the client is served
    assert metric(stack.gw, "distillserve_teacher_log_records_total", invalid) == before + 1
    letters = read_topic(stack.broker.bootstrap_servers, stack.cfg.dead_letter_topic, expect=1)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.key == b"chatcmpl-negativeusage0001"
    assert letter.headers["source"] == b"gateway"
    assert b"prompt_tokens" in letter.headers["reason"] and b"greater_than_equal" in letter.headers["reason"]
    assert b'"prompt_tokens":-27' in letter.value  # the answer itself, to inspect or replay


def test_fixtures_are_what_the_readme_lists() -> None:
    readme = (Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "README.md").read_text()
    for name in FIXTURES:
        assert f"`{name}`" in readme, f"{name} is not described in the fixtures README"
