"""The metrics module's conventions, and the series a gateway exports before any traffic."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from distillserve.config import load_settings
from distillserve.monitoring import metrics
from distillserve.serving.server import build_gateway

# Labels whose values are unbounded must never be used.
UNBOUNDED = {"request_id", "prompt", "user", "api_key", "key", "message", "text", "id"}


def ours() -> list:
    return [f for f in REGISTRY.collect() if f.name.startswith("distillserve")]


def test_names_and_labels_follow_prometheus_conventions() -> None:
    fams = ours()
    assert len(fams) >= 30
    for fam in fams:
        assert re.fullmatch(r"distillserve_[a-z][a-z0-9_]*", fam.name), fam.name
        if "duration" in fam.name or "time" in fam.name:
            assert fam.name.endswith("_seconds"), f"{fam.name}: time in base units"
    for m in vars(metrics).values():
        labels = getattr(m, "_labelnames", ())
        assert not UNBOUNDED & set(labels), (m, labels)


def _samples() -> dict[tuple[str, frozenset], float]:
    out = {}
    for fam in text_string_to_metric_families(generate_latest().decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_a_fresh_gateway_exports_zeros_for_fixed_label_sets() -> None:
    settings = load_settings(
        student={"kind": "testbed", "name": "student"},
        teacher={"kind": "testbed", "name": "teacher"},
        teacher_log={"sink": "none"},
        monitoring={"shadow_rate": 0.1, "agreement": "exact"},
    )
    # Other tests in this process scored shadow pairs into the same global registry; forget those
    # series so that what is left afterwards is what this gateway's start-up created.
    for gauge in (metrics.STUDENT_AGREEMENT, metrics.STUDENT_AGREEMENT_BASELINE, metrics.STUDENT_DRIFT):
        gauge.clear()
    build_gateway(settings)
    s = _samples()

    def has(name: str, **labels: str) -> bool:
        want = set(labels.items())
        return any(n == name and want <= ls for (n, ls) in s)

    for route in ("student", "teacher"):
        for status in ("200", "503", "504"):
            assert has("distillserve_requests_total", route=route, backend="testbed", status=status)
        assert has("distillserve_request_duration_seconds_bucket", route=route, status="200", le="1.0")
        assert has("distillserve_backend_errors_total", route=route, kind="backend_unavailable")
    assert has("distillserve_requests_total", route="none", status="404")
    assert has("distillserve_fallbacks_total", from_route="student", to_route="teacher")
    for outcome in metrics.TEACHER_LOG_OUTCOMES:
        assert has("distillserve_teacher_log_records_total", outcome=outcome)
    for outcome in metrics.SHADOW_OUTCOMES:
        assert has("distillserve_shadow_pairs_total", outcome=outcome)
    assert s[("distillserve_live_adapter_info", frozenset({("base", "student"), ("version", "base")}))] == 1
    # Measurements are not made up: no agreement or drift before a shadow pair was scored.
    assert not any(n.startswith("distillserve_student_agreement_ratio") for (n, _) in s)
    assert not any(n.startswith("distillserve_student_drift_ratio") for (n, _) in s)
