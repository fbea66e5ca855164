"""Build a backend from its config; heavy implementations are imported only when used."""

from __future__ import annotations

from distillserve.config import BackendConfig
from distillserve.serving.backends.base import Backend


def build_backend(cfg: BackendConfig) -> Backend:
    if cfg.kind == "openai":
        from distillserve.serving.backends.openai_http import OpenAIHTTPBackend

        return OpenAIHTTPBackend(cfg)
    if cfg.kind == "testbed":
        from distillserve.serving.backends.testbed_teacher import TestbedTeacher

        return TestbedTeacher(
            cfg.name,
            reasoning=cfg.reasoning_format,
            first_token_delay_s=cfg.first_token_delay_s,
            token_delay_s=cfg.token_delay_s,
        )
    if cfg.kind == "embedded":
        from distillserve.serving.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(cfg)
    if cfg.kind == "vllm":
        from distillserve.serving.backends.vllm import VLLMBackend

        return VLLMBackend(cfg)
    if cfg.kind == "triton":
        from distillserve.serving.backends.triton import TritonBackend

        return TritonBackend(cfg)
    raise ValueError(f"unknown backend kind {cfg.kind!r}")
