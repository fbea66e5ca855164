"""Turn a chat conversation into one prompt string, for backends that take raw text (Triton).

Servers such as vLLM apply the model's chat template themselves; a Triton model with the
vLLM or TensorRT-LLM backend takes ``text_input`` as is, so the gateway renders the
template. Two sources, as the tokenizer libraries define them: a configured Jinja template
(inline or a file), rendered in the same sandbox transformers uses; or the template of the
tokenizer at ``model_path`` via ``apply_chat_template``. The tokenizer, when there is one,
also counts prompt tokens for servers that do not report them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from distillserve.protocol.schema import ChatCompletionRequest


def _messages(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": m.text()} for m in request.messages]


class ChatPrompter:
    """Renders chat requests; build it with ``load`` (the tokenizer import is heavy)."""

    def __init__(self, template: str | None = None, tokenizer: Any | None = None) -> None:
        if template is None and tokenizer is None:
            raise ValueError("a chat template or a tokenizer is required")
        if tokenizer is not None and template is None and not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template; set 'chat_template' in the backend config")
        self.tokenizer = tokenizer
        self._template = None
        if template is not None:
            # trim_blocks/lstrip_blocks as transformers renders chat templates.
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            self._template = env.from_string(template)

    @classmethod
    def load(cls, template: str | None, model_path: str | None) -> ChatPrompter | None:
        """From config: ``template`` is inline Jinja or a file path; ``model_path`` a tokenizer dir."""
        if template is not None and "{" not in template and Path(template).is_file():
            template = Path(template).read_text()
        tokenizer = None
        if model_path and (Path(model_path) / "tokenizer.json").is_file():
            # The fast tokenizer directly: importing AutoTokenizer pulls in transformers'
            # generation stack (and scikit-learn), ~20 s on a busy 2-core machine.
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast.from_pretrained(model_path)
        elif model_path:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_path)
        if template is None and tokenizer is None:
            return None
        return cls(template, tokenizer)

    def render(self, request: ChatCompletionRequest) -> str:
        messages = _messages(request)
        if self._template is not None:
            specials: dict[str, Any] = {}
            if self.tokenizer is not None:
                specials = {
                    "bos_token": self.tokenizer.bos_token or "",
                    "eos_token": self.tokenizer.eos_token,
                }
            return self._template.render(messages=messages, add_generation_prompt=True, **specials)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int | None:
        if self.tokenizer is None:
            return None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
