"""A Llama-family HF model directory → one GGUF file (f32/f16/bf16), with PyPI ``gguf``'s writer.

A focused port of what llama.cpp's ``convert_hf_to_gguf.py`` does for ``LlamaForCausalLM`` with a
byte-level BPE tokenizer (MIT, https://github.com/ggml-org/llama.cpp, ``conversion/llama.py`` and
``conversion/base.py`` as vendored in llama-cpp-python 0.3.36): hyper-parameters, the BPE vocab
with its merges, special tokens and chat template (``gguf.SpecialVocab``), the Q/K rows permuted
to llama.cpp's RoPE layout, norms kept in f32. We port instead of vendoring because the script is
now a 22k-line package for ~100 architectures; ours refuses anything it was not written for.

The pre-tokenizer is recognised as llama.cpp does: by the hash of the tokenization of its check
text; an unknown one is refused (llama.cpp would split words differently and answer garbage).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from distillserve.export.errors import UnsupportedArchitecture

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
# llama.cpp's check text and the hashes of its known pre-tokenizers (``get_vocab_base_pre``).
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) "
    "✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE "
    "you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
KNOWN_PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
}
GGUF_FLOAT_TYPES = ("f32", "f16", "bf16")


def check_supported(model_dir: Path) -> dict[str, Any]:
    """The model's config, or ``UnsupportedArchitecture`` saying what this converter cannot do."""
    config = json.loads((model_dir / "config.json").read_text())
    arch = (config.get("architectures") or ["?"])[0]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"the GGUF converter handles {', '.join(SUPPORTED_ARCHITECTURES)}, not {arch}"
        )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", "default") != "default":
        raise UnsupportedArchitecture(f"the GGUF converter handles plain RoPE, not {rope.get('rope_type')!r}")
    if not (model_dir / "tokenizer.json").is_file():
        raise UnsupportedArchitecture("the GGUF converter needs a byte-level BPE tokenizer.json")
    return config


def pre_tokenizer_name(tokenizer: Any) -> str:
    digest = hashlib.sha256(str(tokenizer.encode(CHECK_TEXT)).encode()).hexdigest()
    name = KNOWN_PRE_TOKENIZERS.get(digest)
    if name is None:
        raise UnsupportedArchitecture(
            f"the tokenizer's pre-tokenizer is not one llama.cpp knows (check hash {digest[:16]}…)"
        )
    return name


def convert_to_gguf(model_dir: Path, out_file: Path, outtype: str = "f16") -> Path:
    """Write ``model_dir`` (a merged HF Llama directory) as a GGUF file of float type ``outtype``."""
    import gguf
    from transformers import AutoTokenizer

    config = check_supported(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokpre = pre_tokenizer_name(tokenizer)
    writer = gguf.GGUFWriter(out_file, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _write_parameters(writer, config, outtype)
    _write_vocab(writer, model_dir, tokenizer, tokpre, config["vocab_size"])
    _write_tensors(writer, model_dir, config, outtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def _write_parameters(writer: Any, config: dict[str, Any], outtype: str) -> None:
    import gguf

    n_head = config["num_attention_heads"]
    rope = config.get("rope_parameters") or {}
    writer.add_name(str(config.get("_name_or_path") or "student"))
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads", n_head))
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(config.get("head_dim") or config["hidden_size"] // n_head)
    file_types = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    }
    writer.add_file_type(file_types[outtype])


def _write_vocab(writer: Any, model_dir: Path, tokenizer: Any, tokpre: str, vocab_size: int) -> None:
    """llama.cpp's ``_set_vocab_gpt2``: every id up to the config's vocab size, typed."""
    import gguf

    reverse = {i: t for t, i in tokenizer.vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            special = decoder[i].special if i in decoder else False
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tokpre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(model_dir, load_merges=True).add_to_gguf(writer)


def _permute(w: Any, n_head: int) -> Any:
    """HF's rotate-half Q/K rows → llama.cpp's interleaved RoPE layout (``LlamaModel.permute``)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_tensors(writer: Any, model_dir: Path, config: dict[str, Any], outtype: str) -> None:
    import gguf
    import torch
    from safetensors.torch import load_file

    n_head, n_kv = (
        config["num_attention_heads"],
        config.get("num_key_value_heads", config["num_attention_heads"]),
    )
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    for shard in sorted(model_dir.glob("*.safetensors")):
        for name, tensor in load_file(shard).items():
            if name.endswith("rotary_emb.inv_freq") or (
                name == "lm_head.weight" and config.get("tie_word_embeddings")
            ):
                continue
            t = tensor.to(torch.float32)
            if name.endswith("q_proj.weight"):
                t = _permute(t, n_head)
            elif name.endswith("k_proj.weight"):
                t = _permute(t, n_kv)
            new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if new_name is None:
                raise UnsupportedArchitecture(f"the GGUF converter has no name for tensor {name}")
            _add(writer, new_name, t, outtype)


def _add(writer: Any, name: str, t: Any, outtype: str) -> None:
    import gguf
    import torch

    if t.ndim == 1 or outtype == "f32":  # norms stay f32, as llama.cpp's converter keeps them
        writer.add_tensor(name, t.numpy())
    elif outtype == "f16":
        writer.add_tensor(name, t.to(torch.float16).numpy())
    else:  # bf16: numpy has no bfloat16; hand the raw bits over with the type
        bits = t.to(torch.bfloat16).view(torch.int16).numpy()
        writer.add_tensor(name, bits, raw_shape=bits.shape, raw_dtype=gguf.GGMLQuantizationType.BF16)
