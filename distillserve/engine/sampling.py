"""Per-request sampling: greedy or temperature/top-p with a per-request seed, plus logprobs.

Each row of a batch has its own parameters and its own ``torch.Generator``, so a
seeded request draws the same tokens whether it runs alone or next to others.
Logprobs are those of the model's raw distribution (before temperature / top-p), as
vLLM reports them by default.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    ignore_eos: bool = False  # benchmarks: always generate max_tokens

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class TokenChoice:
    token_id: int
    logprob: float | None = None
    top: list[tuple[int, float]] = field(default_factory=list)


def new_generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed if seed is not None else random.SystemRandom().randrange(2**63))
    return gen


def _sample_row(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> int:
    scaled = logits / params.temperature
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        drop = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= params.top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=gen))


def choose_tokens(
    logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator]
) -> list[TokenChoice]:
    """One token per row of ``logits`` ([batch, vocab]) under each row's parameters."""
    logits = logits.float().cpu()
    choices: list[TokenChoice] = []
    for row, p in enumerate(params):
        token = int(torch.argmax(logits[row])) if p.greedy else _sample_row(logits[row], p, generators[row])
        choice = TokenChoice(token)
        if p.logprobs:
            logp = torch.log_softmax(logits[row], dim=-1)
            choice.logprob = float(logp[token])
            if p.top_logprobs:
                values, ids = torch.topk(logp, min(p.top_logprobs, logp.shape[-1]))
                choice.top = [(int(i), float(v)) for i, v in zip(ids, values, strict=True)]
        choices.append(choice)
    return choices
