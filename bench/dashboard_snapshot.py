"""Picture of the dashboards: run the learning-loop stack (real broker with the KafkaSink,
testbed teacher, vLLM's CPU build serving the untrained testbed student, the gateway with
shadow sampling, the real distiller, and a real Prometheus scraping all three), drive SDK
traffic for a while, hot-swap the distiller's first adapter into vLLM once it exists, then
plot every panel's PromQL over that time with matplotlib.

    .venv/bin/python bench/dashboard_snapshot.py [--rounds 16] [--out deploy/grafana/snapshots]

Prints JSON: the PNGs written, the traffic sent, the distiller runs and the adapter swapped in.
The untrained student rarely agrees with the teacher, so agreement stays low and flat here;
``learning-loop-drift.png`` is an earlier render of the same board with a student that agrees
at first and then gets ``reverse`` wrong (agreement falls, drift rises).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.adapters.registry import AdapterRegistry
from tests.support.dashboards import load_dashboards, render_png
from tests.support.monitoring_stack import (
    ADMIN_KEY,
    LoopStack,
    drive_traffic,
    learning_loop_stack,
    teacher_traffic,
)
from tests.support.prometheus import sample, scrape


def runs(url: str) -> float:
    return sample(scrape(url), "distillserve_distiller_runs_total")


def hot_swap_first_version(stack: LoopStack) -> str:
    reg = AdapterRegistry(stack.registry_url, stack.base_model)
    version = reg.versions()[0]
    r = httpx.post(
        f"http://127.0.0.1:{stack.gateway.port}/admin/student/activate",
        json={"name": reg.adapter_name(version), "path": reg.local_path(version)},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=120,
    )
    r.raise_for_status()
    return reg.adapter_name(version)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("deploy/grafana/snapshots"))
    args = ap.parse_args()
    totals = {"student": 0, "teacher": 0, "errors": 0}
    with tempfile.TemporaryDirectory() as tmp, learning_loop_stack(Path(tmp)) as stack:
        start = time.time()
        swapped = None
        for r in range(args.rounds):
            if swapped is None and runs(stack.distiller_metrics) >= 1:
                swapped = hot_swap_first_version(stack)  # adapter versions over time
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
        n_runs = runs(stack.distiller_metrics)
        written = []
        for board in load_dashboards():
            png = args.out / board.replace(".json", ".png")
            render_png(stack.prometheus, board, start - 5, end, png, step=max(2.0, (end - start) / 150))
            written.append(str(png))
    print(
        json.dumps(
            {
                "pngs": written,
                "traffic": totals,
                "distiller_runs": n_runs,
                "hot_swapped": swapped,
                "seconds": round(end - start, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
