"""The distill worker: when it trains, what it trains, how it evaluates and promotes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from distillserve.config.legacy_keys import move_legacy_keys
from distillserve.config.strict_model import StrictModel


class TriggerConfig(StrictModel):
    # Train when this many new records are waiting, or when the oldest waiting one is this old.
    records: int = 256
    seconds: float = 300.0
    # Fewer usable records than this at a time trigger: keep waiting (offsets stay uncommitted).
    min_records: int = 16


class LoraAdapterConfig(StrictModel):
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


class OptimConfig(StrictModel):
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    # transformers scheduler name: "linear" (decay to 0) or "constant" (small data, many epochs).
    lr_scheduler: Literal["linear", "constant", "cosine"] = "linear"
    # Gradient-norm clipping: what makes LoRA on the tiny testbed student learn at a useful lr.
    max_grad_norm: float = 1.0
    epochs: int = 3
    # Cap on optimizer steps per run (0 = epochs decide).
    max_steps: int = 0
    batch_size: int = 16
    # Longest training sequence in tokens: the student's context length (its config's
    # ``max_position_embeddings``), capped by this number when set. R1 traces run to thousands.
    max_seq_len: int | None = Field(default=None, ge=8)
    # An example longer than that: "clip_reasoning" cuts the end of its reasoning trace and keeps the
    # final answer (dropped when it has no trace or the answer alone does not fit); "drop" drops it.
    # Either way it is counted per reason on the adapter card and in a metric.
    too_long: Literal["clip_reasoning", "drop"] = "clip_reasoning"


class KDConfig(StrictModel):
    # Token-level KD: loss = alpha * CE + (1 - alpha) * T^2 * KL.
    alpha: float = 0.5
    temperature: float = 2.0
    # "linear" / "cosine": T goes from ``temperature`` to ``temperature_final`` over the run.
    temperature_schedule: Literal["constant", "linear", "cosine"] = "constant"
    temperature_final: float = 1.0
    # How the teacher's top-k reaches student tokens: "exact" (same vocabulary: one student id per
    # teacher token), "span" (any tokenizer: merged onto student tokens by character offsets where
    # token boundaries agree), "uld" (span, plus a sorted-probability term where they do not).
    alignment: Literal["exact", "span", "uld"] = "exact"
    # Reasoning teachers: learn "<think>trace</think>answer" (as the R1-distilled models) or the answer alone.
    learn_reasoning: bool = True


class ReplayConfig(StrictModel):
    # Per new example, this many old ones (past training data + base-task regression samples).
    ratio: float = 0.5
    # Share of replayed examples drawn from the base-task samples (the rest from past data).
    base_share: float = 0.5
    store_max: int = 20_000
    # Base-skill examples to replay: a JSONL file of {"messages"|"prompt", "answer"}, disjoint from
    # the regression set; None = the deployment's own traffic (past teacher answers in the replay
    # store), or the testbed base tasks when the student is the testbed model.
    base_path: str | None = None


class EvalConfig(StrictModel):
    holdout_fraction: float = 0.1
    # Fixed regression set: a JSONL file of {"messages"|"prompt", "answer"}; None = a golden slice of
    # the deployment's own teacher-answered prompts (frozen in the registry from the first batches),
    # or the testbed base tasks when the student is the testbed model.
    regression_path: str | None = None
    regression_size: int = 60
    # Share of each batch's usable examples set aside for the golden slice until it holds
    # ``regression_size`` items (never trained on; the rest of the batch trains as usual).
    golden_batch_share: float = Field(default=0.25, ge=0.0, lt=1.0)
    # Held-out records kept from earlier runs, re-checked on every candidate so a new batch cannot
    # silently undo an earlier one.
    past_holdout_max: int = 200
    max_new_tokens: int = 48
    batch_size: int = 32


class GateConfig(StrictModel):
    # Promote when the candidate beats live by this much on held-out records...
    promote_margin: float = 0.02
    # ...and loses at most this much on any regression set.
    max_regression: float = 0.02


class PromotionConfig(StrictModel):
    # Promote a candidate that passes the gate without waiting for a person.
    auto: bool = True
    # How a promotion reaches the student: the gateway's admin API, or nothing (registry only).
    via: Literal["gateway", "none"] = "gateway"
    # Gateway base URL (``http://127.0.0.1:8000``) for via=gateway; the key is server.admin_key.
    gateway_url: str | None = None


# Flat keys of the old layout -> (group, key).
_LEGACY = {
    "trigger_records": ("trigger", "records"),
    "trigger_seconds": ("trigger", "seconds"),
    "min_records": ("trigger", "min_records"),
    "lora_rank": ("lora", "rank"),
    "lora_alpha": ("lora", "alpha"),
    "lora_dropout": ("lora", "dropout"),
    "target_modules": ("lora", "target_modules"),
    **{
        key: ("optim", key)
        for key in (
            "learning_rate",
            "weight_decay",
            "warmup_ratio",
            "lr_scheduler",
            "max_grad_norm",
            "epochs",
            "max_steps",
            "batch_size",
            "max_seq_len",
        )
    },
    "kd_alpha": ("kd", "alpha"),
    "kd_temperature": ("kd", "temperature"),
    "kd_temperature_schedule": ("kd", "temperature_schedule"),
    "kd_temperature_final": ("kd", "temperature_final"),
    "kd_alignment": ("kd", "alignment"),
    "learn_reasoning": ("kd", "learn_reasoning"),
    "replay_ratio": ("replay", "ratio"),
    "replay_base_share": ("replay", "base_share"),
    "replay_store_max": ("replay", "store_max"),
    "base_replay_path": ("replay", "base_path"),
    "holdout_fraction": ("eval", "holdout_fraction"),
    "regression_path": ("eval", "regression_path"),
    "regression_size": ("eval", "regression_size"),
    "past_holdout_max": ("eval", "past_holdout_max"),
    "eval_max_new_tokens": ("eval", "max_new_tokens"),
    "eval_batch_size": ("eval", "batch_size"),
    "promote_margin": ("gate", "promote_margin"),
    "max_regression": ("gate", "max_regression"),
    "auto_promote": ("promotion", "auto"),
    "promote_via": ("promotion", "via"),
    "gateway_url": ("promotion", "gateway_url"),
}


class DistillerConfig(StrictModel):
    group_id: str = "distillserve-distiller"
    # Where the worker reads the teacher log: the Kafka topic of ``teacher_log``, or the JSONL file
    # the ``file`` sink writes (single machine, no broker).
    source: Literal["kafka", "file"] = "kafka"
    # The student's base model (HF dir or a prepared alias such as ``testbed-student``);
    # None = ``student.model_path``.
    base_model: str | None = None
    # Where the worker keeps its replay store and past held-out set; None = inside the registry dir.
    state_dir: str | None = None
    device: str = "auto"
    # CPU threads for training (0: torch's default). One thread is faster on a machine whose cores
    # are busy serving: no OpenMP spinning against the gateway.
    torch_threads: int = Field(default=0, ge=0)
    # CPU cores the distiller runs on (empty: any). Beside a vLLM student pinned to other cores
    # (``vllm_args.cpu_omp_threads_bind``) neither preempts the other's threads.
    cpu_affinity: list[int] = Field(default_factory=list)
    seed: int = 0
    # Training processes (data-parallel DDP: gloo on CPU, NCCL on GPUs, one GPU per rank). Above 1,
    # ``distillserve distill`` runs itself under torchrun; rank 0 alone consumes, registers and
    # commits. ``optim.batch_size`` stays the global batch (a multiple of ``ranks``).
    ranks: int = Field(default=1, ge=1)
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    lora: LoraAdapterConfig = Field(default_factory=LoraAdapterConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    kd: KDConfig = Field(default_factory=KDConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)

    @model_validator(mode="after")
    def _batch_splits_over_ranks(self) -> DistillerConfig:
        if self.optim.batch_size % self.ranks:
            raise ValueError(
                f"optim.batch_size={self.optim.batch_size} must be a multiple of ranks={self.ranks}"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _move_legacy_keys(cls, data: Any) -> Any:
        return move_legacy_keys(data, "distiller", _LEGACY)
