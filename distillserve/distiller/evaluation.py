"""Evaluation of adapter versions: greedy answers on fixed item sets, graded against the reference.

The candidate and the live version (or the bare base when nothing is live) are scored on the
same items, so the gate compares like with like. Sets: ``heldout`` (a slice of this run's teacher
records the candidate never trained on: agreement with the teacher), ``past_heldout`` (held-out
records of earlier runs: skills learned before) and ``regression`` (the fixed base-skill set).
Generation is batched greedy HF ``generate`` over one base model with adapters loaded by name.
Each answer is graded against the item's reference by the configured grader for its class (the
``grading`` section, the same verdicts as the router's labels and drift; default: exact answer
text, the testbed's oracle). A set's score is the share of items whose verdict is "as good".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distillserve.distiller.examples import TrainingExample
from distillserve.distiller.trainer import load_base, resolve_device
from distillserve.grading import GraderSelection, Pair, RequestClass, grade_all_blocking
from distillserve.grading.text import ExactGrader

log = logging.getLogger(__name__)


def prompt_text(example: TrainingExample) -> str:
    """The text grading rules match a prompt regex on (as ``ChatCompletionRequest.prompt_text``)."""
    return "\n".join(m.get("content") or "" for m in example.messages)


@dataclass(frozen=True)
class SetScore:
    score: float  # share of items the grader found as good as the reference
    n: int
    grader: str  # the grader's name, or "mixed" when the set's items had several

    def as_dict(self) -> dict[str, float | int | str]:
        return {"score": round(self.score, 4), "grader": self.grader, "n": self.n}


def grade_set(graders: GraderSelection, items: Sequence[TrainingExample], answers: Sequence[str]) -> SetScore:
    """The share of ``answers`` that the grader for each item's class finds as good as its reference."""
    chosen = [graders.for_request(RequestClass(prompt_text(e), e.task)) for e in items]
    pairs = [Pair(prompt_text(e), e.answer, a) for e, a in zip(items, answers, strict=True)]
    grades = grade_all_blocking(chosen, pairs)
    names = {g.grader for g in grades}
    hits = sum(g.verdict for g in grades)
    return SetScore(hits / len(items), len(items), names.pop() if len(names) == 1 else "mixed")


class Evaluator:
    """One base model in memory; adapters (PEFT dirs) are loaded, used and dropped by name."""

    def __init__(
        self,
        base_dir: str | Path,
        *,
        device: str = "auto",
        max_new_tokens: int = 48,
        batch_size: int = 32,
        graders: GraderSelection | None = None,
    ):
        self.device = resolve_device(device)
        self.model, self.tokenizer = load_base(base_dir, self.device)
        self.model.eval()
        self.tokenizer.padding_side = "left"  # batched greedy decoding needs the prompts right-aligned
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.graders = graders or GraderSelection.only(ExactGrader())
        self._peft: Any = None
        self._n = 0

    def _prompts(self, examples: Sequence[TrainingExample]) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(e.messages, add_generation_prompt=True, tokenize=False)
            for e in examples
        ]

    @torch.inference_mode()
    def _generate(self, model: Any, prompts: list[str]) -> list[str]:
        out: list[str] = []
        for i in range(0, len(prompts), self.batch_size):
            enc = self.tokenizer(
                prompts[i : i + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(self.device)
            gen = model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
            new = gen[:, enc["input_ids"].shape[1] :]
            out.extend(self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return out

    def answers(self, adapter: str | Path | None, examples: Sequence[TrainingExample]) -> list[str]:
        """Greedy outputs of the base (``adapter=None``) or of the PEFT adapter at ``adapter``."""
        prompts = self._prompts(examples)
        if adapter is None:
            if self._peft is None:
                return self._generate(self.model, prompts)
            with self._peft.disable_adapter():
                return self._generate(self._peft, prompts)
        from peft import PeftModel

        self._n += 1
        name = f"eval{self._n}"
        if self._peft is None:
            self._peft = PeftModel.from_pretrained(self.model, str(adapter), adapter_name=name)
        else:
            self._peft.load_adapter(str(adapter), adapter_name=name)
        self._peft.set_adapter(name)
        self._peft.eval()
        try:
            return self._generate(self._peft, prompts)
        finally:
            if len(self._peft.peft_config) > 1:  # peft keeps at least one adapter injected
                self._peft.delete_adapter(name)

    def score(
        self, adapter: str | Path | None, sets: Mapping[str, Sequence[TrainingExample]]
    ) -> dict[str, SetScore]:
        scores: dict[str, SetScore] = {}
        for name, items in sets.items():
            if not items:
                continue
            scores[name] = grade_set(self.graders, items, self.answers(adapter, items))
        return scores


def compare(
    evaluator: Evaluator,
    candidate: str | Path,
    live: str | Path | None,
    sets: Mapping[str, Sequence[TrainingExample]],
) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{"candidate": {set: score}, "live": {set: score}}`` on the very same items."""
    cand = evaluator.score(candidate, sets)
    base = evaluator.score(live, sets)
    return {
        "candidate": {k: v.as_dict() for k, v in cand.items()},
        "live": {k: v.as_dict() for k, v in base.items()},
    }
