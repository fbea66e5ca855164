"""The base SmolLM2-135M-Instruct on the natural-language testbed families, before any distillation.

Each family's prompts (seeded, the same for every run) go through the embedded engine with the
model's real tokenizer and chat template, greedy, and are graded by the family's own grader
(``final_answer`` or ``json``) against the testbed teacher's exact answer. Printed as JSON per
family: accuracy, how often the answer came in the expected form (``\\boxed{}`` / parsable JSON),
how often generation hit ``max_tokens``, right answers per kind of question, and for extraction
the share of fields right.

    nice -n 19 .venv/bin/python bench/smollm2_language_tasks.py [--per-family 24] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.backends.embedded import EmbeddedBackend
from distillserve.config import EmbeddedBackendConfig
from distillserve.grading.final_answer import FinalAnswerGrader, boxed_contents
from distillserve.grading.json_answer import JsonGrader, extract_json, json_found
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.testbed import language

GRADERS = {"final_answer": FinalAnswerGrader(), "json": JsonGrader()}


async def answers(
    backend: EmbeddedBackend, prompts: list[str], max_tokens: int, concurrency: int
) -> list[dict]:
    sem = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> dict[str, Any]:
        request = ChatCompletionRequest.model_validate(
            {
                "model": "student",
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0.0,
                "max_tokens": max_tokens,
            }
        )
        async with sem:
            body = await backend.chat(request)
        choice = body["choices"][0]
        return {
            "text": choice["message"]["content"] or "",
            "finish": choice["finish_reason"],
            "usage": body["usage"],
        }

    return await asyncio.gather(*(one(p) for p in prompts))


def score(items: list[language.LanguageItem], replies: list[dict]) -> dict[str, Any]:
    graded = [
        GRADERS[i.grader].grade(i.prompt, i.answer, r["text"]) for i, r in zip(items, replies, strict=True)
    ]
    if items[0].grader == "json":
        in_form = [json_found(extract_json(r["text"])) for r in replies]
        keys = list(json.loads(items[0].final))
        fields = [
            JsonGrader(keys=list(json.loads(i.final))).grade(i.prompt, i.answer, r["text"]).score
            for i, r in zip(items, replies, strict=True)
        ]
        extra = {"fields_right": round(sum(fields) / len(fields), 3), "example_keys": keys}
    else:
        in_form = [boxed_contents(r["text"]) is not None for r in replies]
        extra = {}
    n = len(items)
    by_problem: dict[str, list[bool]] = {}
    for i, g in zip(items, graded, strict=True):
        by_problem.setdefault(i.problem, []).append(g.verdict)
    return {
        "n": n,
        "accuracy": round(sum(g.verdict for g in graded) / n, 3),
        "by_problem": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_problem.items())},
        "answer_in_expected_form": round(sum(in_form) / n, 3),
        "hit_max_tokens": round(sum(r["finish"] == "length" for r in replies) / n, 3),
        "mean_completion_tokens": round(sum(r["usage"]["completion_tokens"] for r in replies) / n, 1),
        **extra,
        "examples": [
            {"prompt": i.prompt[:160], "reference": i.final, "reply": r["text"][:240], "verdict": g.verdict}
            for i, r, g in list(zip(items, replies, graded, strict=True))[:2]
        ],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = EmbeddedBackendConfig(
        name="student", model_path=args.model, threads=args.threads, max_batch_size=args.concurrency
    )
    backend = EmbeddedBackend(cfg)
    await backend.start()
    out: dict[str, Any] = {
        "model": args.model,
        "per_family": args.per_family,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
    }
    try:
        for task in language.FAMILIES:
            items = language.sample([task], args.per_family, seed=args.seed)
            t0 = time.perf_counter()
            replies = await answers(backend, [i.prompt for i in items], args.max_tokens, args.concurrency)
            out[task] = score(items, replies) | {"seconds": round(time.perf_counter() - t0, 1)}
            print(task, out[task]["accuracy"], file=sys.stderr, flush=True)
    finally:
        await backend.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--per-family", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=101, help="item seed (the demo's traffic uses others)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="1 beside other work: a 2-thread team waits on its preempted member",
    )
    ap.add_argument("--concurrency", type=int, default=8)
    print(json.dumps(asyncio.run(run(ap.parse_args())), indent=2))


if __name__ == "__main__":
    main()
