"""Shadow sampling and drift."""

from __future__ import annotations

from pydantic import Field

from distillserve.config.strict_model import StrictModel


class MonitoringConfig(StrictModel):
    """Shadow sampling and drift. Shadow pairs also go to the teacher log (kind "shadow")."""

    # Share of student-served chat requests also sent to the teacher in the background.
    shadow_rate: float = Field(0.0, ge=0.0, le=1.0)
    # At most this many shadow teacher requests at once; further samples are skipped (and counted).
    shadow_max_concurrency: int = Field(4, ge=1)
    # A shadow teacher call slower than this is abandoned; it never delays the client anyway.
    shadow_timeout_s: float = Field(60.0, gt=0.0)
    # How a student/teacher pair is judged: None = the ``grading`` section's grader for the
    # request's class (the same one that labels the router and gates promotions); a grader name
    # (from grading.graders, or a kind: exact, normalized, embedding...) pins one for every pair.
    agreement: str | None = None
    # Shadow pairs in the rolling agreement window per adapter; the first full window of an
    # adapter is its baseline unless the promotion path set one.
    agreement_window: int = Field(200, ge=1)
    distiller_metrics_port: int = 0
