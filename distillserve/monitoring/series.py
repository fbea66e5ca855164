"""Create labelled series with their known label values at start-up (Prometheus practice):
dashboards and alerts then see zeros instead of absent series, and ``rate()`` over a
counter's first increment is not lost. Only counters, histograms and state gauges are
initialised; measured gauges (agreement, drift) stay absent until something is measured,
because a made-up zero would read as a real value."""

from __future__ import annotations

from collections.abc import Iterable

from distillserve.monitoring import metrics


def init_gateway_series(
    *,
    student_backend: str,
    teacher_backend: str,
    scorer: str,
    student_name: str,
    live_adapter: str | None,
    shadow_scorer: str | None = None,
    statuses: Iterable[str] = metrics.STATUSES,
) -> None:
    backend_of = {"student": student_backend, "teacher": teacher_backend}
    statuses = tuple(statuses)
    for route, backend in backend_of.items():
        for endpoint in metrics.ENDPOINTS:
            for status in statuses:
                labels = {"endpoint": endpoint, "route": route, "backend": backend, "status": status}
                metrics.REQUESTS.labels(**labels)
            # Latency panels and the SLO read successful requests; other statuses' histograms
            # appear when they happen (each one is 17 series).
            metrics.REQUEST_DURATION.labels(endpoint=endpoint, route=route, backend=backend, status="200")
        metrics.TIME_TO_FIRST_TOKEN.labels(route=route, backend=backend)
        metrics.REQUESTS_IN_FLIGHT.labels(route=route)
        for direction in ("prompt", "completion"):
            metrics.TOKENS.labels(route=route, direction=direction)
        for kind in metrics.BACKEND_ERROR_KINDS:
            metrics.BACKEND_ERRORS.labels(backend=backend, route=route, kind=kind)
        for reason in metrics.ROUTE_REASONS:
            metrics.ROUTE_DECISIONS.labels(route=route, reason=reason)
    # Requests rejected before routing (bad body, key, model): route and backend "none".
    for endpoint in metrics.ENDPOINTS:
        for status in metrics.REJECTED_STATUSES:
            metrics.REQUESTS.labels(endpoint=endpoint, route="none", backend="none", status=status)
    metrics.FALLBACKS.labels(from_route="student", to_route="teacher")
    metrics.FALLBACKS.labels(from_route="teacher", to_route="student")
    metrics.ROUTER_DIFFICULTY.labels(scorer=scorer)
    metrics.ROUTER_SCORER_DURATION.labels(scorer=scorer)
    for reason in ("timeout", "error"):
        metrics.ROUTER_SCORER_FALLBACKS.labels(scorer=scorer, reason=reason)
    for outcome in metrics.TEACHER_LOG_OUTCOMES:
        metrics.TEACHER_LOG_RECORDS.labels(outcome=outcome)
    for outcome in metrics.ADAPTER_SWAP_OUTCOMES:
        metrics.ADAPTER_SWAPS.labels(outcome=outcome)
    for feature in metrics.FEATURES:
        for outcome in metrics.UNSUPPORTED_FEATURE_OUTCOMES:
            metrics.UNSUPPORTED_FEATURE_REQUESTS.labels(feature=feature, outcome=outcome)
    metrics.TEACHER_LOGPROBS_REFUSED.labels(backend=teacher_backend)
    # The info metric is a state, known at start: this version serves (the base model if none).
    metrics.LIVE_ADAPTER.labels(base=student_name, version=live_adapter or metrics.BASE_VERSION).set(1)
    if shadow_scorer is not None:
        for outcome in metrics.SHADOW_OUTCOMES:
            metrics.SHADOW_PAIRS.labels(outcome=outcome)
        metrics.SHADOW_SIMILARITY.labels(scorer=shadow_scorer)


def init_distiller_series(*, run_outcomes: Iterable[str], record_outcomes: Iterable[str]) -> None:
    """For the distiller process: its run and record outcomes. The consumer lag is a measurement
    and appears with the first one."""
    for outcome in run_outcomes:
        metrics.DISTILLER_RUNS.labels(outcome=outcome)
    for outcome in record_outcomes:
        metrics.DISTILLER_RECORDS.labels(outcome=outcome)
    for reason in metrics.DISTILLER_KD_FALLBACK_REASONS:
        metrics.DISTILLER_KD_FALLBACKS.labels(reason=reason)
