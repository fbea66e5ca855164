"""The metrics module declares its whole set in any registry, and a test can swap in its own."""

from __future__ import annotations

from dataclasses import fields

from prometheus_client import REGISTRY, CollectorRegistry

from distillserve.monitoring import metrics
from distillserve.monitoring.series import init_distiller_series, init_gateway_series
from tests.support.metrics import sample


def _families(registry: CollectorRegistry) -> dict[str, tuple[str, str]]:
    return {
        f.name: (f.type, f.documentation) for f in registry.collect() if f.name.startswith("distillserve")
    }


def test_module_names_are_the_default_set() -> None:
    for f in fields(metrics.Metrics):
        assert getattr(metrics, f.name) is getattr(metrics.DEFAULT, f.name), f.name


def test_a_fresh_registry_holds_the_same_metrics_as_the_default_one() -> None:
    registry = CollectorRegistry()
    metrics.declare(registry)
    assert _families(registry) == _families(REGISTRY)
    build = [s for f in registry.collect() for s in f.samples if s.name == "distillserve_build_info"]
    assert [s.value for s in build] == [1.0] and build[0].labels["version"]


def test_fresh_metrics_counts_in_the_tests_registry_only(fresh_metrics: CollectorRegistry) -> None:
    before = REGISTRY.get_sample_value("distillserve_adapter_swaps_total", {"outcome": "refused"}) or 0.0
    metrics.ADAPTER_SWAPS.labels(outcome="refused").inc()
    assert sample(fresh_metrics, "distillserve_adapter_swaps_total", outcome="refused") == 1.0
    after = REGISTRY.get_sample_value("distillserve_adapter_swaps_total", {"outcome": "refused"}) or 0.0
    assert after == before
    assert metrics.ADAPTER_SWAPS is not metrics.DEFAULT.ADAPTER_SWAPS


def test_series_are_initialised_in_the_swapped_in_set(fresh_metrics: CollectorRegistry) -> None:
    init_gateway_series(
        student_backend="testbed",
        teacher_backend="vllm",
        scorer="heuristic",
        student_name="student",
        live_adapter="v3",
        shadow_scorer="exact",
    )
    init_distiller_series(run_outcomes=metrics.DISTILLER_RUN_OUTCOMES, record_outcomes=("kept",))
    get = fresh_metrics.get_sample_value
    labels = {"endpoint": "chat", "route": "teacher", "backend": "vllm", "status": "503"}
    assert get("distillserve_requests_total", labels) == 0.0
    assert get("distillserve_live_adapter_info", {"base": "student", "version": "v3"}) == 1.0
    assert get("distillserve_shadow_pairs_total", {"outcome": "agree"}) == 0.0
    assert get("distillserve_distiller_runs_total", {"outcome": "held"}) == 0.0
    assert get("distillserve_distiller_records_total", {"outcome": "kept"}) == 0.0
