"""The keyed caller of the request being served, for the code deep in its answer that must honour
it: the teacher log (tenant on the record, or no record at all when the caller opted out) and the
usage the limiter settles. A context variable, set by the completion endpoint for its request's
task: streamed answers and the shadow comparisons a request starts run in copies of that context,
so each sees its own request's caller and none sees another's."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: Per request: ``x-distillserve-log: off`` serves the request but keeps it out of the teacher log.
LOG_HEADER = "x-distillserve-log"
_OFF = frozenset({"off", "false", "0", "no"})


@dataclass
class KeyedCall:
    tenant: str | None
    may_log: bool
    usage: dict[str, Any] | None = None  # the answer's usage, once delivered


_CURRENT: ContextVar[KeyedCall | None] = ContextVar("distillserve_keyed_call", default=None)


def log_opted_out(header_value: str | None) -> bool:
    return header_value is not None and header_value.strip().lower() in _OFF


def enter_call(call: KeyedCall) -> None:
    """Bind ``call`` to the current request's context (each request runs in a task of its own)."""
    _CURRENT.set(call)


def current_call() -> KeyedCall | None:
    return _CURRENT.get()


def may_log() -> bool:
    """Whether the current request's traffic may be logged (True outside any keyed request)."""
    call = _CURRENT.get()
    return call is None or call.may_log


def current_tenant() -> str | None:
    call = _CURRENT.get()
    return call.tenant if call is not None else None


def note_usage(usage: dict[str, Any] | None) -> None:
    call = _CURRENT.get()
    if call is not None and usage:
        call.usage = usage
