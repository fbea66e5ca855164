"""Where teacher answers are logged: Kafka, a file, or nowhere."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from distillserve.config.strict_model import StrictModel

#: What the scrubber can find; each is replaced by ``<NAME>`` in the logged record.
PiiEntity = Literal["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "API_KEY", "TOKEN", "PRIVATE_KEY"]
ALL_PII_ENTITIES: tuple[PiiEntity, ...] = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IBAN",
    "API_KEY",
    "TOKEN",
    "PRIVATE_KEY",
)


class ScrubConfig(StrictModel):
    """PII and secrets replaced by typed placeholders before a record enters the log (never in
    the client's answer)."""

    enabled: bool = True
    entities: list[PiiEntity] = Field(default_factory=lambda: list(ALL_PII_ENTITIES))
    # Regions whose national phone formats are recognised (international +CC numbers always are);
    # each region costs a pass of the phonenumbers matcher.
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR", "IN"])
    # Presidio scores below this are ignored (phone numbers without context words score 0.4).
    min_score: float = Field(default=0.4, ge=0.0, le=1.0)


class TeacherLogConfig(StrictModel):
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
    # Old place of ``teacher.top_logprobs`` (which wins when set); still honoured.
    teacher_top_logprobs: int = Field(default=0, ge=0, le=20)
    scrub: ScrubConfig = Field(default_factory=ScrubConfig)
