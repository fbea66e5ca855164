"""The teacher log end to end: real HTTP (openai SDK) through a real gateway process whose
teacher answers are logged to a real tansu broker, with the broker and the gateway failing."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson

from distillserve.config import TeacherLogConfig
from distillserve.launchers.local_broker import LocalBroker
from tests.support.broker import create_topics, read_topic, running_broker, teacher_log_config
from tests.support.processes import free_port
from tests.support.servers import Server, start_gateway


def gateway_config(cfg: TeacherLogConfig) -> dict[str, Any]:
    return {
        "student": {"kind": "testbed", "name": "student"},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "teacher_log": cfg.model_dump(mode="json"),
    }


def metric(gw: Server, name: str, labels: str = "") -> float:
    text = httpx.get(f"http://127.0.0.1:{gw.port}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def spooled(gw: Server) -> float:
    return metric(gw, "distillserve_teacher_log_records_total", '{outcome="spooled"}')


class Load:
    """Clients sending teacher requests in a loop; every answer's id and every failure kept."""

    def __init__(self, gw: Server, clients: int = 3) -> None:
        self.ids: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(gw, i)) for i in range(clients)]

    def _loop(self, gw: Server, n: int) -> None:
        client = openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0, timeout=10)
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                r = client.chat.completions.create(
                    model="teacher", messages=[{"role": "user", "content": f"reverse: c{n}w{i}"}]
                )
                assert r.choices[0].message.content == f"c{n}w{i}"[::-1]
                self.ids.append(r.id)
            except Exception as exc:
                self.failures.append(repr(exc))
            time.sleep(0.01)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def topic_ids(broker: LocalBroker, cfg: TeacherLogConfig, expect: int) -> Counter[str]:
    messages = read_topic(broker.bootstrap_servers, cfg.topic, expect=expect, timeout=30)
    return Counter(orjson.loads(m.value)["request_id"] for m in messages)


def wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_broker_outage_mid_load_loses_nothing_and_fails_no_request(tmp_path: Path) -> None:
    with running_broker(tmp_path, durable=True) as broker:
        cfg = teacher_log_config(broker, tmp_path, delivery_timeout_s=2.0, retry_backoff_s=0.5)
        create_topics(broker, cfg)
        with start_gateway(tmp_path, gateway_config(cfg)) as gw:
            with Load(gw) as load:
                wait_for(lambda: len(load.ids) >= 50, 30, "load to start")
                broker.stop_broker_only()
                outage_start = time.monotonic()
                wait_for(lambda: spooled(gw) > 0, 20, "records to be spooled")
                time.sleep(max(0.0, 10.5 - (time.monotonic() - outage_start)))
                during = len(load.ids)
                broker.start()
                wait_for(lambda: len(load.ids) >= during + 50, 30, "load after the restart")
            # Load stopped: the spool drains and every answered request is in the topic.
            assert load.failures == []
            wait_for(lambda: metric(gw, "distillserve_teacher_log_spool_bytes") == 0, 30, "spool to drain")
            assert spooled(gw) > 0
        ids = topic_ids(broker, cfg, len(load.ids))
        assert set(load.ids) <= set(ids), f"lost: {len(set(load.ids) - set(ids))}"
        assert len(ids) == len(load.ids)  # nothing logged that no client got
        assert not [p for p in Path(cfg.spool_dir or "").glob("*.seg") if p.stat().st_size]


def test_gateway_killed_with_records_in_spool_delivers_them_on_restart(tmp_path: Path) -> None:
    port = free_port()  # the broker is down at first
    cfg = teacher_log_config(LocalBroker(port), tmp_path, delivery_timeout_s=1.0, retry_backoff_s=0.5)
    with start_gateway(tmp_path, gateway_config(cfg)) as gw:
        client = openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0)
        ids = [
            client.chat.completions.create(
                model="teacher", messages=[{"role": "user", "content": f"upper: w{i}"}]
            ).id
            for i in range(40)
        ]
        wait_for(lambda: spooled(gw) == 40, 30, "all records spooled")
        os.kill(gw.pid, signal.SIGKILL)
    assert any(p.stat().st_size for p in Path(cfg.spool_dir or "").glob("*.seg"))
    with running_broker(tmp_path, port=port) as broker:
        create_topics(broker, cfg)
        with start_gateway(tmp_path, gateway_config(cfg)) as gw2:
            got = topic_ids(broker, cfg, 40)
            assert Counter(ids) == got  # each once: the replay started from the spool's cursor
            wait_for(lambda: metric(gw2, "distillserve_teacher_log_spool_bytes") == 0, 10, "spool to drain")
            assert metric(gw2, "distillserve_teacher_log_records_total", '{outcome="replayed"}') == 40
