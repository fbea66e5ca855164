"""Agreement between a student answer and the teacher's answer to the same prompt (shadow pairs).

The verdict comes from the configured grader for the request's class (``grading`` section, see
``distillserve.grading``): the same graders that label the router's examples and gate promotions,
so drift is measured with the yardstick the baseline was set with. ``monitoring.agreement`` may
pin one grader for every shadow pair instead.

``ExactAgreement``, ``NormalizedAgreement`` and ``EmbeddingAgreement`` are one-grader scorers.
"""

from __future__ import annotations

from distillserve.config import GradingConfig, Settings
from distillserve.grading.embedding import EmbeddingGrader
from distillserve.grading.grade import Grade
from distillserve.grading.selection import GraderSelection, RequestClass, task_of
from distillserve.grading.text import ExactGrader, NormalizedGrader
from distillserve.monitoring.graders import graders_for
from distillserve.protocol.schema import ChatCompletionRequest


def request_class(request: ChatCompletionRequest, api_key: str | None = None) -> RequestClass:
    """What grading rules see of a chat request: its prompt, ``metadata.task`` and the API key."""
    return RequestClass(request.prompt_text(), task_of((request.model_extra or {}).get("metadata")), api_key)


class AgreementScorer:
    """Grades shadow pairs: the student's answer is the candidate, the teacher's the reference."""

    def __init__(self, graders: GraderSelection) -> None:
        self.graders = graders

    @property
    def name(self) -> str:
        return self.graders.cfg.default

    async def grade(
        self, request: ChatCompletionRequest, student: str, teacher: str, api_key: str | None = None
    ) -> Grade:
        rc = request_class(request, api_key)
        return await self.graders.for_request(rc).agrade(rc.prompt, teacher, student)

    # The default grader alone, for callers without a request.
    def similarity(self, student: str, teacher: str) -> float:
        return self.graders.default.grade("", teacher, student).score

    def agrees(self, similarity: float) -> bool:
        return similarity >= self.graders.default.threshold

    def warm_up(self) -> None:
        self.graders.warm_up()


class ExactAgreement(AgreementScorer):
    def __init__(self) -> None:
        super().__init__(GraderSelection.only(ExactGrader()))


class NormalizedAgreement(AgreementScorer):
    def __init__(self) -> None:
        super().__init__(GraderSelection.only(NormalizedGrader()))


class EmbeddingAgreement(AgreementScorer):
    """MiniLM cosine; ``threshold`` None = calibrated on labelled pairs (see ``grading.calibration``)."""

    def __init__(self, threshold: float | None = None, model_path: str | None = None) -> None:
        super().__init__(GraderSelection.only(EmbeddingGrader(threshold, model_path)))


def build_scorer(
    kind: str, *, threshold: float | None = None, model_path: str | None = None
) -> AgreementScorer:
    if kind == "exact":
        return ExactAgreement()
    if kind == "normalized":
        return NormalizedAgreement()
    if kind == "embedding":
        return EmbeddingAgreement(threshold, model_path)
    raise ValueError(f"unknown agreement scorer {kind!r}; use exact, normalized or embedding")


def configured_scorer(settings: Settings) -> AgreementScorer:
    """Shadow agreement as configured: the ``grading`` section's grader per request class, or the
    one grader ``monitoring.agreement`` pins (a name from ``grading.graders`` or a grader kind)."""
    cfg = settings.grading
    pinned = settings.monitoring.agreement
    if pinned is not None:
        cfg = GradingConfig.model_validate({**cfg.model_dump(), "default": pinned, "rules": []})
    return AgreementScorer(graders_for(settings, cfg))
