"""The distillation loss, in one place (after TRL's GKD trainer).

    per assistant token:  α · CE + (1 − α) · T² · KL(teacher_T ‖ student_T)   where the teacher's top-k is known
                          CE                                                 elsewhere (replayed data)
    loss = mean over assistant tokens

Sequence-level distillation is the CE term alone (the teacher's answer as the label), used for
every assistant token. Token-level distillation adds the KL where the record carried the
teacher's top-k log-probabilities: the teacher's tempered distribution is renormalised over its
top-k (mass outside it counts as zero, the usual approximation when only top-k is logged), the
student's is its full tempered softmax. T² keeps the KL gradient on the CE scale (Hinton et al.).
Prompt and padding positions carry label -100 and count in neither term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distillserve.distiller.encoding import IGNORE


@dataclass
class LossParts:
    loss: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor | None  # None when the batch had no teacher top-k


def distillation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    kd_ids: torch.Tensor | None = None,
    kd_logprobs: torch.Tensor | None = None,
    *,
    alpha: float,
    temperature: float,
) -> LossParts:
    """``logits`` [B, L, V] from the student; ``labels`` [B, L]; ``kd_*`` [B, L, K] (ids -1 = none).

    Position t of logits predicts token t+1, so everything is shifted by one first.
    """
    logits = logits[:, :-1].float()
    labels = labels[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE)
    if kd_ids is None or kd_logprobs is None:
        return LossParts(ce, ce, None)
    kd_ids, kd_logprobs = kd_ids[:, 1:], kd_logprobs[:, 1:]
    present = kd_ids >= 0  # [B, L-1, K]
    positions = present.any(-1) & (labels != IGNORE)
    if not positions.any():
        return LossParts(ce, ce, None)
    t = temperature
    # Teacher: tempered, renormalised over its (mappable) top-k. A large finite negative (not -inf)
    # for missing entries keeps all-empty positions finite, so no NaN reaches the gradient.
    teacher_logp = torch.log_softmax((kd_logprobs / t).masked_fill(~present, -1e9), dim=-1)
    teacher_p = torch.where(present, teacher_logp.exp(), torch.zeros_like(teacher_logp))
    # Student: full tempered distribution, read at the teacher's top-k ids.
    student_logp = torch.log_softmax(logits / t, dim=-1).gather(-1, kd_ids.clamp(min=0))
    kl_per_pos = (teacher_p * (teacher_logp - student_logp)).sum(-1)
    kl = kl_per_pos[positions].mean()
    # Per token: KD positions mix CE and KL; the others (replayed data, unmappable tokens) keep
    # plain CE at full weight, so replay is not down-weighted by batches that carry top-k.
    ce_tok = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE, reduction="none"
    ).view_as(labels)
    mixed = torch.where(positions, alpha * ce_tok + (1.0 - alpha) * (t * t) * kl_per_pos, ce_tok)
    loss = mixed[labels != IGNORE].mean()
    return LossParts(loss, ce, kl)


def scheduled_temperature(start: float, end: float, schedule: str, progress: float) -> float:
    """T at ``progress`` ∈ [0, 1] of the run: constant, or linear from ``start`` to ``end``."""
    if schedule == "linear":
        p = min(max(progress, 0.0), 1.0)
        return start + (end - start) * p
    return start
