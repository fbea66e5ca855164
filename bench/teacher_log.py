"""Teacher-log cost and capacity, in one run.

1. Request latency through the gateway with logging off and on: two gateway processes, the
   same config except ``teacher_log.sink`` (``none`` / ``kafka`` into a local tansu broker),
   teacher = the in-process testbed oracle (answers in microseconds, so what differs is the
   logging), blocking chat requests pinned to the teacher, interleaved rounds at concurrency 1.
2. Sustained records/s into the broker: ``KafkaSink`` in this process, records submitted as fast
   as possible, timed until every one is acknowledged (acks=all, lz4).
   Also reported per CPU-second of this process, which a busy shared machine disturbs far less.
3. Spool replay: the same with the broker down first (everything goes to the disk spool), then
   the broker started and timed until the spool is empty.

    .venv/bin/python bench/teacher_log.py [--requests 4000] [--records 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.percentiles import pct
from distillserve.launchers.local_broker import LocalBroker
from distillserve.teacher_log.kafka_sink import KafkaSink
from tests.support.broker import create_topics, read_topic, running_broker, teacher_log_config
from tests.support.servers import start_gateway
from tests.teacher_log.test_kafka_sink import make_record


async def latencies(url: str, n: int) -> list[float]:
    out = []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(n):
            body = {"model": "teacher", "messages": [{"role": "user", "content": f"reverse: word{i % 97}"}]}
            t0 = time.perf_counter()
            r = await client.post(url, json=body)
            out.append(time.perf_counter() - t0)
            r.raise_for_status()
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(xs: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(xs) * 1e3, 4),
        "p90_ms": round(pct(xs, 0.90) * 1e3, 4),
        "p99_ms": round(pct(xs, 0.99) * 1e3, 4),
    }


def request_latency(tmp: Path, broker: LocalBroker, requests: int, rounds: int) -> dict[str, object]:
    cfg = teacher_log_config(broker, tmp)
    create_topics(broker, cfg)
    base = {
        "student": {"kind": "testbed", "name": "student"},
        "teacher": {"kind": "testbed", "name": "teacher"},
    }
    off_cfg = {**base, "teacher_log": {"sink": "none"}}
    on_cfg = {**base, "teacher_log": cfg.model_dump(mode="json")}
    # Two identical logging-off gateways: their difference is the noise floor of this machine.
    with (
        start_gateway(tmp, off_cfg) as off,
        start_gateway(tmp, off_cfg) as off_b,
        start_gateway(tmp, on_cfg) as on,
    ):
        gateways = {"off": off, "off_b": off_b, "on": on}
        urls = {s: f"{g.url}/chat/completions" for s, g in gateways.items()}
        cpu = dict.fromkeys(urls, 0.0)
        for url in urls.values():
            asyncio.run(latencies(url, 200))  # warm up
        lat: dict[str, list[float]] = {s: [] for s in urls}
        for r in range(rounds):  # interleaved, rotating the order, so all see the same machine noise
            order = list(urls)[r % 3 :] + list(urls)[: r % 3]
            for side in order:
                c0 = cpu_seconds(gateways[side].pid)
                lat[side] += asyncio.run(latencies(urls[side], requests // rounds))
                cpu[side] += cpu_seconds(gateways[side].pid) - c0
        logged = len(read_topic(broker.bootstrap_servers, cfg.topic, expect=requests + 200, timeout=30))
    s = {side: summary(xs) for side, xs in lat.items()}
    for side in s:  # CPU per request is far less noisy than latency on a shared machine
        s[side]["cpu_us_per_request"] = round(cpu[side] / len(lat[side]) * 1e6, 1)
    return {
        "requests_per_side": len(lat["on"]),
        "logging_off": s["off"],
        "logging_off_again": s["off_b"],
        "logging_on": s["on"],
        "added_p50_ms": round(s["on"]["p50_ms"] - s["off"]["p50_ms"], 4),
        "added_p99_ms": round(s["on"]["p99_ms"] - s["off"]["p99_ms"], 4),
        "noise_p50_ms": round(s["off_b"]["p50_ms"] - s["off"]["p50_ms"], 4),
        "noise_p99_ms": round(s["off_b"]["p99_ms"] - s["off"]["p99_ms"], 4),
        "added_cpu_us_per_request": round(s["on"]["cpu_us_per_request"] - s["off"]["cpu_us_per_request"], 1),
        "records_in_topic": logged,
    }


def sustained(tmp: Path, broker: LocalBroker, n: int) -> dict[str, object]:
    cfg = teacher_log_config(broker, tmp)
    create_topics(broker, cfg)
    records = [make_record(i) for i in range(n)]
    size = sum(len(r.to_json()) for r in records[:1000]) / 1000
    sink = KafkaSink(cfg)
    sink.start_background()
    c0, t0 = cpu_seconds(os.getpid()), time.perf_counter()
    for r in records:
        sink.submit(r)
    submit_s = time.perf_counter() - t0
    assert sink.wait_delivered(600)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(os.getpid()) - c0
    sink.close()
    return {
        "records": n,
        "record_bytes": round(size),
        "submit_us_per_record": round(submit_s / n * 1e6, 3),
        "acked_records_per_s": round(n / wall),
        # This process's CPU (all threads) per record: the rate one free core would give.
        "records_per_cpu_second": round(n / cpu),
        "spooled": sink.stats.spooled,
    }


def replay(tmp: Path, n: int) -> dict[str, object]:
    broker = LocalBroker(log_dir=tmp / "replay-broker")
    cfg = teacher_log_config(broker, tmp, delivery_timeout_s=1.0, retry_backoff_s=0.2)
    sink = KafkaSink(cfg)
    sink.start_background()
    t0 = time.perf_counter()
    for i in range(n):
        sink.submit(make_record(i))
    while sink.stats.spooled < n:
        time.sleep(0.05)
    spool_s = time.perf_counter() - t0
    spool_bytes = sink.spool.pending_bytes
    with broker:
        create_topics(broker, cfg)
        c1, t1 = cpu_seconds(os.getpid()), time.perf_counter()
        assert sink.wait_delivered(600)
        replay_s, replay_cpu = time.perf_counter() - t1, cpu_seconds(os.getpid()) - c1
        sink.close()
    return {
        "records": n,
        "spooled_records_per_s": round(n / spool_s),
        "spool_bytes": spool_bytes,
        "replayed_records_per_s": round(n / replay_s),
        "replayed_records_per_cpu_second": round(n / replay_cpu),
        "replayed": sink.stats.replayed,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with running_broker(tmp) as broker:
            latency = request_latency(tmp, broker, args.requests, args.rounds)
            throughput = sustained(tmp, broker, args.records)
        spool = replay(tmp, args.records // 2)
    print(
        json.dumps(
            {
                "benchmark": "teacher_log",
                "request_latency": latency,
                "sustained_into_broker": throughput,
                "spool_replay": spool,
                "targets": {"added_p99_ms_max": 0.2, "records_per_s_min": 10_000},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
