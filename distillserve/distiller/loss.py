"""The distillation loss, in one place (after TRL's GKD trainer and GOLD's ULD loss).

    per assistant token:  α · CE + (1 − α) · T² · KL(teacher_T ‖ student_T)   where the teacher's top-k lands on student ids
                          α · CE + (1 − α) · ULD_T                           where only its shape can be used (``uld``)
                          CE                                                 elsewhere (replayed data, fallbacks)
    loss = mean over assistant tokens

Sequence-level distillation is the CE term alone (the teacher's answer as the label), used for
every assistant token. Token-level distillation adds the KL where the record carried the
teacher's top-k log-probabilities: the teacher's tempered distribution is renormalised over its
top-k (mass outside it counts as zero, the usual approximation when only top-k is logged), the
student's is its full tempered softmax. T² keeps the KL gradient on the CE scale (Hinton et al.).

ULD (Boizard et al., 2024, "Towards Cross-Tokenizer Distillation: the Universal Logit Distillation
Loss") compares sorted probabilities, so it needs no shared vocabulary: the L1 distance between the
student's tempered probabilities sorted high to low and the teacher's renormalised top-k (zero past
k). It lies in [0, 2] and is not scaled by T² (it is no log-ratio). Prompt and padding positions
carry label -100 and count in no term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distillserve.distiller.encoding import IGNORE


@dataclass
class LossParts:
    loss: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor | None  # None when the batch had no teacher top-k on student ids
    uld: torch.Tensor | None = None  # None when the batch had no ULD positions


def distillation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    kd_ids: torch.Tensor | None = None,
    kd_logprobs: torch.Tensor | None = None,
    *,
    alpha: float,
    temperature: float,
    uld_logprobs: torch.Tensor | None = None,
) -> LossParts:
    """``logits`` [B, L, V] from the student; ``labels`` [B, L]; ``kd_*`` [B, L, K] (ids -1 = none);
    ``uld_logprobs`` [B, L, K'] (-inf = none).

    Position t of logits predicts token t+1, so everything is shifted by one first.
    """
    logits = logits[:, :-1].float()
    labels = labels[:, 1:]
    labelled = labels != IGNORE
    ce_tok = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE, reduction="none"
    ).view_as(labels)
    ce = ce_tok[labelled].mean()
    t = temperature
    kl = _kl_term(logits, kd_ids, kd_logprobs, t, labelled)
    uld = _uld_term(logits, uld_logprobs, t, labelled)
    if kl is None and uld is None:
        return LossParts(ce, ce, None, None)
    # Per token: KD positions mix CE and the teacher term; the others (replayed data, unaligned
    # tokens) keep plain CE at full weight, so replay is not down-weighted by batches with top-k.
    mixed = ce_tok
    if kl is not None:
        mixed = torch.where(kl[1], alpha * ce_tok + (1.0 - alpha) * (t * t) * kl[0], mixed)
    if uld is not None:
        mixed = torch.where(uld[1], alpha * ce_tok + (1.0 - alpha) * uld[0], mixed)
    return LossParts(
        mixed[labelled].mean(),
        ce,
        kl[0][kl[1]].mean() if kl is not None else None,
        uld[0][uld[1]].mean() if uld is not None else None,
    )


def _kl_term(
    logits: torch.Tensor,
    kd_ids: torch.Tensor | None,
    kd_logprobs: torch.Tensor | None,
    t: float,
    labelled: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(KL per position, positions where it applies) or None when no position has teacher top-k."""
    if kd_ids is None or kd_logprobs is None:
        return None
    kd_ids, kd_logprobs = kd_ids[:, 1:], kd_logprobs[:, 1:]
    present = kd_ids >= 0  # [B, L-1, K]
    positions = present.any(-1) & labelled
    if not positions.any():
        return None
    # Teacher: tempered, renormalised over its (mappable) top-k. A large finite negative (not -inf)
    # for missing entries keeps all-empty positions finite, so no NaN reaches the gradient.
    teacher_logp = torch.log_softmax((kd_logprobs / t).masked_fill(~present, -1e9), dim=-1)
    teacher_p = torch.where(present, teacher_logp.exp(), torch.zeros_like(teacher_logp))
    # Student: full tempered distribution, read at the teacher's top-k ids.
    student_logp = torch.log_softmax(logits / t, dim=-1).gather(-1, kd_ids.clamp(min=0))
    return (teacher_p * (teacher_logp - student_logp)).sum(-1), positions


def _uld_term(
    logits: torch.Tensor, uld_logprobs: torch.Tensor | None, t: float, labelled: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(sorted-probability L1 per position, positions where it applies) or None when none has one."""
    if uld_logprobs is None:
        return None
    uld_logprobs = uld_logprobs[:, 1:]
    present = torch.isfinite(uld_logprobs)
    positions = present.any(-1) & labelled
    if not positions.any():
        return None
    k = uld_logprobs.size(-1)
    teacher = torch.softmax(torch.where(present, uld_logprobs / t, -1e9), dim=-1)
    teacher = torch.where(present, teacher, torch.zeros_like(teacher)).sort(-1, descending=True).values
    student = torch.softmax(logits / t, dim=-1).topk(min(k, logits.size(-1)), dim=-1).values
    teacher = teacher[..., : student.size(-1)]
    # The student's mass past its top k faces the teacher's zeros there: it adds 1 − Σ top-k.
    tail = (1.0 - student.sum(-1)).clamp(min=0.0)
    return (student - teacher).abs().sum(-1) + tail, positions


def scheduled_temperature(start: float, end: float, schedule: str, progress: float) -> float:
    """T at ``progress`` ∈ [0, 1] of the run: constant, linear or cosine from ``start`` to ``end``."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "linear":
        return start + (end - start) * p
    if schedule == "cosine":
        return end + (start - end) * (1.0 + math.cos(math.pi * p)) / 2.0
    return start
