"""Build the tiny testbed student offline, once per recipe, safely across processes.

The student is a small Llama with the character tokenizer of ``student_tokenizer``,
optionally pre-trained on ``BASE_TASKS`` (see ``pretraining``). It is saved as a
safetensors HF directory that transformers, peft and vLLM load. Llama, not Qwen2: for a
``qwen2`` config, transformers' AutoTokenizer (and so vLLM) ignores the saved tokenizer class
and rebuilds a byte-level Qwen2Tokenizer, which silently drops the spaces and newlines of
this character vocabulary.

``ensure_testbed_student()`` builds it into ``cache_dir()/models/testbed-student-<hash>``
where the hash covers the whole recipe, so a changed recipe never reuses a stale
model. Builds run under an inter-process file lock into a temporary sibling that is
renamed into place, so concurrent callers (pytest workers, servers) never see a
half-built directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from distillserve.cached_build import build_once
from distillserve.config import cache_dir
from distillserve.testbed import pretraining
from distillserve.testbed.pretraining import PretrainRecipe
from distillserve.testbed.student_tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, build_tokenizer
from distillserve.testbed.tasks import ALPHABET

# Bump when the build code changes in a way the recipe fields do not capture.
BUILD_VERSION = 2


@dataclass(frozen=True)
class StudentArchitecture:
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4  # head_dim 32: one of the sizes vLLM's CPU attention supports
    num_key_value_heads: int = 4
    intermediate_size: int = 256
    max_position_embeddings: int = 1024
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True


ARCHITECTURE = StudentArchitecture()
PRETRAIN_RECIPE = PretrainRecipe()


def recipe_hash(*, pretrain: bool, seed: int) -> str:
    """Content hash of everything that determines the built model."""
    recipe = {
        "build_version": BUILD_VERSION,
        "architecture": asdict(ARCHITECTURE),
        "alphabet": ALPHABET,
        "special_tokens": SPECIAL_TOKENS,
        "chat_template": CHAT_TEMPLATE,
        "pretrain": asdict(PRETRAIN_RECIPE) if pretrain else None,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def build_testbed_student(out_dir: Path, *, pretrain: bool = True, seed: int = 0) -> Path:
    """Build the student into ``out_dir`` (created; must not exist yet) and return it."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    arch = ARCHITECTURE
    config = LlamaConfig(
        vocab_size=len(tokenizer),  # exactly: vLLM would otherwise sample ids the tokenizer lacks
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads,
        head_dim=arch.hidden_size // arch.num_attention_heads,
        max_position_embeddings=arch.max_position_embeddings,
        rope_theta=arch.rope_theta,
        tie_word_embeddings=arch.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    stats = pretraining.pretrain(model, tokenizer, PRETRAIN_RECIPE, seed=seed) if pretrain else None
    out_dir.mkdir(parents=True, exist_ok=False)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    card = {
        "name": "testbed-student",
        "recipe_hash": recipe_hash(pretrain=pretrain, seed=seed),
        "pretrained": pretrain,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "pretraining": stats,
    }
    (out_dir / "testbed_student.json").write_text(json.dumps(card, indent=2))
    return out_dir


# Pre-built students shipped with the package (same recipe hash = same recipe), so a fresh
# clone does not spend minutes pre-training on a 2-core machine. Rebuilt when the recipe changes.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def student_dir_name(*, pretrain: bool = True, seed: int = 0) -> str:
    return f"testbed-student-{recipe_hash(pretrain=pretrain, seed=seed)}{'' if pretrain else '-raw'}"


def ensure_testbed_student(*, pretrain: bool = True, seed: int = 0) -> Path:
    """The cached student directory, built once per recipe (safe under concurrent callers).

    ``pretrain=False`` gives the untrained model in a second or two, for tests that only need
    real weights of the right shape.
    """
    name = student_dir_name(pretrain=pretrain, seed=seed)
    fixture = FIXTURES / name

    def build(tmp: Path) -> Path:
        if fixture.is_dir():
            shutil.copytree(fixture, tmp)
            return tmp
        return build_testbed_student(tmp, pretrain=pretrain, seed=seed)

    return build_once(cache_dir() / "models" / name, build)
