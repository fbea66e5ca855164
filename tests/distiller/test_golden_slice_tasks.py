"""The golden slice keeps each item's ``metadata.task`` (and tenant): the regression set of a real
student is graded by each family's own grader, not by exact text, after a round trip through the
registry."""

from __future__ import annotations

import json
from pathlib import Path

from distillserve.adapters.registry import AdapterRegistry
from distillserve.config.grading import GradingConfig, GradingRule
from distillserve.distiller.evaluation import grade_set
from distillserve.distiller.examples import TrainingExample
from distillserve.distiller.reference_sets import GoldenSlice
from distillserve.grading.factory import build_selection
from distillserve.testbed import language


def _examples(n: int) -> list[TrainingExample]:
    items = language.sample(list(language.FAMILIES), n, seed=5)
    return [
        TrainingExample(
            [{"role": "user", "content": i.prompt}],
            i.answer,
            i.answer,
            None,
            "teacher",
            f"k{k}",
            i.task,
            "acme",
        )
        for k, i in enumerate(items)
    ]


def _reworded(item: TrainingExample) -> str:
    """A right answer in other words than the reference: what a student says."""
    if item.task == "field_extraction":
        fields = json.loads(item.answer.split("\n")[1])
        return "Here it is:\n" + json.dumps(dict(reversed(list(fields.items()))), indent=2)
    final = item.answer.split("\\boxed{")[1].rstrip("}.")
    return f"Working it out step by step, we get \\boxed{{{final}}}"


def test_golden_items_keep_their_task_and_are_graded_by_its_grader(tmp_path: Path) -> None:
    registry = AdapterRegistry(str(tmp_path / "registry"), "smollm2")
    GoldenSlice(registry, size=8, batch_share=0.5, seed=0).reserve(_examples(16))
    golden = GoldenSlice(registry, size=8, batch_share=0.5, seed=0).examples()  # read back from the registry
    assert len(golden) == 8
    assert {e.task for e in golden} <= set(language.FAMILIES) and None not in {e.task for e in golden}
    assert {e.tenant for e in golden} == {"acme"} and {e.source for e in golden} == {"golden"}

    rules = [GradingRule(task=f.task, grader=f.grader) for f in language.FAMILIES.values()]
    by_family = build_selection(GradingConfig(default="exact", rules=rules))
    answers = [_reworded(e) for e in golden]
    assert grade_set(by_family, golden, answers).score == 1.0
    # Exact text would call every one of these right answers wrong: the bug this guards against.
    assert grade_set(build_selection(GradingConfig(default="exact")), golden, answers).score == 0.0
