"""Teacher-log records made from the real testbed teacher's answers (the oracle backend)."""

from __future__ import annotations

import asyncio
from typing import Any

from distillserve.backends.testbed_teacher import TestbedTeacher
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.teacher_log.record import TeacherLogRecord, TokenLogprob, conversation_key
from distillserve.testbed.tasks import sample


async def _answers(prompts: list[str], top_logprobs: int, reasoning: str) -> list[dict[str, Any]]:
    teacher = TestbedTeacher(reasoning=reasoning)  # type: ignore[arg-type]
    out = []
    for p in prompts:
        req = ChatCompletionRequest.model_validate(
            {
                "model": "teacher",
                "messages": [{"role": "user", "content": p}],
                **({"logprobs": True, "top_logprobs": top_logprobs} if top_logprobs else {}),
            }
        )
        out.append(await teacher.chat(req))
    return out


def teacher_records(
    tasks: list[str], n: int, seed: int, *, top_logprobs: int = 0, reasoning: str = "none"
) -> list[TeacherLogRecord]:
    prompts = [p for p, _ in sample(tasks, n, seed)]
    bodies = asyncio.run(_answers(prompts, top_logprobs, reasoning))
    records = []
    for i, (p, body) in enumerate(zip(prompts, bodies, strict=True)):
        choice = body["choices"][0]
        msg = choice["message"]
        lp = (choice.get("logprobs") or {}).get("content")
        messages = [{"role": "user", "content": p}]
        records.append(
            TeacherLogRecord(
                request_id=f"req-{seed}-{i}",
                key=conversation_key(messages, None, None),
                messages=messages,
                teacher_model="teacher",
                teacher_backend="testbed",
                response_text=msg["content"],
                reasoning_content=msg.get("reasoning_content"),
                finish_reason=choice["finish_reason"],
                usage=body.get("usage") or {},
                logprobs=[
                    TokenLogprob(
                        token=e["token"],
                        logprob=e["logprob"],
                        top=[(t["token"], t["logprob"]) for t in e["top_logprobs"]],
                    )
                    for e in lp
                ]
                if lp
                else None,
            )
        )
    return records
