"""The judge grader against a real LLM: SmolLM2-135M-Instruct on the embedded engine behind
distillserve's OpenAI-compatible single-backend server. A 135M model is a weak judge (its
agreement with the labels is measured in bench/grading_accuracy.py, bench/RESULTS.md); this test
holds what must hold with any real endpoint: both orders asked, every reply either parsed or
counted as unparsed, real token usage metered, the verdict cached."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from distillserve.grading.judge import JudgeEndpoint
from distillserve.grading.judge_grader import JudgeGrader
from distillserve.monitoring.graders import PrometheusJudgeMeter
from tests.grading.judge_server import JUDGE_MODEL, start_smollm2_judge
from tests.grading.labelled_answers import labelled
from tests.support.metrics import sample


def calls(registry: CollectorRegistry, outcome: str) -> float:
    return sample(registry, "distillserve_llm_calls_total", purpose="judge", outcome=outcome)


async def test_smollm2_judges_over_http(tmp_path: Path, fresh_metrics: CollectorRegistry) -> None:
    pairs = [p for p in labelled() if p.group == "chat"][:3]
    with start_smollm2_judge(tmp_path) as server:
        judge = JudgeGrader(
            JudgeEndpoint(server.url, JUDGE_MODEL, timeout_s=300), max_tokens=16, meter=PrometheusJudgeMeter()
        )
        grades = [await judge.agrade(p.prompt, p.reference, p.candidate) for p in pairs]
        again = await judge.agrade(pairs[0].prompt, pairs[0].reference, pairs[0].candidate)
    assert all(g.score in (0.0, 0.5, 1.0) and g.grader == "judge" for g in grades)
    assert again == grades[0]
    assert calls(fresh_metrics, "ok") + calls(fresh_metrics, "unparsed") == 2 * len(pairs)
    assert calls(fresh_metrics, "error") == 0
    assert sample(fresh_metrics, "distillserve_judge_cache_lookups_total", result="hit") == 2
    prompt_tokens = sample(fresh_metrics, "distillserve_llm_tokens_total", purpose="judge", kind="prompt")
    assert (
        prompt_tokens > 2 * len(pairs) * 150
    )  # the judge prompt is a few hundred tokens, as counted by the server
    assert (
        0
        < sample(fresh_metrics, "distillserve_llm_tokens_total", purpose="judge", kind="completion")
        <= 6 * 16
    )
