"""Accuracy of each grader against the hand-labelled answer set, and the judge's agreement with
final-answer grading.

    python bench/grading_accuracy.py                 # exact, normalized, final_answer, json, embedding
    python bench/grading_accuracy.py --smollm2-judge # + the judge: SmolLM2-135M-Instruct, embedded engine
    python bench/grading_accuracy.py --judge-url http://127.0.0.1:8000/v1 --judge-model M

The set is tests/fixtures/grading/labelled_answers.jsonl (math with R1 traces and GSM8K solutions,
multiple choice, JSON extraction, short chat; each label decided by hand). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distillserve.grading import Grade, Grader
from distillserve.grading.calibration import LabelledPair, load_pairs
from distillserve.grading.embedding import EmbeddingGrader
from distillserve.grading.final_answer import FinalAnswerGrader
from distillserve.grading.json_answer import JsonGrader
from distillserve.grading.judge import JudgeEndpoint
from distillserve.grading.judge_grader import JudgeGrader
from distillserve.grading.text import ExactGrader, NormalizedGrader

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "grading" / "labelled_answers.jsonl"


class CountingMeter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def call(self, outcome: str) -> None:
        self.counts[f"calls_{outcome}"] += 1

    def tokens(self, kind: str, n: int) -> None:
        self.counts[f"{kind}_tokens"] += n

    def cache(self, hit: bool) -> None:
        self.counts["cache_hits" if hit else "cache_misses"] += 1


def accuracy(pairs: Sequence[LabelledPair], grades: Sequence[Grade]) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for p, g in zip(pairs, grades, strict=True):
        hits[p.group].append(g.verdict == p.label)
        hits["all"].append(g.verdict == p.label)
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(hits.items())}


def text_graders(pairs: Sequence[LabelledPair]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    embedding = EmbeddingGrader()
    embedding.warm_up()
    graders: list[Grader] = [ExactGrader(), NormalizedGrader(), FinalAnswerGrader(), JsonGrader(), embedding]
    for g in graders:
        t0 = time.perf_counter()
        grades = [g.grade(p.prompt, p.reference, p.candidate) for p in pairs]
        out[g.name] = {"accuracy": accuracy(pairs, grades), "seconds": round(time.perf_counter() - t0, 2)}
    assert embedding.calibration is not None
    out["embedding"]["calibration"] = vars(embedding.calibration)
    return out


async def judge_figures(
    pairs: Sequence[LabelledPair], endpoint: JudgeEndpoint, max_tokens: int
) -> dict[str, Any]:
    meter = CountingMeter()
    judge = JudgeGrader(endpoint, max_tokens=max_tokens, max_concurrency=4, meter=meter)
    t0 = time.perf_counter()
    grades = await asyncio.gather(*(judge.agrade(p.prompt, p.reference, p.candidate) for p in pairs))
    seconds = time.perf_counter() - t0
    final = FinalAnswerGrader()
    exact_like = [(p, g) for p, g in zip(pairs, grades, strict=True) if p.group in ("math", "choice")]
    agree = [g.verdict == final.grade(p.prompt, p.reference, p.candidate).verdict for p, g in exact_like]
    scores = defaultdict(int)
    for g in grades:
        scores[str(g.score)] += 1
    return {
        "model": endpoint.model,
        "accuracy": accuracy(pairs, grades),
        "agreement_with_final_answer_on_math_and_choice": round(sum(agree) / len(agree), 3),
        "verdict_true_share": round(sum(g.verdict for g in grades) / len(grades), 3),
        "score_histogram": dict(scores),
        "seconds": round(seconds, 1),
        **meter.counts,
    }


@contextlib.contextmanager
def smollm2_endpoint() -> Iterator[JudgeEndpoint]:
    from tests.grading.judge_server import JUDGE_MODEL, start_smollm2_judge

    with tempfile.TemporaryDirectory() as tmp, start_smollm2_judge(Path(tmp)) as server:
        yield JudgeEndpoint(server.url, JUDGE_MODEL, timeout_s=600)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smollm2-judge", action="store_true")
    ap.add_argument("--judge-url")
    ap.add_argument("--judge-model", default="judge")
    ap.add_argument("--judge-max-tokens", type=int, default=16)
    args = ap.parse_args()
    pairs = load_pairs(LABELLED)
    result: dict[str, Any] = {"pairs": len(pairs), "graders": text_graders(pairs)}
    if args.judge_url:
        endpoint = JudgeEndpoint(args.judge_url, args.judge_model, timeout_s=600)
        result["judge"] = asyncio.run(judge_figures(pairs, endpoint, args.judge_max_tokens))
    elif args.smollm2_judge:
        with smollm2_endpoint() as endpoint:
            result["judge"] = asyncio.run(judge_figures(pairs, endpoint, args.judge_max_tokens))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
