"""Held-out accuracy of the student on a learnable task, before and after the run.

The same prompts, drawn apart from the traffic, are sent to the student (pinned by name) once
before any traffic, when it is the bare base model, and once after, when it serves the live
adapter: the report's before -> after. They go through the gateway with the official SDK, under
an API key whose traffic is never logged (``keys.entries[].log: false``), so no probe prompt or
teacher answer reaches the distiller's training data; prompts that the traffic happened to send
too are dropped from both sides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from distillserve.demo.traffic import Outcome, TrafficItem, draw_item

# Far from any traffic seed, so the probe's prompts are not the traffic's.
_PROBE_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class HeldoutResult:
    task: str
    grader: str
    n: int
    before: float  # the base model
    after: float  # the student when the traffic ended
    after_model: str  # what served the "after" answers (x-distillserve-model)
    failed: int = 0  # probe requests that got an error (before + after), counted as wrong answers


def draw_probe(tasks: tuple[str, ...], per_task: int, seed: int) -> list[TrafficItem]:
    rng = random.Random(seed + _PROBE_SEED_OFFSET)
    return [draw_item(task, rng) for task in tasks for _ in range(per_task)]


def compare(
    items: list[TrafficItem], before: list[Outcome], after: list[Outcome], traffic: list[Outcome]
) -> list[HeldoutResult]:
    """Per task: accuracy before and after, on the probe prompts the traffic never sent.

    A failed probe request counts as a wrong answer and is reported as failed: the report is still
    written (the run's traffic figures stand), and the failure is in it, not hidden."""
    seen = {o.prompt for o in traffic}
    out = []
    for task in dict.fromkeys(i.task for i in items):
        keep = [k for k, i in enumerate(items) if i.task == task and i.prompt not in seen]
        if not keep:
            continue
        served = {after[k].model for k in keep}
        out.append(
            HeldoutResult(
                task=task,
                grader=items[keep[0]].grader,
                n=len(keep),
                before=sum(before[k].correct for k in keep) / len(keep),
                after=sum(after[k].correct for k in keep) / len(keep),
                after_model=", ".join(sorted(served - {""})) or "-",
                failed=sum((before[k].error is not None) + (after[k].error is not None) for k in keep),
            )
        )
    return out
