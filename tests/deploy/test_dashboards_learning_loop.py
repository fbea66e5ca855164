"""The dashboards with the learning loop's own processes feeding them.

Processes: a real Kafka-protocol broker (tansu); vLLM's CPU build serving the student (the
tiny testbed model, untrained: fast to build, and its answers disagree with the teacher);
the gateway with the real KafkaSink and shadow sampling; the real distiller worker
(``distillserve distill``: consumer group, LoRA training, evaluation, registry) with its
/metrics; Prometheus scraping gateway, distiller and vLLM. Teacher traffic from the openai SDK
gives the distiller records; it trains one adapter, which the test then hot-swaps into vLLM
through the gateway's admin API (the distiller itself promotes into its registry only, since
its gate holds an adapter of an untrained student). Then every panel must show data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from distillserve.adapters.registry import AdapterRegistry
from tests.support.dashboards import check_panels, finite_values, panel_queries
from tests.support.monitoring_stack import (
    ADMIN_KEY,
    LoopStack,
    drive_traffic,
    learning_loop_stack,
    teacher_traffic,
)
from tests.support.prometheus import sample, scrape

NOT_RUNNING: dict[str, str] = {}  # every source runs here
BASELINE = 0.5
ZERO_ONLY: dict[str, str] = {}


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
        # Hot-swap the distiller's first version into vLLM, then serve student traffic on it.
        reg = AdapterRegistry(s.registry_url, s.base_model)
        version = reg.versions()[0]
        r = httpx.post(
            f"http://127.0.0.1:{s.gateway.port}/admin/student/activate",
            # As the promotion path would: the version's eval agreement becomes its drift baseline.
            json={
                "name": reg.adapter_name(version),
                "path": reg.local_path(version),
                "baseline_agreement": BASELINE,
            },
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        drive_traffic(s.gateway, rounds=1, per_round=8, pause=0)
        time.sleep(4)  # scraped and rules evaluated after the run and the swap
        yield s


def test_loop_processes_feed_every_panel(loop: LoopStack) -> None:
    check = check_panels(loop.prometheus, NOT_RUNNING, ZERO_ONLY)
    assert not check.empty, "panels without data:\n" + "\n".join(check.empty)
    assert not check.unfed and not check.zero_only


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


def test_hot_swap_and_vllm_panels(loop: LoopStack) -> None:
    live = {r["metric"]["version"]: float(r["value"][1]) for r in q(loop, "Live adapter version over time")}
    assert live == {"base": 0.0, "student@v1": 1.0}
    swaps = {r["metric"]["outcome"]: float(r["value"][1]) for r in q(loop, "Hot-swaps by outcome (per hour)")}
    assert swaps["swapped"] > 0 and swaps["refused"] == 0
    assert finite_values(q(loop, "Hot-swap duration p95"))
    assert finite_values(q(loop, "vLLM time to first token p95"))
    # The baseline given at activation, and drift measured from it on the new version's pairs.
    agreement = q(loop, "Student/teacher agreement: rolling and baseline", 1)
    baselines = {r["metric"]["adapter"]: float(r["value"][1]) for r in agreement}
    assert baselines["student@v1"] == BASELINE
    rolling = {
        r["metric"]["adapter"]: float(r["value"][1])
        for r in q(loop, "Student/teacher agreement: rolling and baseline")
    }
    drift = {r["metric"]["adapter"]: float(r["value"][1]) for r in q(loop, "Drift below baseline")}
    assert drift["student@v1"] == pytest.approx(max(0.0, BASELINE - rolling["student@v1"]))
    assert len(q(loop, "vLLM requests running / waiting", 0)) == 1


def test_rules_evaluate_and_do_not_fire(loop: LoopStack) -> None:
    up = {r["metric"]["job"]: float(r["value"][1]) for r in loop.prometheus.query("up")}
    assert up == {"distillserve-gateway": 1.0, "distillserve-distiller": 1.0, "vllm": 1.0}
    groups = httpx.get(f"{loop.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    bad = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert not bad
    # vLLM's CPU build on an untrained model can be slow enough to burn the student's latency
    # budget for real; nothing else may fire (no drops, no stall, no teacher errors, all up).
    firing = {r["metric"]["alertname"] for r in loop.prometheus.query('ALERTS{alertstate="firing"}')}
    assert firing <= {
        "DistillserveLatencySLOBurnFast",
        "DistillserveLatencySLOBurnSlow",
        "DistillserveStudentTTFTHigh",
    }
