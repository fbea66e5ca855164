"""Records the text-only distiller cannot learn from are skipped and counted by reason, never
trained on half (a tool call's empty text, a conversation with its tool turns or images dropped)."""

from __future__ import annotations

from distillserve.distiller.examples import build_examples
from tests.support.teacher_records import teacher_records

TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}


def test_tool_calls_tool_turns_and_images_are_skipped_and_counted() -> None:
    good = teacher_records(["reverse"], 4, seed=5)
    user = good[0].messages[-1]
    tool_call = good[0].model_copy(
        update={"response_text": "", "finish_reason": "tool_calls", "request_id": "a"}
    )
    tool_turns = good[1].model_copy(
        update={
            "messages": [
                user,
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
                {"role": "user", "content": "and tomorrow?"},
            ]
        }
    )
    image = good[2].model_copy(
        update={
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                    ],
                }
            ]
        }
    )
    examples, report = build_examples([*good, tool_call, tool_turns, image], learn_reasoning=False)
    assert report.kept == len(examples) == 4
    dropped = report.as_dict()["dropped"]
    assert (dropped["tool_call"], dropped["tools"], dropped["vision"], dropped["malformed"]) == (1, 1, 1, 0)
