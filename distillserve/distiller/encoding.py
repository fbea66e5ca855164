"""Training examples → token ids with the student's chat template; loss on assistant tokens only.

The prompt is rendered with ``add_generation_prompt=True`` and the full conversation with the
assistant turn; what the full text adds after the prompt is the completion, and only its tokens
carry labels. An example longer than the sequence budget has its reasoning trace clipped (the
final answer kept) or is dropped, by policy, and is counted by outcome. When the teacher sent top-k log-probabilities that line up with the target, the
target is tokenized the teacher's way (one student id per teacher token) so every position gets
its teacher distribution; alternatives the student vocabulary cannot spell as one token are skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from distillserve.distiller.examples import TrainingExample

IGNORE = -100


@dataclass
class EncodedExample:
    input_ids: list[int]
    labels: list[int]
    # position -> (student ids, teacher logprobs) of the teacher's top-k at that position.
    kd: dict[int, tuple[list[int], list[float]]] = field(default_factory=dict)


class TokenMap:
    """Teacher token strings → student token ids (None when the student needs several tokens)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[str, int | None] = {}

    def __call__(self, token: str) -> int | None:
        if token not in self._cache:
            ids = self.tokenizer(token, add_special_tokens=False)["input_ids"]
            unk = self.tokenizer.unk_token_id
            self._cache[token] = ids[0] if len(ids) == 1 and ids[0] != unk else None
        return self._cache[token]


TooLongPolicy = Literal["clip_reasoning", "drop"]
# What became of an example longer than the sequence budget; each is counted on the adapter card.
LONG_OUTCOMES = ("reasoning_clipped", "dropped_by_policy", "no_reasoning_to_clip", "answer_too_long")


class ChatEncoder:
    """Examples → ids and labels within ``max_seq_len`` tokens; an example that does not fit follows
    ``too_long``: its reasoning trace is clipped (the final answer kept whole), or it is dropped."""

    def __init__(
        self, tokenizer: Any, max_seq_len: int, *, too_long: TooLongPolicy = "clip_reasoning"
    ) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the student's tokenizer has no chat template; training needs one")
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.too_long = too_long
        self.token_map = TokenMap(tokenizer)
        self.stats: Counter[str] = Counter()
        self.long: Counter[str] = Counter()  # over-long examples by outcome (``LONG_OUTCOMES``)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, example: TrainingExample) -> EncodedExample | None:
        """Ids and labels for one example; None (counted in ``stats``/``long``) if it cannot fit."""
        notes: Counter[str] = Counter()
        encoded = self._encode(example, notes)
        if encoded is not None and len(encoded.input_ids) > self.max_seq_len:
            encoded, notes = self._fit(example, len(encoded.input_ids))
        self.stats.update(notes)
        if encoded is not None:
            self.stats["encoded"] += 1
        return encoded

    def _fit(self, example: TrainingExample, length: int) -> tuple[EncodedExample | None, Counter[str]]:
        """An over-long example under the policy: clipped (with its encoding notes) or dropped."""
        notes: Counter[str] = Counter()
        if self.too_long == "drop":
            outcome = "dropped_by_policy"
        elif example.reasoning is None:
            outcome = "no_reasoning_to_clip"
        else:
            clipped = self._clip_reasoning(example, length, notes)
            outcome = "answer_too_long" if clipped is None else "reasoning_clipped"
            if clipped is not None:
                self.long[outcome] += 1
                return clipped, notes
        self.long[outcome] += 1
        notes["too_long"] += 1
        return None, notes

    def _clip_reasoning(
        self, example: TrainingExample, length: int, notes: Counter[str]
    ) -> EncodedExample | None:
        """The longest head of the trace that fits with the whole answer; None if the answer alone
        does not fit. Tokenizers merge across the cut differently, so it re-encodes until it fits."""
        trace = example.reasoning or ""
        ends = [
            end
            for _, end in self.tokenizer(trace, add_special_tokens=False, return_offsets_mapping=True)[
                "offset_mapping"
            ]
        ]
        keep = len(ends) - (length - self.max_seq_len)
        while keep > 0:
            attempt: Counter[str] = Counter()
            encoded = self._encode(example.with_reasoning(trace[: ends[keep - 1]].rstrip()), attempt)
            if encoded is not None and len(encoded.input_ids) <= self.max_seq_len:
                notes.update(attempt)
                return encoded
            keep -= max(1, len(encoded.input_ids) - self.max_seq_len) if encoded is not None else 1
        encoded = self._encode(example.with_reasoning(""), notes)
        return encoded if encoded is not None and len(encoded.input_ids) <= self.max_seq_len else None

    def _encode(self, example: TrainingExample, notes: Counter[str]) -> EncodedExample | None:
        """Ids and labels of ``example`` whatever its length; None on a chat-template mismatch."""
        prompt = self.prompt_text(example.messages)
        full = self.tokenizer.apply_chat_template(
            [*example.messages, {"role": "assistant", "content": example.target}], tokenize=False
        )
        if not full.startswith(prompt) or example.target not in full[len(prompt) :]:
            notes["template_mismatch"] += 1
            return None
        completion = full[len(prompt) :]
        prompt_ids = self._ids(prompt)
        kd: dict[int, tuple[list[int], list[float]]] = {}
        teacher = self._teacher_ids(example, notes)
        if teacher is None:
            completion_ids = self._ids(completion)
        else:
            # Spell the target's KD-covered tail with the teacher's tokens, so positions line up.
            at = completion.index(example.target)
            covered = "".join(t.token for t in example.teacher_tokens or [])
            head = completion[: at + len(example.target) - len(covered)]
            tail = completion[at + len(example.target) :]
            head_ids = self._ids(head)
            start = len(prompt_ids) + len(head_ids)
            for i, (ids, lps) in enumerate(teacher[1]):
                if ids:
                    kd[start + i] = (ids, lps)
            completion_ids = head_ids + teacher[0] + self._ids(tail)
            notes["kd_examples"] += 1
        ids = prompt_ids + completion_ids
        return EncodedExample(ids, [IGNORE] * len(prompt_ids) + completion_ids, kd)

    def _teacher_ids(
        self, example: TrainingExample, notes: Counter[str]
    ) -> tuple[list[int], list[tuple[list[int], list[float]]]] | None:
        """(sampled-token ids, per-position mapped top-k) or None when KD cannot apply to this example."""
        if not example.teacher_tokens:
            return None
        sampled: list[int] = []
        topk: list[tuple[list[int], list[float]]] = []
        for t in example.teacher_tokens:
            sid = self.token_map(t.token)
            if sid is None:
                notes["kd_unmappable"] += 1
                return None
            sampled.append(sid)
            alts = [(self.token_map(tok), lp) for tok, lp in (t.top or [(t.token, t.logprob)])]
            kept = [(i, lp) for i, lp in alts if i is not None]
            notes["kd_alternatives_skipped"] += len(alts) - len(kept)
            topk.append(([i for i, _ in kept], [lp for _, lp in kept]))
        return sampled, topk

    def encode_all(self, examples: Sequence[TrainingExample]) -> list[EncodedExample]:
        return [e for e in (self.encode(x) for x in examples) if e is not None]


class DistillationCollator:
    """Right-pads a batch; labels padded with -100, KD ids with -1 (no teacher entry)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: Sequence[EncodedExample]) -> dict[str, torch.Tensor]:
        length = max(len(e.input_ids) for e in batch)
        k = max((len(ids) for e in batch for ids, _ in e.kd.values()), default=0)
        input_ids = torch.full((len(batch), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), length), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(batch), length), dtype=torch.long)
        out: dict[str, torch.Tensor] = {}
        if k:
            kd_ids = torch.full((len(batch), length, k), -1, dtype=torch.long)
            kd_lp = torch.zeros((len(batch), length, k), dtype=torch.float32)
        for b, e in enumerate(batch):
            n = len(e.input_ids)
            input_ids[b, :n] = torch.tensor(e.input_ids)
            labels[b, :n] = torch.tensor(e.labels)
            attention[b, :n] = 1
            for pos, (ids, lps) in e.kd.items() if k else ():
                kd_ids[b, pos, : len(ids)] = torch.tensor(ids)
                kd_lp[b, pos, : len(lps)] = torch.tensor(lps)
        out.update(input_ids=input_ids, labels=labels, attention_mask=attention)
        if k:
            out.update(kd_ids=kd_ids, kd_logprobs=kd_lp)
        return out
