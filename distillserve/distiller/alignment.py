"""Teacher top-k log-probabilities → KD targets on the student's own tokens, across tokenizers.

A teacher that does not share the student's vocabulary (DeepSeek-R1 → SmolLM2) still spells the
same text. Both token sequences are laid on character offsets of that text (after TRL's GOLD
trainer, ``ULDLoss._align_by_byte_offsets``) and, per student token:

* **span** (boundaries agree): a teacher token starts where the student token starts. The
  teacher's top-k there is a distribution over how the text continues from that character; each
  alternative string is moved onto the student id that begins it (the student's first token of
  that string), and alternatives landing on the same id are summed. The sampled alternative goes
  to the student's actual token; when that token spans several teacher tokens, the probabilities
  of the later sampled teacher tokens inside it are multiplied in (GOLD's "observed" merge).
* **uld** (boundaries disagree): a student token that starts inside a teacher token has no
  teacher distribution over its own continuation. Under ``uld`` it gets the Universal Logit
  Distillation term (Boizard et al., 2024): the L1 distance between the sorted probabilities of
  the covering teacher position and the student's, which needs no shared vocabulary. Under
  ``span`` it keeps plain CE.

Kept mass of a record = the teacher's top-k probability mass that reached a student target,
over all its top-k mass. Records whose logprobs cannot be trusted fall back to CE with a reason
(``FALLBACK_REASONS``); nothing here raises on bad input. A byte-level alternative in a top-k list
(part of a multi-byte character, ``bytes:\\xe2...``) spells no text: only its mass is lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from distillserve.monitoring import metrics
from distillserve.teacher_log.record import TokenLogprob

AlignmentMethod = Literal["exact", "span", "uld"]
# Why a record's logprobs were not used (it trains on CE alone): declared with the metric that counts them.
FALLBACK_REASONS = metrics.DISTILLER_KD_FALLBACK_REASONS
BYTES_PREFIX = "bytes:"


class UnusableLogprobs(ValueError):
    """The record's logprobs cannot drive KD; ``reason`` is one of ``FALLBACK_REASONS``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_teacher_tokens(tokens: Sequence[TokenLogprob], text: str, announced_k: int | None = None) -> None:
    """Raise ``UnusableLogprobs`` unless ``tokens`` spell ``text`` with finite, well-shaped top-k.

    ``announced_k`` is the request's ``top_logprobs``; when unknown, the first position's list
    length is taken as the announcement (every position of one answer carries the same k).
    """
    k = announced_k if announced_k is not None else (len(tokens[0].top) if tokens else 0)
    for t in tokens:
        if t.token.startswith(BYTES_PREFIX):
            raise UnusableLogprobs("bytes_token")
        if not math.isfinite(t.logprob) or not all(math.isfinite(lp) for _, lp in t.top):
            raise UnusableLogprobs("nonfinite_logprob")
        if len(t.top) != k:
            raise UnusableLogprobs("top_k_mismatch")
    if "".join(t.token for t in tokens) != text:
        raise UnusableLogprobs("text_mismatch")


@dataclass
class AlignedTargets:
    """KD targets keyed by index into the student tokens that were aligned."""

    # index -> (student ids, teacher log-probabilities merged onto them): the KL term.
    kd: dict[int, tuple[list[int], list[float]]] = field(default_factory=dict)
    # index -> the covering teacher position's top-k log-probabilities: the ULD term.
    uld: dict[int, list[float]] = field(default_factory=dict)
    kept_mass: float = 0.0


def _alternatives(t: TokenLogprob) -> list[tuple[str, float]]:
    return list(t.top) if t.top else [(t.token, t.logprob)]


def _teacher_spans(tokens: Sequence[TokenLogprob]) -> list[tuple[int, int]]:
    spans, at = [], 0
    for t in tokens:
        spans.append((at, at + len(t.token)))
        at += len(t.token)
    return spans


def _sampled_chain(tokens: Sequence[TokenLogprob], spans: list[tuple[int, int]], j: int, end: int) -> float:
    """log P of the sampled teacher tokens after ``j`` that end within a student token ending at ``end``."""
    lp, n = 0.0, j + 1
    while n < len(tokens) and spans[n][1] <= end:
        lp += tokens[n].logprob
        n += 1
    return lp


def _merged_targets(
    tokens: Sequence[TokenLogprob],
    spans: list[tuple[int, int]],
    j: int,
    student: tuple[int, int],
    first_id: Callable[[str], int | None],
) -> tuple[list[int], list[float], float]:
    """Teacher position ``j``'s top-k moved onto student ids: (ids, logprobs, kept probability)."""
    student_id, end = student
    merged: dict[int, float] = {}
    kept = 0.0
    chain = _sampled_chain(tokens, spans, j, end)
    for alt, lp in _alternatives(tokens[j]):
        # A byte-level alternative spells no text: its mass is lost (the sampled path still counts).
        sid = (
            student_id if alt == tokens[j].token else None if alt.startswith(BYTES_PREFIX) else first_id(alt)
        )
        if sid is None:
            continue  # the student cannot spell it: this mass is lost
        kept += math.exp(lp)
        lp_on_student = lp + chain if sid == student_id and alt == tokens[j].token else lp
        merged[sid] = _logaddexp(merged[sid], lp_on_student) if sid in merged else lp_on_student
    return list(merged), list(merged.values()), kept


def align(
    tokens: Sequence[TokenLogprob],
    student_ids: Sequence[int],
    student_offsets: Sequence[tuple[int, int]],
    first_id: Callable[[str], int | None],
    method: AlignmentMethod,
) -> AlignedTargets:
    """KD targets for student tokens whose ``student_offsets`` are relative to the teacher text.

    ``tokens`` must have passed ``check_teacher_tokens``; ``first_id`` maps a string to the
    student's first token id of it (None when the student cannot spell it).
    """
    spans = _teacher_spans(tokens)
    starts = {s: j for j, (s, _) in enumerate(spans)}
    ends = [e for _, e in spans]
    totals = [sum(math.exp(lp) for _, lp in _alternatives(t)) for t in tokens]
    kept = [0.0] * len(tokens)
    out = AlignedTargets()
    for i, (sid, (a, b)) in enumerate(zip(student_ids, student_offsets, strict=True)):
        if a >= b:
            continue  # zero-width (a byte-fallback piece sharing a character): nothing to predict
        j = starts.get(a)
        if j is not None:
            ids, lps, kept_j = _merged_targets(tokens, spans, j, (sid, b), first_id)
            if ids:
                out.kd[i] = (ids, lps)
                kept[j] = kept_j
        elif method == "uld":
            j = _covering(ends, a)
            out.uld[i] = sorted((lp for _, lp in _alternatives(tokens[j])), reverse=True)
            kept[j] = totals[j]
    total = sum(totals)
    out.kept_mass = sum(kept) / total if total > 0 else 0.0
    return out


def _logaddexp(x: float, y: float) -> float:
    hi, lo = max(x, y), min(x, y)
    return hi + math.log1p(math.exp(lo - hi))


def _covering(ends: list[int], char: int) -> int:
    """Index of the teacher token whose span contains ``char`` (ends are increasing)."""
    lo, hi = 0, len(ends) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] <= char:
            lo = mid + 1
        else:
            hi = mid
    return lo
