"""The dashboards with the learning loop's own processes feeding them.

Processes: a real Kafka-protocol broker (tansu); the gateway with the real KafkaSink and
shadow sampling; the real distiller worker (``distillserve distill``: consumer group,
LoRA training on the tiny testbed student, evaluation, registry) with its /metrics; and
Prometheus scraping both. Teacher traffic from the openai SDK gives the distiller records;
it trains one adapter. Then every panel fed by the gateway, the Kafka sink or the distiller
must show data. Honest limits: vLLM is not started (its panels only have to evaluate), and
the distiller promotes into the registry only (the gateway's student here is the testbed
oracle, not an adapter host), so the hot-swap panels show zeros.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.dashboards import check_panels, finite_values, panel_queries
from tests.support.monitoring_stack import LoopStack, drive_traffic, learning_loop_stack, teacher_traffic
from tests.support.prometheus import sample, scrape

NOT_RUNNING = {"vllm": "no vLLM engine"}
ZERO_ONLY = {"hot-swap": "registry-only promotion: no adapter is swapped into this gateway's student"}


def runs(url: str) -> float:
    return sample(scrape(url), "distillserve_distiller_runs_total")


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopStack]:
    with learning_loop_stack(tmp_path_factory.mktemp("loop")) as s:
        drive_traffic(s.gateway, rounds=2, per_round=8, pause=0.5)
        teacher_traffic(s.gateway, 40)
        deadline = time.monotonic() + 420
        while runs(s.distiller_metrics) < 1:
            assert time.monotonic() < deadline, "the distiller finished no run in 7 minutes"
            time.sleep(1)
        time.sleep(4)  # scraped and rules evaluated after the run
        yield s


def test_loop_processes_feed_every_panel_but_vllm(loop: LoopStack) -> None:
    check = check_panels(loop.prometheus, NOT_RUNNING, ZERO_ONLY)
    assert not check.empty, "panels without data:\n" + "\n".join(check.empty)
    print("\nnot fed:", sorted(set(check.unfed)), "\nzeros only:", sorted(set(check.zero_only)))


def q(loop: LoopStack, title: str, i: int = 0) -> list[dict]:
    return loop.prometheus.query([p.expr for p in panel_queries() if p.panel == title][i])


def test_distiller_and_kafka_panels_show_what_happened(loop: LoopStack) -> None:
    produced = {
        r["metric"]["outcome"]: float(r["value"][1])
        for r in q(loop, "Teacher-log records per second by outcome")
    }
    assert produced["produced"] > 0 and produced["dropped"] == 0
    run_outcomes = {
        r["metric"]["outcome"]: float(r["value"][1]) for r in q(loop, "Distiller runs by outcome (per hour)")
    }
    assert sum(run_outcomes.values()) > 0 and run_outcomes["failed"] == 0
    assert set(run_outcomes) >= {"promoted", "held", "refused", "skipped", "failed"}  # zeros from start-up
    losses = finite_values(q(loop, "Training loss of the last run"))
    assert losses and all(v > 0 for v in losses)
    evals = q(loop, "Eval results per adapter version")
    assert evals and all(0 <= float(r["value"][1]) <= 1 for r in evals)
    assert {r["metric"]["dataset"] for r in evals}  # per version, per evaluation set
    kept = {
        r["metric"]["outcome"]: float(r["value"][1])
        for r in q(loop, "Records consumed per second by outcome")
    }
    assert kept["kept"] > 0
    lag = finite_values(q(loop, "Consumer lag"))
    assert lag and all(v >= 0 for v in lag)
    since = finite_values(q(loop, "Time since the last run"))
    assert since and 0 <= since[0] < 600


def test_distiller_rules_evaluate_and_do_not_fire(loop: LoopStack) -> None:
    up = {r["metric"]["job"]: float(r["value"][1]) for r in loop.prometheus.query("up")}
    assert up == {"distillserve-gateway": 1.0, "distillserve-distiller": 1.0}
    firing = loop.prometheus.query('ALERTS{alertstate="firing"}')
    assert firing == []
