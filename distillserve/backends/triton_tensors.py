"""The tensor interface of Triton's vLLM backend, as both sides of distillserve speak it.

``backends.triton`` (the client) and ``triton_serving`` (a Triton server over any
distillserve backend) share the names here. Triton's in-band errors carry only a message,
so a distillserve server writes the HTTP status a request deserves into that message with
``mark_error`` and the client reads it back with ``read_error_mark``.
"""

from __future__ import annotations

import re

#: Tensor names of Triton's vLLM backend (``vllm_backend/src/model.py``).
VLLM_TENSOR_NAMES: dict[str, str] = {
    "text_input": "text_input",
    "stream": "stream",
    "sampling_parameters": "sampling_parameters",
    "exclude_input_in_output": "exclude_input_in_output",
    "return_finish_reason": "return_finish_reason",
    "return_num_input_tokens": "return_num_input_tokens",
    "return_num_output_tokens": "return_num_output_tokens",
    "text_output": "text_output",
    "finish_reason": "finish_reason",
    "num_input_tokens": "num_input_tokens",
    "num_output_tokens": "num_output_tokens",
}

_MARK = re.compile(r"\[distillserve-error status=(\d{3}) code=([\w.-]*)\] ?([^\n]*)")


def mark_error(status: int, code: str | None, message: str) -> str:
    return f"[distillserve-error status={status} code={code or ''}] {message}"


def read_error_mark(text: str) -> tuple[int, str | None, str] | None:
    """(status, code, message) of the last mark in ``text`` (a Triton error, maybe a traceback)."""
    marks = _MARK.findall(text)
    if not marks:
        return None
    status, code, message = marks[-1]
    return int(status), code or None, message.strip()
