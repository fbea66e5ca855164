"""Load a model directory (or a prepared alias) for the embedded engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distillserve.models.prepared import resolve_model

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    path: Path
    model: Any
    tokenizer: Any
    device: torch.device
    eos_ids: frozenset[int]
    max_context: int


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device, config: Any) -> torch.dtype:
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type == "cpu":
        return torch.float32  # CPUs without fast bf16 matmuls are slower in bf16 than in fp32
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return saved if isinstance(saved, torch.dtype) and saved != torch.float32 else torch.bfloat16


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        eos = getattr(source, "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [] if eos is None else [eos])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def load_model(spec: str, *, dtype: str = "auto", device: str = "auto") -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(spec)
    dev = pick_device(device)
    config = AutoConfig.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype, dev, config)).to(dev)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    max_context = int(getattr(config, "max_position_embeddings", 2048) or 2048)
    return LoadedModel(path, model, tokenizer, dev, _eos_ids(model, tokenizer), max_context)
