"""The testbed student's character-level tokenizer, built locally with ``tokenizers``.

One token per character of ``tasks.ALPHABET`` plus ChatML specials, so the vocabulary
is tiny (≈100) and every testbed prompt and answer round-trips exactly. Saved as a HF
``PreTrainedTokenizerFast`` with a ChatML chat template, which transformers and vLLM
both apply; ``<|im_end|>`` is the end-of-sequence token.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from distillserve.testbed.tasks import ALPHABET

PAD = "<|pad|>"
UNK = "<|unk|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD, UNK, IM_START, IM_END]

# ChatML, as Qwen and SmolLM2 use it. Content may be a string or a list of text parts
# (vLLM passes OpenAI content parts through to the template).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)


def _characters() -> list[str]:
    # "user", "assistant", "system" are spelled from ALPHABET letters, so roles need no tokens.
    return list(dict.fromkeys(ALPHABET))


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + _characters())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every character (newline included) is its own piece; Fuse joins pieces back without spaces.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL_TOKENS)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=IM_END,
        bos_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
        padding_side="left",
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf
