"""LoRA distillation training: a thin subclass of transformers' Trainer whose only new part is
the loss (``loss.distillation_loss``), plus ``train_adapter`` that runs one training job.

The standard loop gives us the optimizer, schedule, gradient clipping, seeding, device
placement and the tqdm progress bar; we add the KD loss, an optional temperature schedule and
the loss parts (CE, KL) for the adapter card. A run is deterministic for a fixed seed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import Trainer, TrainingArguments, set_seed

from distillserve.config import DistillerConfig, KDConfig, LoraAdapterConfig, OptimConfig
from distillserve.distiller.alignment import AlignmentMethod
from distillserve.distiller.encoding import IGNORE, ChatEncoder, DistillationCollator, EncodedExample
from distillserve.distiller.examples import TrainingExample
from distillserve.distiller.loss import distillation_loss, scheduled_temperature
from distillserve.distiller.ranks import (
    current_ranks,
    mean_over_ranks,
    per_rank_batch,
    rank_device,
    token_share,
)

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return rank_device(device, current_ranks())


class DistillationTrainer(Trainer):
    """``Trainer`` with the distillation loss; everything else is the standard loop."""

    def __init__(self, *args: Any, kd: KDConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kd = kd
        self.loss_history: list[dict[str, float]] = []

    def temperature(self) -> float:
        total = max(self.state.max_steps, 1)
        return scheduled_temperature(
            self.kd.temperature,
            self.kd.temperature_final,
            self.kd.temperature_schedule,
            self.state.global_step / total,
        )

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        parts = distillation_loss(
            outputs.logits,
            inputs["labels"],
            inputs.get("kd_ids"),
            inputs.get("kd_logprobs"),
            alpha=self.kd.alpha,
            temperature=self.temperature(),
            uld_logprobs=inputs.get("uld_logprobs"),
        )
        loss = parts.loss
        if model.training:
            # Several ranks: weigh this rank's token mean by its share of the step's tokens, so the
            # averaged gradient and logged loss are the global token mean (1.0 in one process).
            share = token_share(int((inputs["labels"][:, 1:] != IGNORE).sum()))
            loss = loss * share if share != 1.0 else loss
            self.loss_history.append(
                {
                    "loss": float(loss.detach()),
                    "ce": float(parts.ce.detach()) * share,
                    # KL is a mean over KD positions: across ranks, their plain mean.
                    **({"kl": float(parts.kl.detach())} if parts.kl is not None else {}),
                    **({"uld": float(parts.uld.detach())} if parts.uld is not None else {}),
                }
            )
        return (loss, outputs) if return_outputs else loss


@dataclass
class TrainOutcome:
    steps: int
    examples: int
    tokens: int
    seconds: float
    losses: dict[str, float]
    encode_stats: dict[str, int]
    history: list[dict[str, float]] = field(default_factory=list)
    max_seq_len: int = 0
    # Examples longer than ``max_seq_len`` by outcome (``encoding.LONG_OUTCOMES``).
    long_examples: dict[str, int] = field(default_factory=dict)
    # Token-level KD: alignment, temperature schedule, mean kept top-k mass, fallbacks by reason.
    kd: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class AdapterTraining(Protocol):
    """What the worker calls to train a candidate: ``train_adapter`` or its several-rank form."""

    def __call__(
        self,
        base_dir: str | Path,
        examples: Sequence[TrainingExample],
        cfg: DistillerConfig,
        out_dir: str | Path,
        *,
        parent_adapter: str | Path | None = None,
        work_dir: str | Path | None = None,
    ) -> TrainOutcome: ...


def lora_config(cfg: LoraAdapterConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )


def training_arguments(
    cfg: OptimConfig, work_dir: Path, n_examples: int, device: str, *, seed: int
) -> TrainingArguments:
    steps_per_epoch = math.ceil(n_examples / cfg.batch_size)
    total = cfg.max_steps or steps_per_epoch * cfg.epochs
    return TrainingArguments(
        output_dir=str(work_dir),
        per_device_train_batch_size=per_rank_batch(cfg.batch_size, current_ranks().world_size),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        warmup_steps=round(cfg.warmup_ratio * total),
        lr_scheduler_type=cfg.lr_scheduler,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        dataloader_pin_memory=device != "cpu",
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,  # several ranks: every LoRA weight takes part in each step
        disable_tqdm=False,
    )


def load_tokenizer(base_dir: str | Path) -> Any:
    """The tokenizer exactly as ``tokenizer.json`` defines it.

    transformers 5's ``AutoTokenizer`` picks the class of the model type (e.g. Qwen2Tokenizer)
    and replaces a custom pre-tokenizer with that family's default, which silently breaks a
    character-level vocabulary; the fast tokenizer built straight from the file does not.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (Path(base_dir) / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(base_dir))
    return AutoTokenizer.from_pretrained(str(base_dir))


def load_model(base_dir: str | Path, device: str) -> Any:
    """The student's base model: float32 on CPU, bf16 when a GPU supports it."""
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    return AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype).to(device)


def load_training_tokenizer(base_dir: str | Path) -> Any:
    """The tokenizer, with the end-of-sequence token as padding when it has none."""
    tokenizer = load_tokenizer(base_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(base_dir: str | Path, device: str) -> tuple[Any, Any]:
    """The student's base model and tokenizer."""
    tokenizer = load_training_tokenizer(base_dir)
    return load_model(base_dir, device), tokenizer


# Config keys that hold a model's context length, by family (Llama/Qwen, GPT-2, others).
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def context_length(base_dir: str | Path) -> int | None:
    """The longest sequence the student was built for, from its config (None if it does not say)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(base_dir)).to_dict()
    return next((config[k] for k in _CONTEXT_KEYS if isinstance(config.get(k), int)), None)


def training_seq_len(base_dir: str | Path, cap: int | None) -> int:
    """The student's context length, capped by ``optim.max_seq_len`` when that is set."""
    context = context_length(base_dir)
    if context is None and cap is None:
        raise ValueError(f"{base_dir}'s config names no context length: set distiller.optim.max_seq_len")
    return min(n for n in (context, cap) if n is not None)


class NothingToTrain(ValueError):
    """No example fits the sequence budget (or none was given): there is nothing to train on."""

    def __init__(self, encoder: ChatEncoder) -> None:
        self.stats = dict(encoder.stats)
        self.long_examples = dict(encoder.long)
        self.max_seq_len = encoder.max_seq_len
        super().__init__(
            f"no example could be encoded within {encoder.max_seq_len} tokens "
            f"({self.stats}; too long: {self.long_examples})"
        )


def encode_examples(
    base_dir: str | Path,
    examples: Sequence[TrainingExample],
    optim: OptimConfig,
    alignment: AlignmentMethod = "exact",
) -> tuple[Any, ChatEncoder, list[EncodedExample]]:
    """Tokenizer, encoder (with its counts) and the encoded examples; ``NothingToTrain`` if none fits."""
    tokenizer = load_training_tokenizer(base_dir)
    encoder = ChatEncoder(
        tokenizer,
        training_seq_len(base_dir, optim.max_seq_len),
        too_long=optim.too_long,
        alignment=alignment,
    )
    encoded = encoder.encode_all(examples)
    if not encoded:
        raise NothingToTrain(encoder)
    return tokenizer, encoder, encoded


def train_adapter(
    base_dir: str | Path,
    examples: Sequence[TrainingExample],
    cfg: DistillerConfig,
    out_dir: str | Path,
    *,
    parent_adapter: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> TrainOutcome:
    """Train a LoRA adapter on ``examples`` (continuing ``parent_adapter`` when given) and save it
    in PEFT format to ``out_dir``. Raises ``NothingToTrain`` (before loading the model) when no
    example fits."""
    device = resolve_device(cfg.device)
    set_seed(cfg.seed)
    tokenizer, encoder, encoded = encode_examples(base_dir, examples, cfg.optim, cfg.kd.alignment)
    model = with_adapter(load_model(base_dir, device), cfg.lora, parent_adapter)
    work = Path(work_dir or out_dir).with_suffix(".trainer")
    trainer = DistillationTrainer(
        model=model,
        args=training_arguments(cfg.optim, work, len(encoded), device, seed=cfg.seed),
        train_dataset=encoded,  # a list is a map-style dataset
        data_collator=DistillationCollator(tokenizer.pad_token_id),
        kd=cfg.kd,
    )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    hist = mean_over_ranks(trainer.loss_history)  # the same on every rank, so all agree below
    if not hist or not all(math.isfinite(h["loss"]) for h in hist):
        raise FloatingPointError("training diverged (non-finite loss); no adapter saved")
    if current_ranks().is_main:  # every rank holds the same weights after DDP's averaged steps
        model.save_pretrained(str(out_dir))
    epochs = _epochs_run(result.global_step, len(encoded), cfg.optim.batch_size)
    return TrainOutcome(
        steps=result.global_step,
        examples=len(encoded),
        tokens=round(sum(len(e.input_ids) for e in encoded) * epochs),
        seconds=seconds,
        losses=final_losses(hist),
        encode_stats=dict(encoder.stats),
        history=hist,
        max_seq_len=encoder.max_seq_len,
        long_examples=dict(encoder.long),
        kd=kd_summary(cfg.kd, encoder),
    )


def kd_summary(kd: KDConfig, encoder: ChatEncoder) -> dict[str, Any]:
    """What the adapter card says about token-level KD: method, schedule, kept mass, fallbacks."""
    kept = encoder.kept_masses
    return {
        "alignment": kd.alignment,
        "alpha": kd.alpha,
        "temperature": {
            "start": kd.temperature,
            "end": kd.temperature_final,
            "schedule": kd.temperature_schedule,
        },
        "examples": len(kept),
        "mean_kept_mass": round(sum(kept) / len(kept), 4) if kept else None,
        "fallbacks": dict(encoder.kd_fallbacks),
    }


def with_adapter(model: Any, lora: LoraAdapterConfig, parent_adapter: str | Path | None) -> Any:
    """``model`` with a trainable LoRA adapter: the parent's weights, or a fresh one of ``lora``'s shape."""
    from peft import PeftModel, get_peft_model

    if parent_adapter is not None:
        return PeftModel.from_pretrained(model, str(parent_adapter), is_trainable=True)
    return get_peft_model(model, lora_config(lora))


def final_losses(hist: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each loss part over the last tenth of the run (less noisy than one step), and the first loss."""
    tail = hist[-max(1, len(hist) // 10) :]
    losses = {
        k: sum(h[k] for h in tail if k in h) / max(1, sum(k in h for h in tail))
        for k in ("loss", "ce", "kl", "uld")
    }
    for optional in ("kl", "uld"):
        if not any(optional in h for h in tail):
            losses.pop(optional)
    losses["first"] = hist[0]["loss"] if hist else float("nan")
    return losses


def _epochs_run(steps: int, n: int, batch_size: int) -> float:
    steps_per_epoch = math.ceil(n / batch_size)
    return steps / steps_per_epoch if steps_per_epoch else 0.0
