"""Greedy answers by the runtime that serves each format, so every export is measured where it runs.

``GreedyRunner`` is the seam: the source (adapter on base, transformers + peft) and the merged
model (transformers) share one implementation; GGUF runs in llama.cpp (``llama-cpp-python``),
ONNX in onnxruntime. Every runner gets the same prompt text: the base tokenizer's chat template.
Batch 1 for all of them, so no padding can make the answers differ.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distillserve.distiller.examples import TrainingExample
from distillserve.export.errors import RuntimeUnavailable


def chat_prompts(tokenizer: Any, examples: Sequence[TrainingExample]) -> list[str]:
    return [
        tokenizer.apply_chat_template(e.messages, add_generation_prompt=True, tokenize=False)
        for e in examples
    ]


class GreedyRunner(ABC):
    """Greedy continuations of chat prompts (already rendered by the chat template)."""

    runtime: str

    def __init__(self, tokenizer: Any, max_new_tokens: int, threads: int = 2) -> None:
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.threads = threads  # the edge target: 2 cores

    def answers(self, examples: Sequence[TrainingExample]) -> list[str]:
        return [self.complete(p) for p in chat_prompts(self.tokenizer, examples)]

    @abstractmethod
    def complete(self, prompt: str) -> str: ...

    def close(self) -> None:  # noqa: B027 - most runners hold nothing to release
        """Release what the runner holds."""


class TransformersRunner(GreedyRunner):
    """A HF model directory, optionally with a PEFT adapter on it (the source of every export)."""

    runtime = "transformers"

    def __init__(
        self, model_dir: Path, tokenizer: Any, max_new_tokens: int, *, adapter_dir: Path | None = None
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        super().__init__(tokenizer, max_new_tokens)
        torch.set_num_threads(self.threads)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir))
        self.model = model.eval()

    def complete(self, prompt: str) -> str:
        import torch

        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


class LlamaCppRunner(GreedyRunner):
    """A GGUF file in llama.cpp; the prompt is tokenized by the GGUF's own vocabulary."""

    runtime = "llama.cpp"

    def __init__(self, gguf_file: Path, tokenizer: Any, max_new_tokens: int, *, threads: int = 2) -> None:
        llama_cpp = import_llama_cpp()
        super().__init__(tokenizer, max_new_tokens, threads)
        self.llm = llama_cpp.Llama(
            model_path=str(gguf_file), n_ctx=1024, n_threads=threads, seed=0, verbose=False
        )

    def complete(self, prompt: str) -> str:
        tokens = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)
        out = self.llm.create_completion(
            tokens,
            max_tokens=self.max_new_tokens,
            temperature=0.0,
            top_k=1,
            top_p=1.0,
            min_p=0.0,
            repeat_penalty=1.0,
        )
        return out["choices"][0]["text"]

    def close(self) -> None:
        self.llm.close()


class OnnxRunner(GreedyRunner):
    """An ONNX graph ``(input_ids, attention_mask) -> logits`` in onnxruntime, greedy over the full
    sequence at each step (the exported graph has no KV cache, see ``onnx_format``)."""

    runtime = "onnxruntime"

    def __init__(self, onnx_file: Path, tokenizer: Any, max_new_tokens: int, *, threads: int = 2) -> None:
        import onnxruntime as ort

        super().__init__(tokenizer, max_new_tokens, threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    def complete(self, prompt: str) -> str:
        import numpy as np

        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        start = len(ids)
        for _ in range(self.max_new_tokens):
            batch = np.asarray([ids], dtype=np.int64)
            logits = self.session.run(
                ["logits"], {"input_ids": batch, "attention_mask": np.ones_like(batch)}
            )[0]
            nxt = int(logits[0, -1].argmax())
            ids.append(nxt)
            if nxt == self.tokenizer.eos_token_id:
                break
        return self.tokenizer.decode(ids[start:], skip_special_tokens=True)


def import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise RuntimeUnavailable(
            "llama.cpp is not installed here (pip install llama-cpp-python): GGUF needs it to quantize "
            "and to measure the export"
        ) from None
    return llama_cpp
