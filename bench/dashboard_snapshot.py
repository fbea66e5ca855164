"""Picture of the dashboards: run the learning-loop stack (real broker with the KafkaSink,
testbed teacher, a student that gets ``reverse`` wrong, the gateway with shadow sampling,
the real distiller, and a real Prometheus scraping gateway and distiller), drive SDK
traffic for a while, then plot every panel's PromQL over that time with matplotlib.

    .venv/bin/python bench/dashboard_snapshot.py [--rounds 16] [--out deploy/grafana/snapshots]

Prints JSON: the PNGs written, the traffic sent and the distiller runs. The student agrees
with the teacher at first; half way, reverse prompts arrive that it gets wrong, so
agreement falls and drift rises. vLLM is not part of the stack: its panels say "no data".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.dashboards import load_dashboards, render_png
from tests.support.monitoring_stack import drive_traffic, learning_loop_stack, teacher_traffic
from tests.support.prometheus import sample, scrape


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("deploy/grafana/snapshots"))
    args = ap.parse_args()
    totals = {"student": 0, "teacher": 0, "errors": 0}
    with tempfile.TemporaryDirectory() as tmp, learning_loop_stack(Path(tmp)) as stack:
        start = time.time()
        for r in range(args.rounds):
            counts = drive_traffic(
                stack.gateway,
                rounds=1,
                per_round=16,
                pause=2.0,
                reverse_from_round=0 if r >= args.rounds // 2 else 1,
            )
            teacher_traffic(stack.gateway, 12, seed=r)  # records for the distiller
            for k, v in counts.items():
                totals[k] += v
            totals["teacher"] += 12
        time.sleep(5)
        end = time.time()
        runs = sample(scrape(stack.distiller_metrics), "distillserve_distiller_runs_total")
        written = []
        for board in load_dashboards():
            png = args.out / board.replace(".json", ".png")
            render_png(stack.prometheus, board, start - 5, end, png, step=max(2.0, (end - start) / 150))
            written.append(str(png))
    print(
        json.dumps(
            {"pngs": written, "traffic": totals, "distiller_runs": runs, "seconds": round(end - start, 1)}
        )
    )


if __name__ == "__main__":
    main()
