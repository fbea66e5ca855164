"""Graders from the ``grading`` config section; the judge defaults to the teacher's endpoint."""

from __future__ import annotations

from distillserve.config.backends import BackendConfig, OpenAIBackendConfig, RemoteBackend
from distillserve.config.grading import (
    EmbeddingGraderConfig,
    ExactGraderConfig,
    FinalAnswerGraderConfig,
    GraderConfig,
    GradingConfig,
    JsonGraderConfig,
    JudgeGraderConfig,
    NormalizedGraderConfig,
)
from distillserve.grading.embedding import EmbeddingGrader
from distillserve.grading.final_answer import FinalAnswerGrader
from distillserve.grading.grade import Grader
from distillserve.grading.json_answer import JsonGrader
from distillserve.grading.judge import JudgeEndpoint, JudgeMeter
from distillserve.grading.judge_grader import JudgeGrader
from distillserve.grading.selection import GraderSelection
from distillserve.grading.text import ExactGrader, NormalizedGrader


def teacher_endpoint(teacher: BackendConfig) -> JudgeEndpoint | None:
    """The teacher as a judge, when it is an OpenAI-compatible server with a URL."""
    if not isinstance(teacher, RemoteBackend) or teacher.kind not in ("openai", "vllm") or not teacher.url:
        return None
    key = (
        teacher.api_key.get_secret_value()
        if isinstance(teacher, OpenAIBackendConfig) and teacher.api_key
        else None
    )
    return JudgeEndpoint(teacher.url, teacher.served_model, key, teacher.timeout_s)


def judge_endpoint(spec: JudgeGraderConfig, teacher: JudgeEndpoint | None) -> JudgeEndpoint:
    url = spec.url or (teacher.url if teacher else None)
    model = spec.model or (teacher.model if teacher else None)
    if not url or not model:
        raise ValueError(
            "the judge grader needs grading.graders.<name>.url and .model, or an OpenAI-compatible teacher with a url"
        )
    key = (
        spec.api_key.get_secret_value()
        if spec.api_key
        else (teacher.api_key if teacher and not spec.url else None)
    )
    return JudgeEndpoint(url, model, key, spec.timeout_s)


def build_grader(
    spec: GraderConfig, *, teacher: JudgeEndpoint | None = None, meter: JudgeMeter | None = None
) -> Grader:
    match spec:
        case ExactGraderConfig():
            return ExactGrader()
        case NormalizedGraderConfig():
            return NormalizedGrader()
        case FinalAnswerGraderConfig():
            return FinalAnswerGrader(spec.rel_tol)
        case JsonGraderConfig():
            return JsonGrader(spec.keys)
        case EmbeddingGraderConfig():
            return EmbeddingGrader(spec.threshold, spec.model_path, spec.calibration_file)
        case JudgeGraderConfig():
            return JudgeGrader(
                judge_endpoint(spec, teacher),
                max_concurrency=spec.max_concurrency,
                cache_size=spec.cache_size,
                max_tokens=spec.max_tokens,
                max_answer_chars=spec.max_answer_chars,
                threshold=spec.threshold,
                meter=meter,
            )
    raise ValueError(f"unknown grader kind {spec.kind!r}")


def build_selection(
    cfg: GradingConfig, *, teacher: JudgeEndpoint | None = None, meter: JudgeMeter | None = None
) -> GraderSelection:
    """The graders the config uses (its default and those its rules name), built once each."""
    names = dict.fromkeys([cfg.default, *(r.grader for r in cfg.rules)])
    return GraderSelection(cfg, {n: build_grader(cfg.spec(n), teacher=teacher, meter=meter) for n in names})
