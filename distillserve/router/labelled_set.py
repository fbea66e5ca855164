"""Build the testbed's labelled routing set from the real student and the testbed teacher.

Prompts come evenly from every testbed task (base ones the student knows, learnable ones it
learns by distillation, hard ones that stay with the teacher). The student answers greedily,
with token log-probabilities (so the confidence cascade can be evaluated on the same set);
the teacher is the exact oracle. Quality is exact match against the task's true answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from distillserve.backends.testbed_teacher import TestbedTeacher
from distillserve.grading.text import ExactGrader
from distillserve.protocol.backend import Backend
from distillserve.router.labelled_example import LabelledExample
from distillserve.router.student_answers import all_answered, ask_many
from distillserve.testbed.tasks import TASKS, parse_prompt, sample


def exact(answer: str, truth: str) -> float:
    """The testbed's oracle: a testbed answer is right when its text is the true answer."""
    return ExactGrader().grade("", truth, answer).score


async def build_testbed_set(
    student: Backend,
    *,
    n: int = 700,
    seed: int = 0,
    adapter: str | None = None,
    tasks: Sequence[str] | None = None,
    teacher: Backend | None = None,
    concurrency: int = 16,
    max_tokens: int = 32,  # every testbed answer is shorter; a lost student stops there
) -> list[LabelledExample]:
    """``n`` labelled examples; ``adapter`` picks the student's LoRA adapter (None = base model)."""
    pairs = sample(list(tasks or TASKS), n, seed)
    conversations = [[{"role": "user", "content": p}] for p, _ in pairs]
    teacher = teacher or TestbedTeacher()
    student_answers = all_answered(
        await ask_many(student, conversations, model=adapter, concurrency=concurrency, max_tokens=max_tokens)
    )
    teacher_answers = all_answered(await ask_many(teacher, conversations, concurrency=concurrency))
    out = []
    for (prompt, truth), s, t in zip(pairs, student_answers, teacher_answers, strict=True):
        parsed = parse_prompt(prompt)
        out.append(
            LabelledExample(
                prompt=prompt,
                student_answer=s.text,
                teacher_answer=t.text,
                student_quality=exact(s.text, truth),
                teacher_quality=exact(t.text, truth),
                student_logprobs=s.logprobs,
                group=parsed[0].name if parsed else "",
            )
        )
    return out


def quality_by_group(examples: Sequence[LabelledExample]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for e in examples:
        groups.setdefault(e.group, []).append(e.student_quality)
    return {g: sum(v) / len(v) for g, v in sorted(groups.items())}
