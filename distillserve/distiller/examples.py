"""Teacher-log records → chat training examples, with the filters that keep bad records out.

A ``TrainingExample`` is the prompt conversation plus the assistant text the student must
learn (and, when the teacher sent them, its per-token top-k log-probabilities for that text).
Filters drop empty, truncated (``finish_reason == "length"``), duplicate and malformed records
and count each reason, so an operator sees why a batch shrank. The student learns text answers to
text conversations: a record whose answer is a tool call, or whose conversation holds tool turns or
images, is skipped and counted by that reason (``tool_call``, ``tools``, ``vision``). A record of
a tenant whose data was deleted (``adapters.tenant_deletions``) is skipped as ``deleted_tenant``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from distillserve.protocol.reasoning import THINK_CLOSE, THINK_OPEN, split_think
from distillserve.teacher_log.record import TeacherLogRecord, TokenLogprob

ExampleSource = Literal["teacher", "replay", "base", "golden"]
FILTER_REASONS = (
    "empty",
    "truncated",
    "duplicate",
    "malformed",
    "tool_call",
    "tools",
    "vision",
    "deleted_tenant",
)


@dataclass(frozen=True)
class TrainingExample:
    """One supervised conversation: ``messages`` is the prompt, ``target`` what the assistant says."""

    messages: list[dict[str, str]]
    target: str
    # The final answer inside ``target`` (``target`` may also hold a reasoning trace); what eval compares.
    answer: str
    # Teacher tokens whose concatenation ends ``target`` (top-k alternatives included), for token-level KD.
    teacher_tokens: list[TokenLogprob] | None = None
    source: ExampleSource = "teacher"
    key: str = ""
    # The request's ``metadata.task``: the evaluation grades this example with that class's grader.
    task: str | None = None
    # The tenant whose traffic it came from: a deletion request by tenant removes its examples.
    tenant: str | None = None

    def fingerprint(self) -> str:
        blob = orjson.dumps([self.messages, self.target], option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(blob, digest_size=16).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The replay-store form: logprobs are dropped (replayed data trains by cross-entropy)."""
        out = {"messages": self.messages, "target": self.target, "answer": self.answer, "key": self.key}
        return (
            out
            | ({"task": self.task} if self.task else {})
            | ({"tenant": self.tenant} if self.tenant else {})
        )

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: ExampleSource = "replay") -> TrainingExample:
        return cls(
            obj["messages"],
            obj["target"],
            obj.get("answer", obj["target"]),
            None,
            source,
            obj.get("key", ""),
            obj.get("task"),
            obj.get("tenant"),
        )

    @property
    def reasoning(self) -> str | None:
        """The reasoning trace the target carries (None when it is the answer alone)."""
        return split_think(self.target)[0]

    def with_reasoning(self, trace: str) -> TrainingExample:
        """This example with its trace replaced (a clipped one); the final answer stays whole.

        Teacher top-k is kept only where it still lines up: over the answer, not a cut trace.
        """
        target = f"{THINK_OPEN}{trace}{THINK_CLOSE}{self.answer}"
        return dataclasses.replace(
            self, target=target, teacher_tokens=_aligned_suffix(self.teacher_tokens, self.answer)
        )


@dataclass
class FilterReport:
    """How many records went in, how many became examples, and why the others were dropped."""

    seen: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "kept": self.kept, "dropped": {r: self.dropped[r] for r in FILTER_REASONS}}


class MalformedRecord(ValueError):
    """A record that cannot become a training example (no user turn, non-text content, ...)."""


def prompt_messages(record: TeacherLogRecord) -> list[dict[str, str]]:
    """The conversation the teacher answered, as plain-text chat messages."""
    if record.messages:
        out: list[dict[str, str]] = []
        for m in record.messages:
            role, content = m.get("role"), m.get("content")
            if role not in ("system", "user", "assistant", "developer"):
                raise MalformedRecord(f"unsupported role {role!r}")
            if isinstance(content, list):  # OpenAI content parts: keep text parts only
                texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
                if len(texts) != len(content):
                    raise MalformedRecord("non-text content parts")
                content = "".join(t or "" for t in texts)
            if not isinstance(content, str):
                raise MalformedRecord(f"message content of type {type(content).__name__}")
            out.append({"role": "system" if role == "developer" else role, "content": content})
        if not any(m["role"] == "user" for m in out) or out[-1]["role"] != "user":
            raise MalformedRecord("the conversation does not end with a user turn")
        return out
    if record.prompt is not None and record.prompt.strip():
        return [{"role": "user", "content": record.prompt}]
    raise MalformedRecord("record has neither messages nor a prompt")


def beyond_text(record: TeacherLogRecord) -> str | None:
    """Why ``record`` is no text-to-text example (``tool_call``, ``tools``, ``vision``); None if it is."""
    if record.finish_reason in ("tool_calls", "function_call") or record.tool_calls:
        return "tool_call"
    for m in record.messages or ():
        if m.get("role") in ("tool", "function") or m.get("tool_calls") or m.get("function_call"):
            return "tools"
        content = m.get("content")
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "image_url" for p in content
        ):
            return "vision"
    return None


def _aligned_suffix(tokens: list[TokenLogprob] | None, text: str) -> list[TokenLogprob] | None:
    """The trailing teacher tokens that spell exactly ``text`` (None if they do not line up)."""
    if not tokens or not text:
        return None
    acc = ""
    for i in range(len(tokens) - 1, -1, -1):
        acc = tokens[i].token + acc
        if len(acc) >= len(text):
            return tokens[i:] if acc == text else None
    return None


def to_example(record: TeacherLogRecord, *, learn_reasoning: bool) -> TrainingExample:
    """One record as a training example; raises ``MalformedRecord``. Filtering happens in ``build_examples``."""
    messages = prompt_messages(record)
    trace, answer = split_think(record.response_text)
    if trace is None and record.reasoning_content:
        trace = record.reasoning_content.strip()
    answer = answer.strip()
    target = f"{THINK_OPEN}{trace}{THINK_CLOSE}{answer}" if learn_reasoning and trace else answer
    # Logprobs cover the response text as sent; the answer is its tail whenever it was sent inline.
    # Tokens that spell neither stay on the example, so the encoder counts the CE fallback
    # (``text_mismatch``) instead of losing it silently.
    kd = (
        _aligned_suffix(record.logprobs, target)
        or _aligned_suffix(record.logprobs, answer)
        or record.logprobs
    )
    return TrainingExample(messages, target, answer, kd, "teacher", record.key, record.task, record.tenant)


def _example_or_reason(
    raw: TeacherLogRecord | bytes | str, learn_reasoning: bool, deleted_tenants: frozenset[str]
) -> TrainingExample | str:
    """The record's example, or why there is none (a ``FILTER_REASONS`` entry)."""
    try:
        record = raw if isinstance(raw, TeacherLogRecord) else TeacherLogRecord.from_json(raw)
        if record.tenant is not None and record.tenant in deleted_tenants:
            return "deleted_tenant"
        skip = beyond_text(record)
        if skip:
            return skip
        example = to_example(record, learn_reasoning=learn_reasoning)
    except ValueError:  # MalformedRecord, bad JSON, unknown schema, failed validation
        return "malformed"
    return "truncated" if record.finish_reason == "length" else example


def build_examples(
    records: Iterable[TeacherLogRecord | bytes | str],
    *,
    learn_reasoning: bool,
    seen_fingerprints: set[str] | None = None,
    deleted_tenants: frozenset[str] = frozenset(),
) -> tuple[list[TrainingExample], FilterReport]:
    """Examples from ``records`` (parsed records or raw JSON), plus what was dropped and why.

    ``seen_fingerprints`` carries duplicates across batches; it is updated in place. Records of
    ``deleted_tenants`` become no example (``deleted_tenant``).
    """
    seen = seen_fingerprints if seen_fingerprints is not None else set()
    report = FilterReport()
    out: list[TrainingExample] = []
    for raw in records:
        report.seen += 1
        example = _example_or_reason(raw, learn_reasoning, deleted_tenants)
        if isinstance(example, str):
            report.dropped[example] += 1
            continue
        if not example.answer:
            report.dropped["empty"] += 1
            continue
        fp = example.fingerprint()
        if fp in seen:
            report.dropped["duplicate"] += 1
            continue
        seen.add(fp)
        out.append(example)
    report.kept = len(out)
    return out, report
