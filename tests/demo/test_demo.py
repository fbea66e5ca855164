"""A shortened run of ``distillserve demo``: real processes (broker, testbed teacher, gateway with
the embedded student, distiller) and real SDK traffic, from start to clean stop.

In six minutes the whole loop turns once: the learned router goes from its cold
start (everything to the teacher) to serving what the base student can do itself, the
distiller trains on the logged teacher answers and promotes an adapter, and the router re-fits
to the new student, which then serves most of the traffic (the full 5-minute run and its
figures: bench/RESULTS.md, "Demo runs").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from distillserve.demo.run import DemoOptions, run_demo


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_short_demo_routes_to_the_student_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "report"
    # The router's first fit waits for 160 teacher answers (about 35 s of traffic), so the first 30 s
    # window is all cold start however fast the machine is. The demo's 300-answer trigger fills
    # in about 70 s at 5 requests/s; training and evaluation take about a minute here (two on a
    # slow machine), and the router re-fits within seconds of the promotion. v1 went live at
    # 155-159 s on a quiet machine, 197-203 s beside one busy core, 203-226 s with two demo runs at
    # once and about 300 s under a load of 11 on 2 cores; the share falls below 0.5 about 20 s later.
    # A fixed 360 s run passed whenever its last window began 100 s or more after v1 went live, and
    # failed under that load of 11, where it began 30-60 s after (share 0.565). So the run ends 130 s
    # after v1 goes live (the last window starts 100 s after it), whenever that is, and not earlier
    # than 240 s. Two demos at once (each the other's busy load): last-window share 0.14-0.34,
    # quality ratio 0.83-0.96 at threshold 0.3 under eight more niced jobs and 0.93/0.96 without them;
    # at threshold 0.2 quality 0.96, share 0.14. The test asks the router for 0.2 so served quality
    # keeps its margin over 0.9 (the demo itself keeps 0.3).
    opts = DemoOptions(
        out=out,
        duration_s=240.0,
        rate_per_s=5.0,
        window_s=30.0,  # ~150 requests: one wrong answer moves quality by less than a point
        wait_for_versions=1,
        settle_after_live_s=130.0,
        max_wait_s=420.0,
        config_overrides={"router": {"retrain": {"min_examples": 160}, "threshold": 0.2}},
    )
    summary, pids = run_demo(opts)

    assert summary.requests >= 800 and summary.failed == 0
    assert summary.teacher_share_first >= 0.9, "cold start sends everything to the teacher"
    assert summary.promoted, "the loop promoted no adapter"
    # After the promotion the router sends the student what it learned: `reverse` (60% of traffic),
    # which the base student never serves, goes to the student in part once v1 is live.
    before, after = _reverse_served_by_student(out)
    assert before < 0.05 and after >= 0.2, (before, after)
    # Last-window teacher share, measured: 0.14-0.34 on a quiet machine or beside one busy core;
    # 0.547 and 0.565 under heavy load (a parallel CI worker plus niced jobs; load 4-11), where v1
    # learned less (held-out 0.68) and still sent 40% of `reverse` to the student. Bound: 0.65.
    assert summary.teacher_share_last <= 0.65
    # Held-out `reverse` prompts the traffic never sent, asked of the student before and after the run
    # (the report's before -> after): the base never reverses a word; v1 learned to.
    # Measured 2026-12-04 on 2 cores: held-out 0/24 -> 24/24 (fresh-clone CI run, and a quiet rerun),
    # 0/24 -> 22/24 and 24/24 beside a busy core; 0.68 after under a load of 11 (an earlier session).
    [reverse] = summary.heldout
    assert reverse.task == "reverse" and reverse.n >= 20, reverse
    assert reverse.before <= 0.05 and reverse.after - reverse.before >= 0.25, reverse
    # Last-window quality against teacher-only: 0.987 (fresh-clone CI run), 1.0 quiet, 0.890 and
    # 0.979 beside a busy core (0.890 with only v1 live by the end), 0.83-0.96 in earlier sessions'
    # loaded runs. The bound keeps a margin under all of them; a router that sent the student
    # `reverse` without v1 would score about 0.4. The demo's own >= 95% is measured on the 900 s
    # runs (bench/RESULTS.md), not in this test.
    assert summary.quality_ratio_last >= 0.8
    for name in ("report.md", "summary.json", "teacher_share.png", "quality.png", "latency.png"):
        assert (out / name).stat().st_size > 0, name
    assert pids and not [p for p in pids if _alive(p)], "the demo left processes running"


def _reverse_served_by_student(report: Path) -> tuple[float, float]:
    """Share of `reverse` requests the student served before v1 went live, and from 60 s after."""
    live = min(
        e["t"] for e in json.loads((report / "summary.json").read_text())["events"] if e["status"] == "live"
    )
    rows = [json.loads(line) for line in (report / "outcomes.jsonl").read_text().splitlines() if line]
    reverse = [r for r in rows if r["task"] == "reverse"]

    def share(xs: list[dict]) -> float:
        return sum(r["route"] == "student" for r in xs) / len(xs) if xs else float("nan")

    return share([r for r in reverse if r["t"] < live]), share([r for r in reverse if r["t"] >= live + 60])
