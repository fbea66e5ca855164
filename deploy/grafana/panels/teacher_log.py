"""SRE overview, "Teacher log and Kafka": records by outcome, disk spool, producer queue, consumer lag."""

from __future__ import annotations

from typing import Any

from deploy.grafana.panels.common import DIST, GW, rate_sum, series

TITLE = "Teacher log and Kafka"


def consumer_lag(desc: str = "", w: int = 8) -> Any:
    """The distiller's lag behind the teacher log (on both boards)."""
    return series(
        "Consumer lag",
        [(f"max by (group) (distillserve_teacher_log_consumer_lag_records{{{DIST}}})", "{{group}}")],
        desc=desc,
        w=w,
    )


def panels() -> list[Any]:
    return [
        series(
            "Teacher-log records per second by outcome",
            [(rate_sum("outcome", "distillserve_teacher_log_records_total", GW), "{{outcome}}")],
            w=6,
        ),
        series(
            "Disk spool",
            [(f"sum by (instance) (distillserve_teacher_log_spool_bytes{{{GW}}})", "{{instance}}")],
            "bytes",
            "Grows while Kafka is unreachable; replayed when it returns.",
            w=6,
        ),
        series(
            "Producer queue depth",
            [(f"sum by (instance) (distillserve_teacher_log_queue_depth{{{GW}}})", "{{instance}}")],
            w=6,
        ),
        consumer_lag("High watermark minus committed offset, summed over partitions.", w=6),
    ]
