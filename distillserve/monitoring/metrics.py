"""Every Prometheus metric of distillserve, declared once.

Names follow Prometheus conventions (base units, ``_seconds``, ``_total``); labels
take values from small fixed sets (routes, backend kinds, outcomes) or adapter
versions, which are few.

``declare(registry)`` makes the whole set in one registry. With ``server.workers`` > 1 every
worker writes its values under ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them
(``multiprocess_registry``): a gauge says how its workers combine (``livesum`` for what is in
flight now, ``mostrecent`` for state the workers share, e.g. the live adapter). The process's set lives in
prometheus_client's default registry (what ``/metrics`` exports) under this module's names:
observe a metric as ``metrics.REQUESTS``, looked up when observed, never imported by name or
kept at import time, so that a test can swap in a set of its own (``tests/support/metrics.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

# Latency buckets from 5 ms to 2 min: CPU students answer in tens of ms, reasoning teachers in minutes.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TTFT = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Known label values, for the start-up initialisation in ``monitoring.series`` (dashboards and alerts
# then see zeros instead of absent series) and for code that observes these metrics.
ROUTES = ("student", "teacher")
ENDPOINTS = ("chat", "completions")
# Statuses a request can end with; others (e.g. an upstream's 429) still appear once they happen.
STATUSES = ("200", "400", "401", "404", "413", "499", "500", "502", "503", "504")
# Requests refused before routing are counted with route="none", backend="none".
REJECTED_STATUSES = ("400", "401", "404", "413")
BACKEND_ERROR_KINDS = (
    "backend_unavailable",
    "backend_timeout",
    "server_error",
    "invalid_request_error",
    "bad_upstream_response",  # not JSON, no choices, a stream cut off before its finish reason
)
ROUTE_REASONS = ("score", "forced", "key_override", "pinned", "capability")
# What a request may need beyond text (``protocol.schema.FEATURES``), and what became of one the
# student cannot serve: sent to the teacher, or refused with a 400 (forced to the student, or no
# backend serves it).
FEATURES = ("tools", "json_schema", "vision")
UNSUPPORTED_FEATURE_OUTCOMES = ("teacher", "refused")
# invalid: a teacher answer that could not become a record (dead-lettered by the gateway).
# "opted_out": served, but kept out of the log by its key or its x-distillserve-log header.
TEACHER_LOG_OUTCOMES = (
    "produced",
    "spooled",
    "replayed",
    "dropped",
    "dead_lettered",
    "invalid",
    "opted_out",
)
SHADOW_OUTCOMES = (
    "agree",  # teacher answered, the pair agrees
    "disagree",  # teacher answered, the pair disagrees
    "teacher_error",  # teacher failed: no pair, no record
    "teacher_timeout",  # teacher slower than monitoring.shadow_timeout_s
    "skipped_busy",  # sampled, but shadow_max_concurrency comparisons were already running
    "scoring_error",  # the agreement scorer failed (e.g. embedding model missing)
)
ADAPTER_SWAP_OUTCOMES = ("swapped", "refused")
DISTILLER_RUN_OUTCOMES = ("promoted", "held", "refused", "skipped", "failed")
JUDGE_CALL_OUTCOMES = ("ok", "unparsed", "error")
# What became of a training example longer than the sequence budget (``distiller.encoding``).
DISTILLER_LONG_OUTCOMES = (
    "reasoning_clipped",
    "dropped_by_policy",
    "no_reasoning_to_clip",
    "answer_too_long",
)
# Why a record's teacher logprobs were not used for token-level KD (it trained on CE alone).
DISTILLER_KD_FALLBACK_REASONS = (
    "nonfinite_logprob",  # -inf or NaN in a sampled or top-k logprob
    "top_k_mismatch",  # a position's top list longer or shorter than the record's announced k
    "text_mismatch",  # the sampled tokens do not spell the answer text
    "bytes_token",  # a sampled byte-level token ("bytes:\\xe2..." form) has no character offsets
    "unmappable",  # ``exact``: a sampled token is not one student token
)
# The value of ``version`` in ``distillserve_live_adapter_info`` while the base model serves (no adapter).
BASE_VERSION = "base"


class _Maker:
    """Declares metrics in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(
        self, name: str, doc: str, labels: Sequence[str] = (), *, across_workers: str = "mostrecent"
    ) -> Gauge:
        """``across_workers``: how /metrics combines the workers' values (prometheus_client's
        ``multiprocess_mode``; ignored in a single process)."""
        return Gauge(name, doc, labels, registry=self.registry, multiprocess_mode=across_workers)

    def histogram(
        self, name: str, doc: str, labels: Sequence[str] = (), *, buckets: Sequence[float]
    ) -> Histogram:
        return Histogram(name, doc, labels, registry=self.registry, buckets=buckets)


def _build_info(m: _Maker) -> Gauge:
    # A gauge of 1 exposes what an Info would (``distillserve_build_info{version=…} 1``), and works
    # across worker processes, where prometheus_client has no Info.
    info = m.gauge(
        "distillserve_build_info", "Version of the distillserve code in this process.", ["version"]
    )
    try:
        info.labels(version=version("distillserve")).set(1)
    except PackageNotFoundError:  # running from a checkout that was never installed
        info.labels(version="unknown").set(1)
    return info


def _gateway(m: _Maker) -> dict[str, Any]:
    return dict(
        REQUESTS=m.counter(
            "distillserve_requests_total",
            "Requests answered by the gateway.",
            ["endpoint", "route", "backend", "status"],
        ),
        REQUEST_DURATION=m.histogram(
            "distillserve_request_duration_seconds",
            "Time from request received to last byte sent.",
            ["endpoint", "route", "backend", "status"],
            buckets=_LATENCY,
        ),
        TIME_TO_FIRST_TOKEN=m.histogram(
            "distillserve_time_to_first_token_seconds",
            "Time from request received to the first content chunk of a streamed answer.",
            ["route", "backend"],
            buckets=_TTFT,
        ),
        REQUESTS_IN_FLIGHT=m.gauge(
            "distillserve_requests_in_flight",
            "Requests being answered now.",
            ["route"],
            across_workers="livesum",
        ),
        TOKENS=m.counter("distillserve_tokens_total", "Tokens processed.", ["route", "direction"]),
        BACKEND_ERRORS=m.counter(
            "distillserve_backend_errors_total", "Backend failures by kind.", ["backend", "route", "kind"]
        ),
        FALLBACKS=m.counter(
            "distillserve_fallbacks_total",
            "Requests re-routed because their backend failed.",
            ["from_route", "to_route"],
        ),
    )


def _router(m: _Maker) -> dict[str, Any]:
    return dict(
        ROUTE_DECISIONS=m.counter(
            "distillserve_route_decisions_total",
            "Routing decisions for model=auto and pinned models.",
            ["route", "reason"],
        ),
        ROUTER_DIFFICULTY=m.histogram(
            "distillserve_router_difficulty_score",
            "Difficulty scores given by the router.",
            ["scorer"],
            buckets=tuple(i / 20 for i in range(1, 21)),
        ),
        ROUTER_SCORER_FALLBACKS=m.counter(
            "distillserve_router_scorer_fallbacks_total",
            "Scorer failures or timeouts answered by the heuristic scorer instead.",
            ["scorer", "reason"],
        ),
        ROUTER_THRESHOLD=m.gauge("distillserve_router_threshold", "Current routing threshold."),
        ROUTER_RELABEL_FAILURES=m.counter(
            "distillserve_router_relabel_failures_total",
            "Recent conversations the student failed to re-answer for a router re-fit (timeout, "
            "error): left out of that fit and asked again at the next.",
            ["reason"],
        ),
        ROUTER_REFITS=m.counter(
            "distillserve_router_refits_total",
            "Router re-fits to the live student, by outcome (failed: kept the old classifier).",
            ["outcome"],
        ),
        ROUTER_SCORER_DURATION=m.histogram(
            "distillserve_router_decision_seconds",
            "Time to score one request.",
            ["scorer"],
            buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1),
        ),
        CASCADE_ESCALATIONS=m.counter(
            "distillserve_cascade_escalations_total",
            "Student answers escalated to the teacher for low confidence.",
        ),
        UNSUPPORTED_FEATURE_REQUESTS=m.counter(
            "distillserve_unsupported_feature_requests_total",
            "Requests needing a feature (tools, json_schema, vision) the student does not serve: "
            "sent to the teacher, or refused with a 400.",
            ["feature", "outcome"],
        ),
        TEACHER_LOGPROBS_REFUSED=m.counter(
            "distillserve_teacher_logprobs_refused_total",
            "Teacher calls refused for asking top_logprobs (teacher.top_logprobs), then answered "
            "without; after the first the teacher is no longer asked.",
            ["backend"],
        ),
    )


def _teacher_log(m: _Maker) -> dict[str, Any]:
    return dict(
        TEACHER_LOG_RECORDS=m.counter(
            "distillserve_teacher_log_records_total",
            "Teacher-log records by outcome (produced, spooled, replayed, dropped, dead_lettered, invalid, opted_out).",
            ["outcome"],
        ),
        TEACHER_LOG_QUEUE_DEPTH=m.gauge(
            "distillserve_teacher_log_queue_depth", "Records waiting in memory.", across_workers="livesum"
        ),
        TEACHER_LOG_SPOOL_BYTES=m.gauge(
            "distillserve_teacher_log_spool_bytes", "Bytes held in the disk spool.", across_workers="livesum"
        ),
        TEACHER_LOG_CONSUMER_LAG=m.gauge(
            "distillserve_teacher_log_consumer_lag_records",
            "High watermark minus committed offset, summed over partitions.",
            ["group"],
        ),
    )


def _distiller(m: _Maker) -> dict[str, Any]:
    return dict(
        DISTILLER_RUNS=m.counter(
            "distillserve_distiller_runs_total", "Training runs by outcome.", ["outcome"]
        ),
        DISTILLER_RUN_DURATION=m.histogram(
            "distillserve_distiller_run_duration_seconds",
            "Wall time of one training run including evaluation.",
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
        ),
        DISTILLER_LOSS=m.gauge(
            "distillserve_distiller_loss", "Final training loss of the last run.", ["kind"]
        ),
        DISTILLER_RECORDS=m.counter(
            "distillserve_distiller_records_total", "Records consumed by outcome.", ["outcome"]
        ),
        DISTILLER_LAST_RUN=m.gauge(
            "distillserve_distiller_last_run_timestamp_seconds", "Unix time the last training run finished."
        ),
        DISTILLER_LONG_EXAMPLES=m.counter(
            "distillserve_distiller_long_examples_total",
            "Training examples longer than the sequence budget, by what became of them "
            "(reasoning_clipped, dropped_by_policy, no_reasoning_to_clip, answer_too_long).",
            ["outcome"],
        ),
        DISTILLER_KD_FALLBACKS=m.counter(
            "distillserve_distiller_kd_fallbacks_total",
            "Training examples whose teacher logprobs could not be used for token-level KD (trained "
            "on CE alone), by reason (nonfinite_logprob, top_k_mismatch, text_mismatch, bytes_token, "
            "unmappable).",
            ["reason"],
        ),
        ADAPTER_EVAL=m.gauge(
            "distillserve_adapter_eval_score",
            "Evaluation results per adapter version.",
            ["version", "dataset", "metric"],
        ),
        LIVE_ADAPTER=m.gauge(
            "distillserve_live_adapter_info",
            "1 for the adapter version serving the student route.",
            ["base", "version"],
        ),
        ADAPTER_SWAPS=m.counter("distillserve_adapter_swaps_total", "Hot-swaps by outcome.", ["outcome"]),
        ADAPTER_SWAP_DURATION=m.histogram(
            "distillserve_adapter_swap_duration_seconds",
            "Time from promote to the new version serving.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ),
        ADAPTER_RESTORES=m.counter(
            "distillserve_adapter_restores_total",
            "Live or canary adapters reloaded after the student engine lost them (e.g. it restarted).",
        ),
    )


REGISTRY_SYNC_OUTCOMES = ("applied", "refused", "unreachable")


def _fleet(m: _Maker) -> dict[str, Any]:
    """Every gateway following the adapter registry's state (one truth across replicas)."""
    return dict(
        REGISTRY_SYNCS=m.counter(
            "distillserve_registry_syncs_total",
            "Registry state changes this gateway acted on, by outcome (refused: an adapter the "
            "engine or the checksums refused; unreachable: registry or engine down, retried).",
            ["outcome"],
        ),
        REGISTRY_IN_SYNC=m.gauge(
            "distillserve_registry_in_sync",
            "1 while the student route serves what the registry's state says (live, canary, share).",
        ),
        REGISTRY_CONVERGENCE=m.histogram(
            "distillserve_registry_convergence_seconds",
            "From a registry transition (promote, rollback, canary) to this gateway serving it.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
        ),
    )


ROUTER_MODEL_LOAD_OUTCOMES = ("loaded", "refused", "unreachable")
ROUTER_MODEL_PUBLISH_OUTCOMES = ("published", "stale", "failed")
FLEET_SHARE_SYNC_OUTCOMES = ("synced", "unreachable")


def _shared_routing(m: _Maker) -> dict[str, Any]:
    """One router for the fleet: the published classifier, the fleet's teacher share, fleet drift."""
    return dict(
        ROUTER_MODEL_LOADS=m.counter(
            "distillserve_router_model_loads_total",
            "Router classifiers read from the registry, by outcome (refused: corrupt, or fitted on "
            "another embedding model; unreachable: the registry did not answer, retried).",
            ["outcome"],
        ),
        ROUTER_MODEL_PUBLISHES=m.counter(
            "distillserve_router_model_publishes_total",
            "Router classifiers this gateway fitted and published, by outcome (stale: the live "
            "version changed during the fit; failed: the registry write failed).",
            ["outcome"],
        ),
        FLEET_SHARE_SYNCS=m.counter(
            "distillserve_router_fleet_share_syncs_total",
            "Exchanges of the target-share window with the other gateways (unreachable: Redis "
            "down, the policy runs on this gateway's own window meanwhile).",
            ["outcome"],
        ),
        FLEET_SHARE_GATEWAYS=m.gauge(
            "distillserve_router_fleet_share_gateways",
            "Gateways whose recent scores the target-share policy pooled at its last exchange.",
        ),
        STUDENT_AGREEMENT_PAIRS_TOTAL=m.counter(
            "distillserve_student_agreement_pairs_total",
            "Shadow pairs graded per adapter (agreed: true/false); summed across gateways by the "
            "fleet drift rule.",
            ["adapter", "agreed"],
        ),
    )


def _drift(m: _Maker) -> dict[str, Any]:
    return dict(
        # Shadow sampling: a share of student-served requests is also asked of the teacher in the background.
        SHADOW_PAIRS=m.counter(
            "distillserve_shadow_pairs_total", "Shadow comparisons by outcome.", ["outcome"]
        ),
        SHADOW_IN_FLIGHT=m.gauge(
            "distillserve_shadow_in_flight", "Shadow teacher requests running now.", across_workers="livesum"
        ),
        SHADOW_DURATION=m.histogram(
            "distillserve_shadow_duration_seconds",
            "Time of one shadow comparison: teacher call plus scoring.",
            buckets=_LATENCY,
        ),
        SHADOW_SIMILARITY=m.histogram(
            "distillserve_shadow_similarity_score",
            "Similarity of student and teacher answers on shadow pairs (1 = same).",
            ["scorer"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0),
        ),
        STUDENT_AGREEMENT_PAIRS=m.gauge(
            "distillserve_student_agreement_window_pairs",
            "Shadow pairs in the rolling agreement window (the window is full at monitoring.agreement_window).",
            ["adapter"],
        ),
        STUDENT_AGREEMENT=m.gauge(
            "distillserve_student_agreement_ratio",
            "Rolling student/teacher agreement on shadow pairs.",
            ["adapter"],
        ),
        STUDENT_AGREEMENT_BASELINE=m.gauge(
            "distillserve_student_agreement_baseline_ratio",
            "Agreement measured when the adapter was promoted.",
            ["adapter"],
        ),
        STUDENT_DRIFT=m.gauge(
            "distillserve_student_drift_ratio",
            "Drop of the rolling agreement below the baseline (baseline minus rolling, 0 when at or above it).",
            ["adapter"],
        ),
    )


def _keys(m: _Maker) -> dict[str, Any]:
    return dict(
        KEY_REFUSALS=m.counter(
            "distillserve_key_refusals_total",
            "Requests refused by their key's limits (reason: requests, tokens, budget).",
            ["tenant", "reason"],
        ),
        KEY_LIMITER_ERRORS=m.counter(
            "distillserve_key_limiter_errors_total",
            "Rate-limit storage unreachable: the request was served unlimited (step: admit, settle).",
            ["step"],
        ),
    )


# Money (``monitoring.cost``): USD from the ``pricing`` table. ``purpose`` says why tokens were
# spent: "serve" (a client request), "shadow" (a teacher comparison of a student answer), "judge"
# (the LLM-as-judge grader), "relabel" (the router asking the new student old conversations).
SPEND_PURPOSES = ("serve", "shadow", "judge", "relabel")


def _cost(m: _Maker) -> dict[str, Any]:
    return dict(
        SPEND=m.counter(
            "distillserve_spend_usd_total",
            "Money spent on LLM tokens (USD, priced from the pricing table), by route, tenant and purpose.",
            ["route", "tenant", "purpose"],
        ),
        SAVINGS=m.counter(
            "distillserve_savings_usd_total",
            "What the student-served requests would have cost on the teacher (USD, their prompt and "
            "completion tokens at the teacher's price): the teacher spend avoided.",
            ["tenant"],
        ),
        UNPRICED_TOKENS=m.counter(
            "distillserve_unpriced_tokens_total",
            "Tokens spent on a model the pricing table does not list (counted, not priced).",
            ["route", "purpose"],
        ),
        KEY_BUDGET_CHARGED=m.counter(
            "distillserve_key_budget_charged_total",
            "Amount charged to a key's budget (unit: tokens, or usd in dollars).",
            ["tenant", "key_alias", "unit"],
        ),
        KEY_BUDGET_LIMIT=m.gauge(
            "distillserve_key_budget_limit",
            "A key's budget per period (unit: tokens, or usd in dollars).",
            ["tenant", "key_alias", "unit"],
        ),
        KEY_BUDGET_PERIOD=m.gauge(
            "distillserve_key_budget_period_seconds",
            "Length of a key's budget period; the burn rate is charged/s over limit/period.",
            ["tenant", "key_alias", "unit"],
        ),
    )


def _engine(m: _Maker) -> dict[str, Any]:
    return dict(
        ENGINE_RUNNING=m.gauge(
            "distillserve_engine_running_requests",
            "Requests in the embedded engine's batch.",
            across_workers="livesum",
        ),
        ENGINE_WAITING=m.gauge(
            "distillserve_engine_waiting_requests",
            "Requests waiting for a batch slot.",
            across_workers="livesum",
        ),
        ENGINE_GENERATED_TOKENS=m.counter(
            "distillserve_engine_generated_tokens_total", "Tokens generated by the embedded engine."
        ),
        ENGINE_BATCH_ROWS=m.histogram(
            "distillserve_engine_batch_rows",
            "Rows in each decode step of the embedded engine.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
        ),
    )


def _grading(m: _Maker) -> dict[str, Any]:
    # ``purpose`` names why an LLM was called outside client requests ("judge" for now), so cost
    # accounting can price these calls beside the teacher's.
    return dict(
        LLM_CALLS=m.counter(
            "distillserve_llm_calls_total",
            "Calls to an LLM made by distillserve itself (e.g. the judge grader), by outcome.",
            ["purpose", "outcome"],
        ),
        LLM_TOKENS=m.counter(
            "distillserve_llm_tokens_total",
            "Tokens of the LLM calls distillserve makes itself, as the endpoint reported them.",
            ["purpose", "kind"],
        ),
        JUDGE_CACHE=m.counter(
            "distillserve_judge_cache_lookups_total",
            "Judge verdict cache lookups (by content hash), by result.",
            ["result"],
        ),
    )


def _privacy(m: _Maker) -> dict[str, Any]:
    return dict(
        TEACHER_LOG_SCRUBBED=m.counter(
            "distillserve_teacher_log_scrubbed_total",
            "PII and secrets replaced by a placeholder before a record entered the log, by entity type.",
            ["entity"],
        ),
        TEACHER_LOG_SCRUB_DURATION=m.histogram(
            "distillserve_teacher_log_scrub_seconds",
            "Time to scrub one teacher-log record.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        ),
        TENANT_DELETIONS=m.counter(
            "distillserve_tenant_deleted_examples_total",
            "Data of deleted tenants removed: replay examples purged, log records not trained on.",
            ["where"],
        ),
    )


@dataclass(frozen=True, slots=True)
class Metrics:
    """One set of every distillserve metric; field names are this module's names."""

    BUILD_INFO: Gauge
    REQUESTS: Counter
    REQUEST_DURATION: Histogram
    TIME_TO_FIRST_TOKEN: Histogram
    REQUESTS_IN_FLIGHT: Gauge
    TOKENS: Counter
    BACKEND_ERRORS: Counter
    FALLBACKS: Counter
    ROUTE_DECISIONS: Counter
    ROUTER_DIFFICULTY: Histogram
    ROUTER_SCORER_FALLBACKS: Counter
    ROUTER_THRESHOLD: Gauge
    ROUTER_RELABEL_FAILURES: Counter
    ROUTER_REFITS: Counter
    ROUTER_SCORER_DURATION: Histogram
    CASCADE_ESCALATIONS: Counter
    UNSUPPORTED_FEATURE_REQUESTS: Counter
    TEACHER_LOGPROBS_REFUSED: Counter
    TEACHER_LOG_RECORDS: Counter
    TEACHER_LOG_QUEUE_DEPTH: Gauge
    TEACHER_LOG_SPOOL_BYTES: Gauge
    TEACHER_LOG_CONSUMER_LAG: Gauge
    DISTILLER_RUNS: Counter
    DISTILLER_RUN_DURATION: Histogram
    DISTILLER_LOSS: Gauge
    DISTILLER_RECORDS: Counter
    DISTILLER_LAST_RUN: Gauge
    DISTILLER_LONG_EXAMPLES: Counter
    DISTILLER_KD_FALLBACKS: Counter
    ADAPTER_EVAL: Gauge
    LIVE_ADAPTER: Gauge
    ADAPTER_SWAPS: Counter
    ADAPTER_SWAP_DURATION: Histogram
    ADAPTER_RESTORES: Counter
    REGISTRY_SYNCS: Counter
    REGISTRY_IN_SYNC: Gauge
    REGISTRY_CONVERGENCE: Histogram
    SHADOW_PAIRS: Counter
    SHADOW_IN_FLIGHT: Gauge
    SHADOW_DURATION: Histogram
    SHADOW_SIMILARITY: Histogram
    STUDENT_AGREEMENT_PAIRS: Gauge
    STUDENT_AGREEMENT: Gauge
    STUDENT_AGREEMENT_BASELINE: Gauge
    STUDENT_DRIFT: Gauge
    ENGINE_RUNNING: Gauge
    ENGINE_WAITING: Gauge
    ENGINE_GENERATED_TOKENS: Counter
    ENGINE_BATCH_ROWS: Histogram
    LLM_CALLS: Counter
    LLM_TOKENS: Counter
    JUDGE_CACHE: Counter
    KEY_REFUSALS: Counter
    KEY_LIMITER_ERRORS: Counter
    SPEND: Counter
    SAVINGS: Counter
    UNPRICED_TOKENS: Counter
    KEY_BUDGET_CHARGED: Counter
    KEY_BUDGET_LIMIT: Gauge
    KEY_BUDGET_PERIOD: Gauge
    TEACHER_LOG_SCRUBBED: Counter
    TEACHER_LOG_SCRUB_DURATION: Histogram
    TENANT_DELETIONS: Counter
    ROUTER_MODEL_LOADS: Counter
    ROUTER_MODEL_PUBLISHES: Counter
    FLEET_SHARE_SYNCS: Counter
    FLEET_SHARE_GATEWAYS: Gauge
    STUDENT_AGREEMENT_PAIRS_TOTAL: Counter


def declare(registry: CollectorRegistry) -> Metrics:
    """Declare every metric in ``registry`` (the default one for the process, a fresh one in a test)."""
    m = _Maker(registry)
    return Metrics(
        BUILD_INFO=_build_info(m),
        **_gateway(m),
        **_router(m),
        **_teacher_log(m),
        **_distiller(m),
        **_fleet(m),
        **_drift(m),
        **_engine(m),
        **_grading(m),
        **_keys(m),
        **_cost(m),
        **_privacy(m),
        **_shared_routing(m),
    )


# The process's metrics, exported by ``/metrics``. Each name below is a field of ``Metrics``.
DEFAULT = declare(REGISTRY)
BUILD_INFO = DEFAULT.BUILD_INFO
REQUESTS = DEFAULT.REQUESTS
REQUEST_DURATION = DEFAULT.REQUEST_DURATION
TIME_TO_FIRST_TOKEN = DEFAULT.TIME_TO_FIRST_TOKEN
REQUESTS_IN_FLIGHT = DEFAULT.REQUESTS_IN_FLIGHT
TOKENS = DEFAULT.TOKENS
BACKEND_ERRORS = DEFAULT.BACKEND_ERRORS
FALLBACKS = DEFAULT.FALLBACKS
ROUTE_DECISIONS = DEFAULT.ROUTE_DECISIONS
ROUTER_DIFFICULTY = DEFAULT.ROUTER_DIFFICULTY
ROUTER_SCORER_FALLBACKS = DEFAULT.ROUTER_SCORER_FALLBACKS
ROUTER_THRESHOLD = DEFAULT.ROUTER_THRESHOLD
ROUTER_RELABEL_FAILURES = DEFAULT.ROUTER_RELABEL_FAILURES
ROUTER_REFITS = DEFAULT.ROUTER_REFITS
ROUTER_SCORER_DURATION = DEFAULT.ROUTER_SCORER_DURATION
CASCADE_ESCALATIONS = DEFAULT.CASCADE_ESCALATIONS
UNSUPPORTED_FEATURE_REQUESTS = DEFAULT.UNSUPPORTED_FEATURE_REQUESTS
TEACHER_LOGPROBS_REFUSED = DEFAULT.TEACHER_LOGPROBS_REFUSED
TEACHER_LOG_RECORDS = DEFAULT.TEACHER_LOG_RECORDS
TEACHER_LOG_QUEUE_DEPTH = DEFAULT.TEACHER_LOG_QUEUE_DEPTH
TEACHER_LOG_SPOOL_BYTES = DEFAULT.TEACHER_LOG_SPOOL_BYTES
TEACHER_LOG_CONSUMER_LAG = DEFAULT.TEACHER_LOG_CONSUMER_LAG
DISTILLER_RUNS = DEFAULT.DISTILLER_RUNS
DISTILLER_RUN_DURATION = DEFAULT.DISTILLER_RUN_DURATION
DISTILLER_LOSS = DEFAULT.DISTILLER_LOSS
DISTILLER_RECORDS = DEFAULT.DISTILLER_RECORDS
DISTILLER_LAST_RUN = DEFAULT.DISTILLER_LAST_RUN
DISTILLER_LONG_EXAMPLES = DEFAULT.DISTILLER_LONG_EXAMPLES
DISTILLER_KD_FALLBACKS = DEFAULT.DISTILLER_KD_FALLBACKS
ADAPTER_EVAL = DEFAULT.ADAPTER_EVAL
LIVE_ADAPTER = DEFAULT.LIVE_ADAPTER
ADAPTER_SWAPS = DEFAULT.ADAPTER_SWAPS
ADAPTER_SWAP_DURATION = DEFAULT.ADAPTER_SWAP_DURATION
ADAPTER_RESTORES = DEFAULT.ADAPTER_RESTORES
SHADOW_PAIRS = DEFAULT.SHADOW_PAIRS
SHADOW_IN_FLIGHT = DEFAULT.SHADOW_IN_FLIGHT
SHADOW_DURATION = DEFAULT.SHADOW_DURATION
SHADOW_SIMILARITY = DEFAULT.SHADOW_SIMILARITY
STUDENT_AGREEMENT_PAIRS = DEFAULT.STUDENT_AGREEMENT_PAIRS
STUDENT_AGREEMENT = DEFAULT.STUDENT_AGREEMENT
STUDENT_AGREEMENT_BASELINE = DEFAULT.STUDENT_AGREEMENT_BASELINE
STUDENT_DRIFT = DEFAULT.STUDENT_DRIFT
ENGINE_RUNNING = DEFAULT.ENGINE_RUNNING
ENGINE_WAITING = DEFAULT.ENGINE_WAITING
ENGINE_GENERATED_TOKENS = DEFAULT.ENGINE_GENERATED_TOKENS
ENGINE_BATCH_ROWS = DEFAULT.ENGINE_BATCH_ROWS
LLM_CALLS = DEFAULT.LLM_CALLS
LLM_TOKENS = DEFAULT.LLM_TOKENS
JUDGE_CACHE = DEFAULT.JUDGE_CACHE
REGISTRY_SYNCS = DEFAULT.REGISTRY_SYNCS
REGISTRY_IN_SYNC = DEFAULT.REGISTRY_IN_SYNC
REGISTRY_CONVERGENCE = DEFAULT.REGISTRY_CONVERGENCE
KEY_REFUSALS = DEFAULT.KEY_REFUSALS
KEY_LIMITER_ERRORS = DEFAULT.KEY_LIMITER_ERRORS
SPEND = DEFAULT.SPEND
SAVINGS = DEFAULT.SAVINGS
UNPRICED_TOKENS = DEFAULT.UNPRICED_TOKENS
KEY_BUDGET_CHARGED = DEFAULT.KEY_BUDGET_CHARGED
KEY_BUDGET_LIMIT = DEFAULT.KEY_BUDGET_LIMIT
KEY_BUDGET_PERIOD = DEFAULT.KEY_BUDGET_PERIOD
TEACHER_LOG_SCRUBBED = DEFAULT.TEACHER_LOG_SCRUBBED
TEACHER_LOG_SCRUB_DURATION = DEFAULT.TEACHER_LOG_SCRUB_DURATION
TENANT_DELETIONS = DEFAULT.TENANT_DELETIONS
ROUTER_MODEL_LOADS = DEFAULT.ROUTER_MODEL_LOADS
ROUTER_MODEL_PUBLISHES = DEFAULT.ROUTER_MODEL_PUBLISHES
FLEET_SHARE_SYNCS = DEFAULT.FLEET_SHARE_SYNCS
FLEET_SHARE_GATEWAYS = DEFAULT.FLEET_SHARE_GATEWAYS
STUDENT_AGREEMENT_PAIRS_TOTAL = DEFAULT.STUDENT_AGREEMENT_PAIRS_TOTAL


#: Set (to a folder) in each gateway worker when ``server.workers`` > 1, before prometheus_client loads.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_registry() -> CollectorRegistry | None:
    """The registry /metrics exports when this process is one of several workers: every worker's
    values, combined; None in a single process (export ``REGISTRY`` as it is)."""
    if not os.environ.get(MULTIPROC_ENV):
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry
