"""A shortened run of ``distillserve demo``: the whole learning loop with real processes
(broker, testbed teacher, gateway with the embedded student, distiller) and real SDK traffic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from distillserve.demo.run import DemoOptions, run_demo
from distillserve.demo.traffic import TrafficMix

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_short_demo_learns_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "report"
    opts = DemoOptions(
        out=out,
        duration_s=float(os.environ.get("DISTILLSERVE_DEMO_TEST_SECONDS", "150")),
        rate_per_s=4.0,
        window_s=25.0,
        mix=TrafficMix({"copy": 0.15, "upper": 0.1, "reverse": 0.6, "add": 0.15}),
        config_overrides={"distiller": {"trigger_records": 120, "trigger_seconds": 40.0}},
    )
    summary, pids = run_demo(opts)

    assert summary.failed == 0
    assert summary.promoted, "the loop promoted no adapter"
    assert summary.teacher_share_last < summary.teacher_share_first - 0.2
    assert summary.quality_ratio_last >= 0.8
    for name in ("report.md", "summary.json", "teacher_share.png", "quality.png", "latency.png"):
        assert (out / name).stat().st_size > 0, name
    assert not [p for p in pids if _alive(p)], "the demo left processes running"
