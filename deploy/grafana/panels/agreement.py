"""Learning loop, "Agreement and drift (shadow pairs)": student/teacher agreement against its
baseline, drift, shadow comparisons and their similarity."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import GW, RI, quantiles, rate_sum, series

TITLE = "Agreement and drift (shadow pairs)"
SIMILARITY = "distillserve_shadow_similarity_score"


def panels() -> list[Any]:
    mean = f"sum by (scorer) (rate({SIMILARITY}_sum{{{GW}}}[{RI}])) / sum by (scorer) (rate({SIMILARITY}_count{{{GW}}}[{RI}]))"
    return [
        series(
            "Student/teacher agreement: rolling and baseline",
            [
                (f"distillserve_student_agreement_ratio{{{GW}}}", "{{adapter}} rolling"),
                (f"distillserve_student_agreement_baseline_ratio{{{GW}}}", "{{adapter}} baseline"),
            ],
            "percentunit",
            w=12,
            bounds=(0, 1),
        ),
        series(
            "Drift below baseline",
            [(f"distillserve_student_drift_ratio{{{GW}}}", "{{adapter}}")],
            "percentunit",
            "Baseline agreement minus rolling agreement; the alert pages above 10 points.",
            w=12,
            bounds=(0, None),
        ),
        series(
            "Shadow comparisons per second by outcome",
            [(rate_sum("outcome", "distillserve_shadow_pairs_total", GW), "{{outcome}}")],
        ),
        series(
            "Shadow answer similarity (mean)",
            [(mean, "{{scorer}}")],
            desc="1 = same answer. With the exact or normalized scorer this equals the agreement rate.",
            bounds=(0, 1),
        ),
        series(
            "Agreement window fill",
            [(f"distillserve_student_agreement_window_pairs{{{GW}}}", "{{adapter}}")],
            desc="Pairs in the rolling window; drift alerts need at least 50.",
            w=4,
        ),
        series(
            "Shadow comparison time p95",
            quantiles("distillserve_shadow_duration_seconds", "job", GW, qs=(0.95,)),
            "s",
            "Teacher call plus scoring, in the background: clients never wait for it.",
            w=4,
        ),
    ]
