"""Generate the Grafana dashboards in ``dashboards/`` (run after editing; a test checks the JSON is in sync).

    .venv/bin/python deploy/grafana/generate_dashboards.py

Two boards: an SRE overview (traffic, latency and TTFT by route, errors, teacher share,
fallbacks, routing, teacher log / Kafka, vLLM) and a learning-loop board for ML engineers
(adapter versions over time, eval results, agreement and drift, teacher-share trend,
distiller runs and losses). Every query's metric names come from
``distillserve/monitoring/metrics.py``, the recording rules in ``deploy/prometheus/rules`` or
vLLM's own ``vllm:*`` metrics; tests/deploy/test_dashboards.py runs every query against a real
Prometheus scraping a real gateway.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
GW = 'job=~"$job"'
DIST = 'job=~"$distiller_job"'
VLLM = 'job=~"$vllm_job"'
RI = "$__rate_interval"
ROUTED = 'route=~"student|teacher"'  # requests rejected before routing have route="none"


def _sibling(name: str) -> Any:
    """A panel-group module beside this script (built with grafana-foundation-sdk), loaded by path:
    this script runs as a file, not as a package."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class Board:
    """Lays panels out on Grafana's 24-column grid, row by row."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._x = 0
        self._y = 0
        self._h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "panels": [],
            }
        )
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._y += self._h
            self._x, self._h = 0, 0

    def add(self, panel: dict[str, Any], w: int = 8, h: int = 8) -> None:
        if self._x + w > 24:
            self._newline()
        panel["gridPos"] = {"h": h, "w": w, "x": self._x, "y": self._y}
        self._x += w
        self._h = max(self._h, h)
        self.panels.append(panel)

    def numbered(self) -> list[dict[str, Any]]:
        for i, p in enumerate(self.panels, start=1):
            p["id"] = i
        return self.panels


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"], t["range"] = True, False
    return t


def targets(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(pairs)]


def timeseries(title: str, tgts: list[dict[str, Any]], unit: str = "short", desc: str = "", **opts: Any):
    defaults: dict[str, Any] = {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}
    defaults.update(opts)
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
    }


def stat(title: str, tgts: list[dict[str, Any]], unit: str = "short", desc: str = "", **defaults: Any):
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {"defaults": {"unit": unit, **defaults}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    }


def quantiles(metric: str, by: str, selector: str, qs=(0.5, 0.95, 0.99)) -> list[dict[str, Any]]:
    return targets(
        *(
            (
                f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RI}])))",
                f"p{round(q * 100)} {{{{{by}}}}}",
            )
            for q in qs
        )
    )


def variables(*, route: bool) -> dict[str, Any]:
    def job(name: str, label: str, default: str, metric: str) -> dict[str, Any]:
        q = f"label_values({metric}, job)"
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": q, "refId": f"{name}-values"},
            "definition": q,
            "current": {"text": default, "value": default},
            "includeAll": False,
            "multi": False,
            "refresh": 2,
        }

    out = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {"text": "Prometheus", "value": "prometheus"},
        },
        job("job", "Gateway job", "distillserve-gateway", "distillserve_build_info"),
        job("distiller_job", "Distiller job", "distillserve-distiller", "distillserve_build_info"),
        job("vllm_job", "vLLM job", "vllm", "vllm:num_requests_running"),
    ]
    if route:
        out.append(
            {
                "name": "route",
                "label": "Route",
                "type": "custom",
                "query": "student,teacher",
                "options": [
                    {"text": "student", "value": "student", "selected": False},
                    {"text": "teacher", "value": "teacher", "selected": False},
                ],
                "includeAll": True,
                "allValue": "student|teacher",
                "multi": True,
                "current": {"text": ["All"], "value": ["$__all"]},
            }
        )
    return {"list": out}


def dashboard(uid: str, title: str, board: Board, *, route: bool, desc: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["distillserve"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": variables(route=route),
        "annotations": {"list": []},
        "links": [],
        "panels": board.numbered(),
    }


# --- SRE overview --------------------------------------------------------------------------------
def sre_overview() -> dict[str, Any]:
    sel = f'{GW}, route=~"$route"'
    req = "distillserve_requests_total"
    b = Board()
    b.row("Traffic")
    b.add(
        timeseries(
            "Requests per second by route",
            targets((f"sum by (route) (rate({req}{{{sel}}}[{RI}]))", "{{route}}")),
            "reqps",
        )
    )
    b.add(
        timeseries(
            "Requests per second by status",
            targets((f"sum by (status) (rate({req}{{{GW}}}[{RI}]))", "{{status}}")),
            "reqps",
        )
    )
    b.add(
        timeseries(
            "Teacher share",
            targets(
                (
                    f'sum(rate({req}{{{GW}, route="teacher"}}[{RI}])) / sum(rate({req}{{{GW}, {ROUTED}}}[{RI}]))',
                    "teacher share",
                )
            ),
            "percentunit",
            "Share of client requests the teacher answered: the cost driver.",
            min=0,
            max=1,
        )
    )
    b.add(
        timeseries(
            "Requests in flight",
            targets((f"sum by (route) (distillserve_requests_in_flight{{{sel}}})", "{{route}}")),
        )
    )
    b.add(
        timeseries(
            "Tokens per second",
            targets(
                (
                    f"sum by (route, direction) (rate(distillserve_tokens_total{{{sel}}}[{RI}]))",
                    "{{route}} {{direction}}",
                )
            ),
        )
    )
    b.add(
        stat(
            "Live adapter",
            [target(f"distillserve_live_adapter_info{{{GW}}} == 1", "{{version}}", instant=True)],
            desc="The LoRA adapter version the student route serves (base = no adapter).",
        )
    )
    b.row("Latency")
    b.add(
        timeseries(
            "Request latency p50 / p95 / p99 by route",
            quantiles("distillserve_request_duration_seconds", "route", f'{sel}, status="200"'),
            "s",
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Time to first token p50 / p95 / p99 by route",
            quantiles("distillserve_time_to_first_token_seconds", "route", sel),
            "s",
            "Streamed requests only.",
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Request latency p95 by backend",
            quantiles("distillserve_request_duration_seconds", "backend", f'{sel}, status="200"', qs=(0.95,)),
            "s",
        )
    )
    b.add(
        timeseries(
            "Latency SLO: share of requests missing the objective (5m)",
            targets(('distillserve:request_latency_slo_miss:ratio_rate5m{route=~"$route"}', "{{route}}")),
            "percentunit",
            "Objective: 99% of successful requests within 1 s (student) / 30 s (teacher).",
        )
    )
    b.add(
        timeseries(
            "Latency error-budget burn rate (1h)",
            targets(
                ('distillserve:request_latency_slo_miss:ratio_rate1h{route=~"$route"} / 0.01', "{{route}}")
            ),
            "x",
            "1 = the budget lasts exactly the SLO period; the page fires above 14.4.",
        )
    )
    b.row("Errors and fallbacks")
    b.add(
        timeseries(
            "5xx error ratio",
            targets(
                (
                    f'sum(rate({req}{{{sel}, status=~"5.."}}[{RI}])) / sum(rate({req}{{{sel}}}[{RI}]))',
                    "5xx ratio",
                )
            ),
            "percentunit",
        )
    )
    b.add(
        timeseries(
            "Client errors (4xx) per second",
            targets((f'sum by (status) (rate({req}{{{GW}, status=~"4.."}}[{RI}]))', "{{status}}")),
            "reqps",
            "Includes requests rejected before routing (route none): bad body, key or model.",
        )
    )
    b.add(
        timeseries(
            "Backend errors per second",
            targets(
                (
                    f"sum by (route, backend, kind) (rate(distillserve_backend_errors_total{{{sel}}}[{RI}]))",
                    "{{route}} {{backend}} {{kind}}",
                )
            ),
        )
    )
    b.add(
        timeseries(
            "Fallbacks per second",
            targets(
                (
                    f"sum by (from_route, to_route) (rate(distillserve_fallbacks_total{{{GW}}}[{RI}]))",
                    "{{from_route}} → {{to_route}}",
                )
            ),
            desc="Requests re-routed because their backend failed.",
        )
    )
    b.row("Routing")
    b.add(
        timeseries(
            "Route decisions per second by reason",
            targets(
                (
                    f"sum by (route, reason) (rate(distillserve_route_decisions_total{{{sel}}}[{RI}]))",
                    "{{route}} {{reason}}",
                )
            ),
        )
    )
    b.add(
        timeseries(
            "Difficulty score p50 / p90",
            quantiles("distillserve_router_difficulty_score", "scorer", GW, qs=(0.5, 0.9)),
            min=0,
            max=1,
        )
    )
    b.add(
        timeseries("Routing threshold", targets((f"max(distillserve_router_threshold{{{GW}}})", "threshold")))
    )
    b.add(
        timeseries(
            "Router decision time p99",
            quantiles("distillserve_router_decision_seconds", "scorer", GW, qs=(0.99,)),
            "s",
        )
    )
    b.add(
        timeseries(
            "Scorer fallbacks per second",
            targets(
                (
                    f"sum by (scorer, reason) (rate(distillserve_router_scorer_fallbacks_total{{{GW}}}[{RI}]))",
                    "{{scorer}} {{reason}}",
                )
            ),
        )
    )
    b.row("Teacher log and Kafka")
    b.add(
        timeseries(
            "Teacher-log records per second by outcome",
            targets(
                (
                    f"sum by (outcome) (rate(distillserve_teacher_log_records_total{{{GW}}}[{RI}]))",
                    "{{outcome}}",
                )
            ),
        ),
        w=6,
    )
    b.add(
        timeseries(
            "Disk spool",
            targets((f"sum by (instance) (distillserve_teacher_log_spool_bytes{{{GW}}})", "{{instance}}")),
            "bytes",
            "Grows while Kafka is unreachable; replayed when it returns.",
        ),
        w=6,
    )
    b.add(
        timeseries(
            "Producer queue depth",
            targets((f"sum by (instance) (distillserve_teacher_log_queue_depth{{{GW}}})", "{{instance}}")),
        ),
        w=6,
    )
    b.add(
        timeseries(
            "Consumer lag",
            targets(
                (
                    f"max by (group) (distillserve_teacher_log_consumer_lag_records{{{DIST}}})",
                    "{{group}}",
                )
            ),
            desc="High watermark minus committed offset, summed over partitions.",
        ),
        w=6,
    )
    b.row("Student engine (vLLM)")
    b.add(
        timeseries(
            "vLLM requests running / waiting",
            targets(
                (f"sum by (instance) (vllm:num_requests_running{{{VLLM}}})", "running {{instance}}"),
                (f"sum by (instance) (vllm:num_requests_waiting{{{VLLM}}})", "waiting {{instance}}"),
            ),
        )
    )
    b.add(
        timeseries(
            "vLLM KV cache usage",
            targets((f"max by (instance) (vllm:kv_cache_usage_perc{{{VLLM}}})", "{{instance}}")),
            "percentunit",
        )
    )
    b.add(
        timeseries(
            "vLLM time to first token p95",
            targets(
                (
                    "histogram_quantile(0.95, sum by (le, instance) "
                    f"(rate(vllm:time_to_first_token_seconds_bucket{{{VLLM}}}[{RI}])))",
                    "{{instance}}",
                )
            ),
            "s",
        )
    )
    b.row("Cost and savings")
    for panel, width in _sibling("cost_panels").cost_panels():
        b.add(panel, w=width)
    b.row("Health")
    b.add(
        stat(
            "Targets up",
            [target('up{job=~"$job|$distiller_job|$vllm_job"}', "{{job}} {{instance}}", instant=True)],
        ),
        w=12,
        h=5,
    )
    b.add(
        stat(
            "Alerts firing",
            [target('count(ALERTS{alertstate="firing"}) or vector(0)', "firing", instant=True)],
        ),
        w=12,
        h=5,
    )
    return dashboard(
        "distillserve-sre",
        "distillserve / SRE overview",
        b,
        route=True,
        desc="Traffic, latency and TTFT by route, errors, teacher share, fallbacks, teacher log and Kafka lag, "
        "spend and savings.",
    )


# --- learning loop -------------------------------------------------------------------------------
def learning_loop() -> dict[str, Any]:
    req = "distillserve_requests_total"
    b = Board()
    b.row("Adapters")
    b.add(
        {
            **timeseries(
                "Live adapter version over time",
                targets((f"max by (version) (distillserve_live_adapter_info{{{GW}}})", "{{version}}")),
            ),
            "type": "state-timeline",
            "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
        },
        w=12,
    )
    b.add(
        timeseries(
            "Hot-swaps by outcome (per hour)",
            targets(
                (f"sum by (outcome) (increase(distillserve_adapter_swaps_total{{{GW}}}[1h]))", "{{outcome}}")
            ),
        ),
        w=6,
    )
    b.add(
        timeseries(
            "Hot-swap duration p95",
            quantiles("distillserve_adapter_swap_duration_seconds", "job", GW, qs=(0.95,)),
            "s",
        ),
        w=6,
    )
    b.add(
        {
            **stat(
                "Eval results per adapter version",
                [
                    target(
                        f"max by (version, dataset, metric) (distillserve_adapter_eval_score{{{DIST}}})",
                        "{{version}} {{dataset}} {{metric}}",
                        instant=True,
                    )
                ],
                "percentunit",
            ),
            "type": "bargauge",
            "options": {"orientation": "horizontal", "displayMode": "gradient"},
        },
        w=24,
    )
    b.row("Agreement and drift (shadow pairs)")
    b.add(
        timeseries(
            "Student/teacher agreement: rolling and baseline",
            targets(
                (f"distillserve_student_agreement_ratio{{{GW}}}", "{{adapter}} rolling"),
                (f"distillserve_student_agreement_baseline_ratio{{{GW}}}", "{{adapter}} baseline"),
            ),
            "percentunit",
            min=0,
            max=1,
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Drift below baseline",
            targets((f"distillserve_student_drift_ratio{{{GW}}}", "{{adapter}}")),
            "percentunit",
            "Baseline agreement minus rolling agreement; the alert pages above 10 points.",
            min=0,
        ),
        w=12,
    )
    b.add(
        timeseries(
            "Shadow comparisons per second by outcome",
            targets(
                (f"sum by (outcome) (rate(distillserve_shadow_pairs_total{{{GW}}}[{RI}]))", "{{outcome}}")
            ),
        )
    )
    sim = "distillserve_shadow_similarity_score"
    b.add(
        timeseries(
            "Shadow answer similarity (mean)",
            targets(
                (
                    f"sum by (scorer) (rate({sim}_sum{{{GW}}}[{RI}])) / sum by (scorer) (rate({sim}_count{{{GW}}}[{RI}]))",
                    "{{scorer}}",
                )
            ),
            desc="1 = same answer. With the exact or normalized scorer this equals the agreement rate.",
            min=0,
            max=1,
        )
    )
    b.add(
        timeseries(
            "Agreement window fill",
            targets((f"distillserve_student_agreement_window_pairs{{{GW}}}", "{{adapter}}")),
            desc="Pairs in the rolling window; drift alerts need at least 50.",
        ),
        w=4,
    )
    b.add(
        timeseries(
            "Shadow comparison time p95",
            quantiles("distillserve_shadow_duration_seconds", "job", GW, qs=(0.95,)),
            "s",
            "Teacher call plus scoring, in the background: clients never wait for it.",
        ),
        w=4,
    )
    b.row("Teacher share trend")
    b.add(
        timeseries(
            "Teacher share (5m and 1h)",
            targets(
                ("distillserve:teacher_share:ratio_rate5m", "5m"),
                (
                    f'sum(rate({req}{{{GW}, route="teacher"}}[1h])) / sum(rate({req}{{{GW}, {ROUTED}}}[1h]))',
                    "1h",
                ),
            ),
            "percentunit",
            "Falls as the student learns what the teacher used to answer.",
            min=0,
            max=1,
        ),
        w=16,
    )
    b.add(
        timeseries(
            "Cascade escalations per second",
            targets((f"sum(rate(distillserve_cascade_escalations_total{{{GW}}}[{RI}]))", "escalations")),
        ),
        w=8,
    )
    b.row("Distiller")
    b.add(
        timeseries(
            "Distiller runs by outcome (per hour)",
            targets(
                (
                    f"sum by (outcome) (increase(distillserve_distiller_runs_total{{{DIST}}}[1h]))",
                    "{{outcome}}",
                )
            ),
        )
    )
    b.add(
        timeseries(
            "Training loss of the last run",
            targets((f"max by (kind) (distillserve_distiller_loss{{{DIST}}})", "{{kind}}")),
        )
    )
    b.add(
        timeseries(
            "Run duration p50 / p95",
            quantiles("distillserve_distiller_run_duration_seconds", "job", DIST, qs=(0.5, 0.95)),
            "s",
        )
    )
    b.add(
        timeseries(
            "Records consumed per second by outcome",
            targets(
                (
                    f"sum by (outcome) (rate(distillserve_distiller_records_total{{{DIST}}}[{RI}]))",
                    "{{outcome}}",
                )
            ),
        )
    )
    b.add(
        stat(
            "Time since the last run",
            [
                target(
                    f"time() - max(distillserve_distiller_last_run_timestamp_seconds{{{DIST}}} > 0)",
                    "since last run",
                    instant=True,
                )
            ],
            "s",
        )
    )
    b.add(
        timeseries(
            "Consumer lag",
            targets(
                (f"max by (group) (distillserve_teacher_log_consumer_lag_records{{{DIST}}})", "{{group}}")
            ),
        )
    )
    return dashboard(
        "distillserve-learning",
        "distillserve / learning loop",
        b,
        route=False,
        desc="Adapter versions, eval results, student/teacher agreement and drift, teacher share, distiller.",
    )


DASHBOARDS = {"sre-overview.json": sre_overview, "learning-loop.json": learning_loop}


def render() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
