"""Build a backend from its config; heavy implementations are imported only when used."""

from __future__ import annotations

from distillserve.config import BackendConfig
from distillserve.protocol.backend import Backend


def build_backend(cfg: BackendConfig) -> Backend:
    if cfg.kind == "openai":
        from distillserve.backends.openai_http import OpenAIHTTPBackend

        return OpenAIHTTPBackend(cfg)
    if cfg.kind == "testbed":
        from distillserve.backends.testbed_teacher import TestbedTeacher

        return TestbedTeacher(
            cfg.name,
            reasoning=cfg.reasoning_format,
            first_token_delay_s=cfg.first_token_delay_s,
            token_delay_s=cfg.token_delay_s,
        )
    if cfg.kind == "embedded":
        from distillserve.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(cfg)
    if cfg.kind == "vllm":
        from distillserve.backends.vllm import VLLMBackend

        return VLLMBackend(cfg)
    if cfg.kind == "triton":
        from distillserve.backends.triton import TritonBackend

        return TritonBackend(cfg)
    raise ValueError(f"unknown backend kind {cfg.kind!r}")
