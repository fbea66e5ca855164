"""SRE overview, "Student engine (vLLM)": vLLM's own ``vllm:*`` metrics."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import RI, VLLM, series

TITLE = "Student engine (vLLM)"


def panels() -> list[Any]:
    ttft = f"rate(vllm:time_to_first_token_seconds_bucket{{{VLLM}}}[{RI}])"
    return [
        series(
            "vLLM requests running / waiting",
            [
                (f"sum by (instance) (vllm:num_requests_running{{{VLLM}}})", "running {{instance}}"),
                (f"sum by (instance) (vllm:num_requests_waiting{{{VLLM}}})", "waiting {{instance}}"),
            ],
        ),
        series(
            "vLLM KV cache usage",
            [(f"max by (instance) (vllm:kv_cache_usage_perc{{{VLLM}}})", "{{instance}}")],
            "percentunit",
        ),
        series(
            "vLLM time to first token p95",
            [(f"histogram_quantile(0.95, sum by (le, instance) ({ttft}))", "{{instance}}")],
            "s",
        ),
    ]
