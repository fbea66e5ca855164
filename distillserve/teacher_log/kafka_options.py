"""Connection settings shared by the teacher-log producer and consumer (kafka-python names)."""

from __future__ import annotations

import logging
from typing import Any

from distillserve.config import TeacherLogConfig


def client_options(cfg: TeacherLogConfig) -> dict[str, Any]:
    """Bootstrap servers plus the SASL/SSL settings of a production cluster, passed through."""
    # kafka-python logs ~25 lines per failed connection attempt; the sink and the consumer log
    # each failure once with its reason. Left alone when someone configured the logger.
    kafka_log = logging.getLogger("kafka")
    if kafka_log.level == logging.NOTSET:
        kafka_log.setLevel(logging.CRITICAL)
    opts: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in cfg.bootstrap_servers.split(",") if s.strip()],
        "security_protocol": cfg.security_protocol,
    }
    if cfg.sasl_mechanism:
        opts["sasl_mechanism"] = cfg.sasl_mechanism
        opts["sasl_plain_username"] = cfg.sasl_username
        opts["sasl_plain_password"] = cfg.sasl_password.get_secret_value() if cfg.sasl_password else None
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(cfg, name):
            opts[name] = getattr(cfg, name)
    return opts
