"""PII never reaches the broker, while the client's answer keeps it: a real gateway process
(testbed teacher, which copies its input exactly), a real tansu broker, the official ``openai``
SDK, blocking and streamed requests, and a shadow pair."""

from __future__ import annotations

from pathlib import Path

import openai
import orjson

from tests.support.broker import create_topics, read_topic, running_broker, teacher_log_config
from tests.support.servers import start_gateway
from tests.teacher_log.test_gateway_logging import gateway_config, metric

# A support ticket as a client would paste it; the testbed teacher's ``copy`` task answers it back.
TICKET = (
    "Card 4111 1111 1111 1111 was charged twice; mail maria.keller@example.com or call "
    "+1 (415) 555-2671. My key OPENAI_API_KEY=sk-proj-Q7aLm3Xw9TzR2bVn8KcY5pHd4JfG6sUe1WqZ0oIi leaked"
)
SECRETS = (
    "4111 1111 1111 1111",
    "maria.keller@example.com",
    "555-2671",
    "sk-proj-Q7aLm3Xw9TzR2bVn8KcY5pHd4JfG6sUe1WqZ0oIi",
)
SCRUBBED = "Card <CREDIT_CARD> was charged twice; mail <EMAIL> or call <PHONE>. My key OPENAI_API_KEY=<API_KEY> leaked"


def test_records_on_the_broker_hold_placeholders_and_clients_get_their_answer(tmp_path: Path) -> None:
    with running_broker(tmp_path) as broker:
        cfg = teacher_log_config(broker, tmp_path)
        create_topics(broker, cfg)
        config = {**gateway_config(cfg), "monitoring": {"shadow_rate": 1.0}}
        with start_gateway(tmp_path, config, timeout=600) as gw:
            client = openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0, timeout=60)
            messages = [{"role": "user", "content": f"copy: {TICKET}"}]
            blocking = client.chat.completions.create(model="teacher", messages=messages)
            stream = client.chat.completions.create(model="teacher", messages=messages, stream=True)
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            # A student-served request, shadowed by the teacher (the pair is logged); room for the
            # whole ticket, since the shadow call asks the teacher for the same max_tokens.
            client.chat.completions.create(model="student", messages=messages, max_tokens=256)
            # The client's answers are the teacher's, PII and all.
            assert blocking.choices[0].message.content == TICKET
            assert streamed == TICKET
            records = [
                orjson.loads(m.value) for m in read_topic(broker.bootstrap_servers, cfg.topic, expect=3)
            ]
            scrubbed = {
                e: metric(gw, "distillserve_teacher_log_scrubbed_total", f'{{entity="{e}"}}')
                for e in ("EMAIL", "PHONE", "CREDIT_CARD", "API_KEY")
            }
    assert sorted(r["kind"] for r in records) == ["shadow", "teacher", "teacher"]
    raw = b"".join(orjson.dumps(r) for r in records).decode()
    assert not [s for s in SECRETS if s in raw], raw
    for r in records:
        assert r["messages"][0]["content"] == f"copy: {SCRUBBED}"
        assert r["response_text"] == SCRUBBED
    # Every placeholder on the broker was counted once: twice per record (prompt and answer), and
    # once more where the shadow pair's student copied the ticket (the testbed student can copy).
    placed = {e: raw.count(f"<{e}>") for e in scrubbed}
    assert scrubbed == placed and min(placed.values()) >= 6
