"""Training examples → token ids with the student's chat template; loss on assistant tokens only.

The prompt is rendered with ``add_generation_prompt=True`` and the full conversation with the
assistant turn; what the full text adds after the prompt is the completion, and only its tokens
carry labels. An example longer than the sequence budget has its reasoning trace clipped (the
final answer kept) or is dropped, by policy, and is counted by outcome. When the teacher sent top-k log-probabilities that line up with the target, the
target is tokenized the teacher's way (one student id per teacher token) so every position gets
its teacher distribution; alternatives the student vocabulary cannot spell as one token are skipped.
That is the ``exact`` alignment, the fast path when teacher and student share a vocabulary. Under
``span`` or ``uld`` the target keeps the student's own tokenization and the teacher's top-k is
moved onto it by character offsets (``alignment``). Logprobs that cannot be trusted (non-finite,
ragged top-k, not spelling the target, byte tokens) leave the example on CE alone, counted by reason.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from distillserve.distiller.alignment import AlignmentMethod, UnusableLogprobs, align, check_teacher_tokens
from distillserve.distiller.examples import TrainingExample
from distillserve.monitoring import metrics
from distillserve.teacher_log.record import TokenLogprob

IGNORE = -100
_FALLBACK = "kd_fallback:"  # notes key prefix of a fallback reason, moved out by ``_note_kd``


@dataclass
class EncodedExample:
    input_ids: list[int]
    labels: list[int]
    # position -> (student ids, teacher logprobs) of the teacher's top-k at that position.
    kd: dict[int, tuple[list[int], list[float]]] = field(default_factory=dict)
    # position -> the teacher's sorted top-k logprobs where token boundaries disagree (``uld``).
    uld: dict[int, list[float]] = field(default_factory=dict)
    # Share of the teacher's top-k mass that reached a student target; None without teacher top-k.
    kept_mass: float | None = None


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

    def first(self, text: str) -> int | None:
        """The student's first token of ``text`` (None when it is empty or unknown)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        return ids[0] if ids and ids[0] != self.tokenizer.unk_token_id else None


TooLongPolicy = Literal["clip_reasoning", "drop"]
# What became of an example longer than the sequence budget; each is counted on the adapter card.
LONG_OUTCOMES = ("reasoning_clipped", "dropped_by_policy", "no_reasoning_to_clip", "answer_too_long")


class ChatEncoder:
    """Examples → ids and labels within ``max_seq_len`` tokens; an example that does not fit follows
    ``too_long``: its reasoning trace is clipped (the final answer kept whole), or it is dropped."""

    def __init__(
        self,
        tokenizer: Any,
        max_seq_len: int,
        *,
        too_long: TooLongPolicy = "clip_reasoning",
        alignment: AlignmentMethod = "exact",
    ) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the student's tokenizer has no chat template; training needs one")
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.too_long = too_long
        self.token_map = TokenMap(tokenizer)
        self.stats: Counter[str] = Counter()
        self.long: Counter[str] = Counter()  # over-long examples by outcome (``LONG_OUTCOMES``)
        self.alignment = alignment
        self.kd_fallbacks: Counter[str] = Counter()  # examples left on CE, by ``FALLBACK_REASONS``
        self.kept_masses: list[float] = []  # per KD example, the teacher top-k mass kept

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
        self._note_kd(notes, encoded)
        self.stats.update(notes)
        if encoded is not None:
            self.stats["encoded"] += 1
        return encoded

    def _note_kd(self, notes: Counter[str], encoded: EncodedExample | None) -> None:
        """Move this example's KD fallback (if any) from ``notes`` to its counter and metric."""
        for key in [k for k in notes if k.startswith(_FALLBACK)]:
            reason = key.removeprefix(_FALLBACK)
            del notes[key]
            if encoded is not None:  # a dropped example trains on nothing: not a fallback
                self.kd_fallbacks[reason] += 1
                metrics.DISTILLER_KD_FALLBACKS.labels(reason=reason).inc()
        if encoded is not None and encoded.kept_mass is not None:
            self.kept_masses.append(encoded.kept_mass)

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
        tokens = self._usable_teacher_tokens(example, notes)
        if tokens is None:
            return _assembled(prompt_ids, self._ids(completion))
        # The teacher's tokens spell the end of the target: where that text starts in the completion.
        at = completion.index(example.target) + len(example.target) - sum(len(t.token) for t in tokens)
        if self.alignment == "exact":
            return self._exact(prompt_ids, completion, at, tokens, notes)
        return self._aligned(prompt_ids, completion, at, tokens, notes)

    def _usable_teacher_tokens(
        self, example: TrainingExample, notes: Counter[str]
    ) -> list[TokenLogprob] | None:
        """The example's teacher tokens when KD can use them; None (a counted fallback) otherwise."""
        tokens = example.teacher_tokens
        if not tokens:
            return None
        n = sum(len(t.token) for t in tokens)
        try:
            check_teacher_tokens(
                tokens, example.target[len(example.target) - n :] if n <= len(example.target) else ""
            )
        except UnusableLogprobs as bad:
            notes[_FALLBACK + bad.reason] += 1
            return None
        return tokens

    def _exact(
        self, prompt_ids: list[int], completion: str, at: int, tokens: list[TokenLogprob], notes: Counter[str]
    ) -> EncodedExample:
        """The covered text spelled with the teacher's tokens, one student id each (same vocabulary)."""
        teacher = self._teacher_ids(tokens, notes)
        if teacher is None:
            notes[_FALLBACK + "unmappable"] += 1
            return _assembled(prompt_ids, self._ids(completion))
        sampled, topk, kept_mass = teacher
        head_ids = self._ids(completion[:at])
        start = len(prompt_ids) + len(head_ids)
        kd = {start + i: (ids, lps) for i, (ids, lps) in enumerate(topk) if ids}
        tail = completion[at + sum(len(t.token) for t in tokens) :]
        notes["kd_examples"] += 1
        return _assembled(prompt_ids, head_ids + sampled + self._ids(tail), kd, kept_mass=kept_mass)

    def _aligned(
        self, prompt_ids: list[int], completion: str, at: int, tokens: list[TokenLogprob], notes: Counter[str]
    ) -> EncodedExample:
        """The student's own tokens, with the teacher's top-k moved onto them by character offsets."""
        enc = self.tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        end = at + sum(len(t.token) for t in tokens)
        inside = [i for i, (a, b) in enumerate(offsets) if a >= at and b <= end]
        targets = align(
            tokens,
            [ids[i] for i in inside],
            [(offsets[i][0] - at, offsets[i][1] - at) for i in inside],
            self.token_map.first,
            self.alignment,
        )
        base = len(prompt_ids)
        kd = {base + inside[k]: v for k, v in targets.kd.items()}
        uld = {base + inside[k]: v for k, v in targets.uld.items()}
        notes["kd_examples"] += 1
        return _assembled(prompt_ids, ids, kd, uld, targets.kept_mass)

    def _teacher_ids(
        self, tokens: list[TokenLogprob], notes: Counter[str]
    ) -> tuple[list[int], list[tuple[list[int], list[float]]], float] | None:
        """(sampled-token ids, per-position mapped top-k, kept mass) or None when a sampled token
        is not one student token."""
        sampled: list[int] = []
        topk: list[tuple[list[int], list[float]]] = []
        kept_p = total_p = 0.0
        for t in tokens:
            sid = self.token_map(t.token)
            if sid is None:
                notes["kd_unmappable"] += 1
                return None
            sampled.append(sid)
            alts = [(self.token_map(tok), lp) for tok, lp in (t.top or [(t.token, t.logprob)])]
            kept = [(i, lp) for i, lp in alts if i is not None]
            notes["kd_alternatives_skipped"] += len(alts) - len(kept)
            topk.append(([i for i, _ in kept], [lp for _, lp in kept]))
            kept_p += sum(math.exp(lp) for _, lp in kept)
            total_p += sum(math.exp(lp) for _, lp in alts)
        return sampled, topk, kept_p / total_p if total_p > 0 else 0.0

    def encode_all(self, examples: Sequence[TrainingExample]) -> list[EncodedExample]:
        return [e for e in (self.encode(x) for x in examples) if e is not None]


def _assembled(
    prompt_ids: list[int],
    completion_ids: list[int],
    kd: dict[int, tuple[list[int], list[float]]] | None = None,
    uld: dict[int, list[float]] | None = None,
    kept_mass: float | None = None,
) -> EncodedExample:
    """Prompt + completion ids, labels on the completion only."""
    return EncodedExample(
        prompt_ids + completion_ids,
        [IGNORE] * len(prompt_ids) + completion_ids,
        kd or {},
        uld or {},
        kept_mass,
    )


class DistillationCollator:
    """Right-pads a batch; labels padded with -100, KD ids with -1 (no teacher entry), ULD
    logprobs with -inf (no teacher entry)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: Sequence[EncodedExample]) -> dict[str, torch.Tensor]:
        length = max(len(e.input_ids) for e in batch)
        input_ids = torch.full((len(batch), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), length), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(batch), length), dtype=torch.long)
        for b, e in enumerate(batch):
            n = len(e.input_ids)
            input_ids[b, :n] = torch.tensor(e.input_ids)
            labels[b, :n] = torch.tensor(e.labels)
            attention[b, :n] = 1
        out = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
        return out | _kd_tensors(batch, length) | _uld_tensors(batch, length)


def _kd_tensors(batch: Sequence[EncodedExample], length: int) -> dict[str, torch.Tensor]:
    k = max((len(ids) for e in batch for ids, _ in e.kd.values()), default=0)
    if not k:
        return {}
    kd_ids = torch.full((len(batch), length, k), -1, dtype=torch.long)
    kd_lp = torch.zeros((len(batch), length, k), dtype=torch.float32)
    for b, e in enumerate(batch):
        for pos, (ids, lps) in e.kd.items():
            kd_ids[b, pos, : len(ids)] = torch.tensor(ids)
            kd_lp[b, pos, : len(lps)] = torch.tensor(lps)
    return {"kd_ids": kd_ids, "kd_logprobs": kd_lp}


def _uld_tensors(batch: Sequence[EncodedExample], length: int) -> dict[str, torch.Tensor]:
    k = max((len(lps) for e in batch for lps in e.uld.values()), default=0)
    if not k:
        return {}
    uld = torch.full((len(batch), length, k), float("-inf"), dtype=torch.float32)
    for b, e in enumerate(batch):
        for pos, lps in e.uld.items():
            uld[b, pos, : len(lps)] = torch.tensor(lps)
    return {"uld_logprobs": uld}
