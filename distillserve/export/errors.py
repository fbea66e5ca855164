"""Why an export was refused; every one leaves nothing behind in the registry."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export could not be made; the message says why."""


class UnsupportedArchitecture(ExportError):
    """The format's converter does not handle this model's architecture (or its tokenizer)."""


class RuntimeUnavailable(ExportError):
    """The runtime a format needs (llama.cpp, onnxruntime) is not installed here."""


class NoSpaceLeft(ExportError):
    """The destination ran out of space while the export was written (nothing was kept)."""
