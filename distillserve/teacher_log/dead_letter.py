"""An answer that could not become a teacher-log record, kept with the reason why.

The gateway side of the dead-letter topic (the consumer dead-letters records it cannot read):
the value is what the gateway had of the answer, as JSON, so an operator can see what the
provider sent and replay it once the record schema learned the new shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from distillserve.teacher_log.answer import TeacherAnswer

#: Dead letters of gateways carry this ``source`` header; the consumer's carry ``topic/partition/offset``.
GATEWAY_SOURCE = "gateway"
_REASON_MAX = 1000


@dataclass(frozen=True)
class DeadLetter:
    key: bytes
    value: bytes
    reason: str
    source: str = GATEWAY_SOURCE

    def headers(self) -> list[tuple[str, bytes]]:
        return [("reason", self.reason[:_REASON_MAX].encode()), ("source", self.source.encode())]

    def to_json_line(self) -> bytes:
        """One line of a dead-letter file: the reason, the source and the answer itself."""
        envelope = {"reason": self.reason, "source": self.source, "key": self.key.decode(errors="replace")}
        return orjson.dumps({**envelope, "answer": orjson.Fragment(self.value)}) + b"\n"


def dead_letter_of(answer: TeacherAnswer, reason: str) -> DeadLetter:
    body: dict[str, Any] = {
        f.name: getattr(answer, f.name) for f in dataclasses.fields(answer) if f.name != "request"
    }
    body["request"] = answer.request.model_dump(mode="json", exclude_none=True)
    # Whatever broke the record must not also break its dead letter.
    try:
        value = orjson.dumps(body, default=repr)
    except TypeError:  # e.g. an integer beyond 64 bits
        value = orjson.dumps({"repr": repr(answer)})
    return DeadLetter(key=(answer.response_id or "").encode(), value=value, reason=reason)
