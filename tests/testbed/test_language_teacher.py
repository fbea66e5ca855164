"""The testbed teacher answers the natural-language tasks in DeepSeek-R1's form, served as its
own OpenAI server (``distillserve testbed-teacher``) and read with the official ``openai`` SDK:
the step-by-step trace inline (``<think>…</think>``) or in ``reasoning_content``, then an
answer its grader accepts."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from distillserve.grading.final_answer import FinalAnswerGrader
from distillserve.grading.json_answer import JsonGrader
from distillserve.protocol.reasoning import split_think
from distillserve.testbed import language
from tests.support.servers import start_testbed_teacher

ITEMS = language.sample(list(language.FAMILIES), 12, seed=3)
GRADERS = {"final_answer": FinalAnswerGrader(), "json": JsonGrader()}


def _ask(url: str, prompt: str) -> openai.types.chat.ChatCompletionMessage:
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    r = client.chat.completions.create(model="teacher", messages=[{"role": "user", "content": prompt}])
    return r.choices[0].message


def test_think_tags_lead_the_content_as_r1_writes_them(tmp_path: Path) -> None:
    with start_testbed_teacher(tmp_path, "--reasoning", "think_tags") as teacher:
        for item in ITEMS:
            content = _ask(teacher.url, item.prompt).content or ""
            assert content.startswith("<think>\n") and "\n</think>\n\n" in content
            trace, answer = split_think(content)
            assert answer == item.answer and trace and len(trace.strip().splitlines()) >= 1
            assert GRADERS[item.grader].grade(item.prompt, item.answer, content).verdict


def test_reasoning_content_comes_in_its_own_field(tmp_path: Path) -> None:
    with start_testbed_teacher(tmp_path, "--reasoning", "reasoning_content") as teacher:
        for item in ITEMS:
            message = _ask(teacher.url, item.prompt)
            assert message.content == item.answer
            reasoning = (message.model_extra or {}).get("reasoning_content")
            assert reasoning and "<think>" not in reasoning


@pytest.mark.parametrize("item", ITEMS[:4], ids=lambda i: i.task)
def test_without_reasoning_the_answer_comes_alone(tmp_path: Path, item: language.LanguageItem) -> None:
    with start_testbed_teacher(tmp_path) as teacher:
        assert _ask(teacher.url, item.prompt).content == item.answer
