"""PII and secrets out of the teacher log: detected spans become typed placeholders.

What a client sends and what the teacher answers may hold e-mail addresses, phone numbers,
payment cards, IBANs, API keys and tokens. The client gets its answer untouched; the copy that
goes to Kafka (14 days) and from there into the distiller's replay store and adapters has each
such span replaced by ``<EMAIL>``, ``<PHONE>``, ``<CREDIT_CARD>``, ``<IBAN>``, ``<API_KEY>``,
``<TOKEN>`` or ``<PRIVATE_KEY>``. Detection is Presidio's (``pii_recognizers``); each replaced
span is counted in ``distillserve_teacher_log_scrubbed_total{entity}``.

Scrubbed: the prompt (every string of ``messages``, or ``prompt``), the answer (``response_text``,
``reasoning_content``, ``refusal``, content parts, tool-call arguments, unknown message fields)
and a shadow pair's ``student_text``. When the answer changed, its per-token logprobs are dropped:
they spell the same text token by token, so they would carry what was just removed.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from distillserve.config.teacher_log import ScrubConfig
from distillserve.monitoring import metrics
from distillserve.teacher_log.pii_recognizers import build_recognizers
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.teacher_log.usage import ToolCall

# Message fields that name things rather than say them: never rewritten.
_STRUCTURAL_KEYS = frozenset({"role", "type", "id", "tool_call_id", "name"})


class PiiScrubber:
    """Finds the configured entities in text and replaces each with ``<ENTITY>``."""

    def __init__(self, cfg: ScrubConfig) -> None:
        self.min_score = cfg.min_score
        self.recognizers: dict[str, list[EntityRecognizer]] = build_recognizers(
            list(cfg.entities), cfg.phone_regions
        )

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, entity)`` spans, in text order."""
        found: list[tuple[RecognizerResult, str]] = []
        for entity, recognizers in self.recognizers.items():
            for r in recognizers:
                found += [(x, entity) for x in r.analyze(text, r.supported_entities, None)]
        found = [(x, e) for x, e in found if x.score >= self.min_score]
        # Most confident first, then longest: a card inside a pasted key loses to the key.
        found.sort(key=lambda p: (-p[0].score, -(p[0].end - p[0].start), p[0].start))
        taken: list[tuple[int, int, str]] = []
        for x, entity in found:
            if all(x.end <= s or x.start >= e for s, e, _ in taken):
                taken.append((x.start, x.end, entity))
        return sorted(taken)

    def scrub_text(self, text: str, counts: Counter[str]) -> str:
        """``text`` with every span found replaced; adds what it replaced to ``counts``."""
        if not text:
            return text
        out, pos = [], 0
        for start, end, entity in self.find(text):
            out += [text[pos:start], f"<{entity}>"]
            pos = end
            counts[entity] += 1
        return "".join(out) + text[pos:] if out else text

    def scrub_value(self, value: Any, counts: Counter[str]) -> Any:
        """Every string inside a JSON value scrubbed (structural message keys left alone)."""
        if isinstance(value, str):
            return self.scrub_text(value, counts)
        if isinstance(value, list):
            return [self.scrub_value(v, counts) for v in value]
        if isinstance(value, dict):
            return {k: v if k in _STRUCTURAL_KEYS else self.scrub_value(v, counts) for k, v in value.items()}
        return value

    def scrub_record(self, record: TeacherLogRecord) -> tuple[TeacherLogRecord, Counter[str]]:
        """A copy of ``record`` without the PII it held, and what was replaced by entity."""
        counts: Counter[str] = Counter()
        answer = Counter[str]()
        v = self.scrub_value
        update: dict[str, Any] = {
            "messages": v(record.messages, counts),
            "prompt": v(record.prompt, counts),
            "student_text": v(record.student_text, counts),
            "response_text": v(record.response_text, answer),
            "reasoning_content": v(record.reasoning_content, answer),
            "refusal": v(record.refusal, answer),
            "content_parts": v(record.content_parts, answer),
            "message_extras": v(record.message_extras, answer),
        }
        if record.tool_calls:
            dumped = [t.model_dump(mode="json", exclude_none=True) for t in record.tool_calls]
            update["tool_calls"] = [ToolCall.model_validate(t) for t in v(dumped, answer)]
        if answer:
            update["logprobs"] = None  # they spell the removed text token by token
        return record.model_copy(update=update), counts + answer


class RecordScrubbing:
    """The scrubber as the log uses it: timed, and counted per entity in the metrics."""

    def __init__(self, scrubber: PiiScrubber) -> None:
        self.scrubber = scrubber

    def __call__(self, record: TeacherLogRecord) -> TeacherLogRecord:
        started = time.perf_counter()
        clean, counts = self.scrubber.scrub_record(record)
        metrics.TEACHER_LOG_SCRUB_DURATION.observe(time.perf_counter() - started)
        for entity, n in counts.items():
            metrics.TEACHER_LOG_SCRUBBED.labels(entity=entity).inc(n)
        return clean

    def scrub_json(self, value: Any) -> Any:
        """A JSON value (a dead letter's answer) scrubbed and counted."""
        counts: Counter[str] = Counter()
        clean = self.scrubber.scrub_value(value, counts)
        for entity, n in counts.items():
            metrics.TEACHER_LOG_SCRUBBED.labels(entity=entity).inc(n)
        return clean


def record_scrubbing(cfg: ScrubConfig) -> RecordScrubbing | None:
    """The configured scrubbing, or None when ``teacher_log.scrub.enabled`` is false."""
    return RecordScrubbing(PiiScrubber(cfg)) if cfg.enabled and cfg.entities else None
