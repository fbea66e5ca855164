"""One labelled routing example: a prompt, what the student and the teacher answered, and how good each was.

The same record serves the learned scorer's training (from shadow pairs: quality = agreement
with the teacher) and the RouteLLM-style evaluation (quality against a known right answer
where there is one, as in the testbed). Stored as JSON lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from distillserve.grading import Grade, Grader, GraderSelection, RequestClass
from distillserve.grading.text import ExactGrader, answer_text
from distillserve.protocol.schema import ChatMessage
from distillserve.teacher_log.record import TeacherLogRecord


@dataclass(frozen=True)
class LabelledExample:
    prompt: str
    student_answer: str
    teacher_answer: str
    student_quality: float
    teacher_quality: float = 1.0
    # The student's token log-probabilities for its answer (for the confidence cascade), if known.
    student_logprobs: list[float] | None = None
    group: str = ""  # e.g. the testbed task, for per-group summaries
    messages: list[dict[str, Any]] | None = field(default=None, compare=False)

    @property
    def student_as_good(self) -> bool:
        """The label the learned scorer predicts: would the student answer as well as the teacher?"""
        return self.student_quality >= self.teacher_quality


def normalise_answer(text: str) -> str:
    """The part of an answer that is compared: reasoning dropped, whitespace collapsed."""
    return answer_text(text)


def label_quality(grade: Grade) -> float:
    """A grade as the student's quality: 1.0 when the verdict says "as good as the teacher" (so
    ``student_as_good`` is the grader's verdict), else the grade's score, which is below 1."""
    return 1.0 if grade.verdict else grade.score


def agreement(student: str, teacher: str, grader: Grader | None = None, prompt: str = "") -> float:
    """Quality of a student answer when only the teacher's answer is known (default: exact answer text)."""
    return label_quality((grader or ExactGrader()).grade(prompt, teacher, student))


def prompt_of_messages(messages: Sequence[dict[str, Any]]) -> str:
    """The text the router scores for a conversation (as ``ChatCompletionRequest.prompt_text``)."""
    return "\n".join(ChatMessage.model_validate(m).text() for m in messages)


def record_prompt(record: TeacherLogRecord) -> str:
    if record.messages:
        return prompt_of_messages(record.messages)
    return record.prompt or ""


def from_records(
    records: Iterable[TeacherLogRecord], graders: GraderSelection | None = None
) -> list[LabelledExample]:
    """Shadow pairs from teacher-log records: those that carry the student's answer to the same
    prompt, graded by the grader for each record's class (default: exact answer text)."""
    out = []
    for r in records:
        if r.student_text is None:
            continue
        prompt = record_prompt(r)
        grader = graders.for_request(RequestClass(prompt, r.task)) if graders else None
        out.append(
            LabelledExample(
                prompt=prompt,
                student_answer=r.student_text,
                teacher_answer=r.response_text,
                student_quality=agreement(r.student_text, r.response_text, grader, prompt),
                messages=r.messages,
            )
        )
    return out


def save_jsonl(examples: Iterable[LabelledExample], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    with tmp.open("wb") as f:
        for e in examples:
            f.write(orjson.dumps({k: v for k, v in asdict(e).items() if v is not None}) + b"\n")
    tmp.replace(p)
    return p


def load_jsonl(path: str | Path) -> list[LabelledExample]:
    """Examples from a JSON-lines file; a malformed line raises ``ValueError`` naming it."""
    out = []
    for i, line in enumerate(Path(path).read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            out.append(LabelledExample(**obj))
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}:{i}: not a labelled example: {exc}") from None
    return out
