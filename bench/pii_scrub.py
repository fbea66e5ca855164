"""Cost of scrubbing a teacher-log record: milliseconds per record for prompts and answers of
growing size, built from the labelled PII set (tests/fixtures/pii/labelled.jsonl) repeated.

    .venv/bin/python bench/pii_scrub.py [--repeat 20]

Prints JSON: for each text size, the median and p90 milliseconds to scrub one record (prompt and
answer of that size each) and the throughput in KB/s. Scrubbing runs on the sink's own thread,
off the event loop; this says how much CPU it takes from the gateway.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.config.teacher_log import ScrubConfig
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.teacher_log.scrub import PiiScrubber

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pii" / "labelled.jsonl"


def corpus() -> str:
    rows = [json.loads(line)["text"] for line in LABELLED.read_text().splitlines() if line.strip()]
    return "\n\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    scrubber, text = PiiScrubber(ScrubConfig()), corpus()
    scrubber.scrub_record(_record(text[:500]))  # warm up: the suffix list loads on first use
    out = []
    for size in (500, 2_000, 8_000, 32_000):
        body = (text * (size // len(text) + 1))[:size]
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            scrubber.scrub_record(_record(body))
            times.append((time.perf_counter() - t0) * 1000)
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        out.append(
            {
                "chars": size,
                "median_ms": round(median, 2),
                "p90_ms": round(p90, 2),
                "kb_per_s": round(2 * size / 1000 / (median / 1000), 1),
            }
        )
    print(json.dumps(out, indent=2))


def _record(text: str) -> TeacherLogRecord:
    return TeacherLogRecord(
        request_id="bench",
        key="k",
        messages=[{"role": "user", "content": text}],
        teacher_model="t",
        teacher_backend="b",
        response_text=text,
    )


if __name__ == "__main__":
    main()
