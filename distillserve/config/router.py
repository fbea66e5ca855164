"""The router: which scorer and policy decide between student and teacher."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from distillserve.config.legacy_keys import move_legacy_keys
from distillserve.config.strict_model import StrictModel

#: The scorers ``router.scoring`` registers (heuristic, embedding, random) plus ``cascade``, which the
#: router runs itself (the student answers first). tests/test_config.py checks the two lists agree.
ScorerName = Literal["heuristic", "embedding", "random", "cascade"]


class EmbeddingScorerConfig(StrictModel):
    """The learned scorer (``scorer: embedding``): a classifier on sentence embeddings."""

    # Sentence-embedding model (None = the packaged all-MiniLM-L6-v2, or a local sentence-transformers
    # directory), where it runs, and its trained classifier (None = ``.cache/router/embedding-classifier.npz``;
    # rewritten on every retrain).
    model: str | None = None
    device: str = "auto"
    classifier_path: str | None = None
    # Concurrent scoring calls are embedded together, at most this many per batch; a batch waits up to
    # ``batch_wait_ms`` for company (0: run as soon as the previous batch is done).
    max_batch: int = Field(default=32, ge=1)
    batch_wait_ms: float = Field(default=0.0, ge=0.0)
    # Only the start of a prompt is embedded; its length still enters the classifier.
    max_tokens: int = Field(default=128, ge=8)
    # CPU threads of the embedding worker (0 = torch's default); 1 leaves the rest to the gateway and student.
    threads: int = Field(default=1, ge=0)
    # Where the model runs: ``onnx`` (ONNX Runtime on CPU; exported once into ``onnx_cache_dir``,
    # None = ``.cache/router/onnx``) or ``torch`` (sentence-transformers, on ``device``).
    runtime: Literal["onnx", "torch"] = "onnx"
    # ``int8``: dynamic int8 weights (ONNX only); bench/RESULTS.md has the APGR before and after.
    quantization: Literal["none", "int8"] = "int8"
    onnx_cache_dir: str | None = None
    # Embeddings of this many recent prompts are kept (LRU); 0 disables the cache.
    cache_entries: int = Field(default=4096, ge=0)


class RetrainConfig(StrictModel):
    """When the learned scorer is re-fitted on what the live student can do."""

    # Recent teacher answers kept in memory to retrain the learned scorer when a new adapter goes live.
    buffer: int = Field(default=2000, ge=0)
    # Re-fit on the live student every this many new teacher answers (0: only when the live adapter
    # changes); the first fit waits for ``min_examples`` answers.
    every: int = Field(default=0, ge=0)
    min_examples: int = Field(default=40, ge=1)
    # Requests in flight while a re-fit re-asks the student: few, so client requests are not queued
    # behind a re-fit's batch (conversations already graded for the same adapter are not re-asked).
    relabel_concurrency: int = Field(default=4, ge=1)


class CascadeConfig(StrictModel):
    """Confidence cascade (``scorer: cascade``): the student answers first and the request escalates
    to the teacher when the statistic (min or mean) of the student's token log-probabilities is below
    ``min_logprob``. Streams are held back until decided: after the whole answer, or after
    ``decide_after_tokens`` tokens when that is > 0 (the rest then streams straight through)."""

    min_logprob: float = -1.0
    statistic: Literal["min", "mean"] = "min"
    decide_after_tokens: int = Field(default=0, ge=0)


class FleetShareConfig(StrictModel):
    """The target-share policy on the fleet's share (``policy: target_share``): every gateway
    publishes its recent scores and routes to Redis each ``sync_interval_s`` and sets its threshold
    on the pooled window of all gateways. None (``redis_url`` unset): each gateway on its own."""

    redis_url: str | None = None
    # Several fleets may share one Redis: their windows live under ``<key>:*``.
    key: str = "distillserve:router:share"
    sync_interval_s: float = Field(default=1.0, gt=0)
    # A gateway silent this long (stopped, partitioned) drops out of the pool.
    stale_after_s: float = Field(default=10.0, gt=0)


# Flat keys of the old layout -> (group, key).
_LEGACY = {
    "embedding_model": ("embedding", "model"),
    "embedding_device": ("embedding", "device"),
    "embedding_classifier_path": ("embedding", "classifier_path"),
    "embedding_max_batch": ("embedding", "max_batch"),
    "embedding_batch_wait_ms": ("embedding", "batch_wait_ms"),
    "embedding_max_tokens": ("embedding", "max_tokens"),
    "embedding_threads": ("embedding", "threads"),
    "retrain_buffer": ("retrain", "buffer"),
    "retrain_every": ("retrain", "every"),
    "retrain_min_examples": ("retrain", "min_examples"),
    "relabel_concurrency": ("retrain", "relabel_concurrency"),
    "cascade_min_logprob": ("cascade", "min_logprob"),
    "cascade_statistic": ("cascade", "statistic"),
    "cascade_decide_after_tokens": ("cascade", "decide_after_tokens"),
}


class RouterConfig(StrictModel):
    scorer: ScorerName = "heuristic"
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
    # What a learned scorer answers before its first fit: the heuristic's score, or "teacher" (send
    # everything to the teacher until the router has seen what the student can do).
    cold_start: Literal["heuristic", "teacher"] = "heuristic"
    embedding: EmbeddingScorerConfig = Field(default_factory=EmbeddingScorerConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)
    # The learned classifier across gateways (``router.published_model``): "off" each gateway fits
    # its own; "publish" this gateway fits and publishes it to the registry (one per fleet: a
    # dedicated config); "follow" it only loads what the registry names. Both load the published
    # one at start instead of cold-starting.
    shared_model: Literal["off", "publish", "follow"] = "off"
    fleet_share: FleetShareConfig = Field(default_factory=FleetShareConfig)

    @model_validator(mode="before")
    @classmethod
    def _move_legacy_keys(cls, data: Any) -> Any:
        return move_legacy_keys(data, "router", _LEGACY)
