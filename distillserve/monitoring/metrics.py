"""Every Prometheus metric of distillserve, declared once.

Names follow Prometheus conventions (base units, ``_seconds``, ``_total``); labels
take values from small fixed sets (routes, backend kinds, outcomes) or adapter
versions, which are few. Import a metric from here where it is observed.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets from 5 ms to 2 min: CPU students answer in tens of ms, reasoning teachers in minutes.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TTFT = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# --- gateway -------------------------------------------------------------------------------------
REQUESTS = Counter(
    "distillserve_requests_total",
    "Requests answered by the gateway.",
    ["endpoint", "route", "backend", "status"],
)
REQUEST_DURATION = Histogram(
    "distillserve_request_duration_seconds",
    "Time from request received to last byte sent.",
    ["endpoint", "route", "backend", "status"],
    buckets=_LATENCY,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "distillserve_time_to_first_token_seconds",
    "Time from request received to the first content chunk of a streamed answer.",
    ["route", "backend"],
    buckets=_TTFT,
)
REQUESTS_IN_FLIGHT = Gauge("distillserve_requests_in_flight", "Requests being answered now.", ["route"])
TOKENS = Counter("distillserve_tokens_total", "Tokens processed.", ["route", "direction"])
BACKEND_ERRORS = Counter(
    "distillserve_backend_errors_total", "Backend failures by kind.", ["backend", "route", "kind"]
)
FALLBACKS = Counter(
    "distillserve_fallbacks_total",
    "Requests re-routed because their backend failed.",
    ["from_route", "to_route"],
)

# --- router --------------------------------------------------------------------------------------
ROUTE_DECISIONS = Counter(
    "distillserve_route_decisions_total",
    "Routing decisions for model=auto and pinned models.",
    ["route", "reason"],
)
ROUTER_DIFFICULTY = Histogram(
    "distillserve_router_difficulty_score",
    "Difficulty scores given by the router.",
    ["scorer"],
    buckets=tuple(i / 20 for i in range(1, 21)),
)
ROUTER_SCORER_FALLBACKS = Counter(
    "distillserve_router_scorer_fallbacks_total",
    "Scorer failures or timeouts answered by the heuristic scorer instead.",
    ["scorer", "reason"],
)
ROUTER_THRESHOLD = Gauge("distillserve_router_threshold", "Current routing threshold.")
ROUTER_SCORER_DURATION = Histogram(
    "distillserve_router_decision_seconds",
    "Time to score one request.",
    ["scorer"],
    buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1),
)
CASCADE_ESCALATIONS = Counter(
    "distillserve_cascade_escalations_total", "Student answers escalated to the teacher for low confidence."
)

# --- teacher log ---------------------------------------------------------------------------------
TEACHER_LOG_RECORDS = Counter(
    "distillserve_teacher_log_records_total",
    "Teacher-log records by outcome (produced, spooled, replayed, dropped, dead_lettered).",
    ["outcome"],
)
TEACHER_LOG_QUEUE_DEPTH = Gauge("distillserve_teacher_log_queue_depth", "Records waiting in memory.")
TEACHER_LOG_SPOOL_BYTES = Gauge("distillserve_teacher_log_spool_bytes", "Bytes held in the disk spool.")
TEACHER_LOG_CONSUMER_LAG = Gauge(
    "distillserve_teacher_log_consumer_lag_records",
    "High watermark minus committed offset, summed over partitions.",
    ["group"],
)

# --- distiller and adapters ----------------------------------------------------------------------
DISTILLER_RUNS = Counter("distillserve_distiller_runs_total", "Training runs by outcome.", ["outcome"])
DISTILLER_RUN_DURATION = Histogram(
    "distillserve_distiller_run_duration_seconds",
    "Wall time of one training run including evaluation.",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
DISTILLER_LOSS = Gauge("distillserve_distiller_loss", "Final training loss of the last run.", ["kind"])
DISTILLER_RECORDS = Counter(
    "distillserve_distiller_records_total", "Records consumed by outcome.", ["outcome"]
)
DISTILLER_LAST_RUN = Gauge(
    "distillserve_distiller_last_run_timestamp_seconds", "Unix time the last training run finished."
)
ADAPTER_EVAL = Gauge(
    "distillserve_adapter_eval_score",
    "Evaluation results per adapter version.",
    ["version", "dataset", "metric"],
)
LIVE_ADAPTER = Gauge(
    "distillserve_live_adapter_info",
    "1 for the adapter version serving the student route.",
    ["base", "version"],
)
ADAPTER_SWAPS = Counter("distillserve_adapter_swaps_total", "Hot-swaps by outcome.", ["outcome"])
ADAPTER_SWAP_DURATION = Histogram(
    "distillserve_adapter_swap_duration_seconds",
    "Time from promote to the new version serving.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ADAPTER_RESTORES = Counter(
    "distillserve_adapter_restores_total",
    "Live or canary adapters reloaded after the student engine lost them (e.g. it restarted).",
)

# --- drift ---------------------------------------------------------------------------------------
SHADOW_PAIRS = Counter("distillserve_shadow_pairs_total", "Shadow comparisons by outcome.", ["outcome"])
STUDENT_AGREEMENT = Gauge(
    "distillserve_student_agreement_ratio", "Rolling student/teacher agreement on shadow pairs.", ["adapter"]
)
STUDENT_AGREEMENT_BASELINE = Gauge(
    "distillserve_student_agreement_baseline_ratio",
    "Agreement measured when the adapter was promoted.",
    ["adapter"],
)
STUDENT_DRIFT = Gauge(
    "distillserve_student_drift_ratio",
    "Baseline agreement minus rolling agreement (positive = worse).",
    ["adapter"],
)

# --- embedded engine -----------------------------------------------------------------------------
ENGINE_RUNNING = Gauge("distillserve_engine_running_requests", "Requests in the embedded engine's batch.")
ENGINE_WAITING = Gauge("distillserve_engine_waiting_requests", "Requests waiting for a batch slot.")
ENGINE_GENERATED_TOKENS = Counter(
    "distillserve_engine_generated_tokens_total", "Tokens generated by the embedded engine."
)
ENGINE_BATCH_ROWS = Histogram(
    "distillserve_engine_batch_rows",
    "Rows in each decode step of the embedded engine.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
