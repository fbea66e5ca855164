"""Picture of the dashboards: run the monitoring stack (testbed teacher, a student that gets
``reverse`` wrong, the gateway with shadow sampling, a real Prometheus), drive SDK traffic
for a while, then plot every panel's PromQL over that time with matplotlib.

    .venv/bin/python bench/dashboard_snapshot.py [--rounds 20] [--out deploy/grafana/snapshots]

Prints JSON: the PNGs written and the traffic sent. Panels whose source process is not part
of the stack (distiller, vLLM) are drawn as "no data".
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
from tests.support.monitoring_stack import drive_traffic, monitoring_stack


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("deploy/grafana/snapshots"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, monitoring_stack(Path(tmp), agreement_window=30) as stack:
        start = time.time()
        # The student agrees with the teacher at first (baseline), then reverse prompts arrive
        # that it gets wrong: agreement falls and drift rises on the learning-loop board.
        counts = drive_traffic(
            stack.gateway, rounds=args.rounds, per_round=16, pause=2.0, reverse_from_round=args.rounds // 2
        )
        time.sleep(3)
        end = time.time()
        written = []
        for board in load_dashboards():
            png = args.out / board.replace(".json", ".png")
            render_png(stack.prometheus, board, start - 5, end, png)
            written.append(str(png))
    print(json.dumps({"pngs": written, "traffic": counts, "seconds": round(end - start, 1)}))


if __name__ == "__main__":
    main()
