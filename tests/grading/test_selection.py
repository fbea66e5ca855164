"""The ``grading`` config section: named graders, rules per request class, the default."""

from __future__ import annotations

import pytest

from distillserve.config import ConfigError, load_settings
from distillserve.config.backends import OpenAIBackendConfig
from distillserve.grading import RequestClass, resolve_grader_name, task_of
from distillserve.grading.factory import build_selection, teacher_endpoint
from distillserve.grading.json_answer import JsonGrader
from distillserve.grading.judge_grader import JudgeGrader
from distillserve.monitoring.agreement import configured_scorer
from distillserve.monitoring.graders import configured_graders

GRADING = {
    "default": "normalized",
    "graders": {"gsm": {"kind": "final_answer"}, "extraction": {"kind": "json", "keys": ["name"]}},
    "rules": [
        {"task": "math", "grader": "gsm"},
        {"prompt_regex": "(?i)answer in json", "grader": "extraction"},
        {"api_key": "sk-team-mc", "grader": "final_answer"},
    ],
}


def test_the_default_is_exact_answer_text() -> None:
    s = load_settings()
    assert s.grading.default == "exact" and s.grading.rules == []
    assert configured_graders(s).for_request(RequestClass("anything", "math")).name == "exact"


def test_rules_resolve_in_order_then_the_default() -> None:
    cfg = load_settings(grading=GRADING).grading
    assert resolve_grader_name(cfg, RequestClass("2+2?", task="math")) == "gsm"
    assert resolve_grader_name(cfg, RequestClass("Please ANSWER IN JSON: name?")) == "extraction"
    assert resolve_grader_name(cfg, RequestClass("Pick one", api_key="sk-team-mc")) == "final_answer"
    assert resolve_grader_name(cfg, RequestClass("Answer in JSON", task="math")) == "gsm"  # first rule wins
    assert resolve_grader_name(cfg, RequestClass("hello", task="chat", api_key="sk-other")) == "normalized"
    sel = build_selection(cfg)
    assert isinstance(sel.graders["extraction"], JsonGrader) and sel.graders["extraction"].keys == ["name"]
    assert set(sel.graders) == {"normalized", "gsm", "extraction", "final_answer"}  # only those named


def test_task_comes_from_request_metadata() -> None:
    assert task_of({"task": "math", "user_tier": "pro"}) == "math"
    assert task_of({"task": 3}) is None and task_of(None) is None and task_of("math") is None


def test_config_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="unknown grader 'bleu'"):
        load_settings(grading={"default": "bleu"})
    with pytest.raises(ConfigError, match="exactly one of task, prompt_regex, api_key"):
        load_settings(grading={"rules": [{"task": "math", "prompt_regex": "x", "grader": "exact"}]})
    with pytest.raises(ConfigError, match="does not compile"):
        load_settings(grading={"rules": [{"prompt_regex": "(", "grader": "exact"}]})
    with pytest.raises(ConfigError, match="kind"):
        load_settings(grading={"graders": {"x": {"kind": "rouge"}}})


def test_the_judge_defaults_to_the_teacher() -> None:
    teacher = {"kind": "openai", "name": "teacher", "url": "http://127.0.0.1:9/v1", "upstream_model": "r1"}
    s = load_settings(teacher=teacher, grading={"default": "judge"})
    judge = configured_graders(s).default
    assert isinstance(judge, JudgeGrader)
    assert (judge.endpoint.url, judge.endpoint.model) == ("http://127.0.0.1:9/v1", "r1")
    own = load_settings(
        teacher=teacher,
        grading={"graders": {"j": {"kind": "judge", "url": "http://x/v1", "model": "m"}}, "default": "j"},
    )
    assert configured_graders(own).default.endpoint.model == "m"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="judge grader needs"):
        configured_graders(load_settings(grading={"default": "judge"}))  # the testbed teacher has no URL
    key = OpenAIBackendConfig(name="t", url="http://h/v1", api_key="sk-1")
    assert teacher_endpoint(key).api_key == "sk-1"  # type: ignore[union-attr]


def test_shadow_agreement_follows_grading_or_the_pinned_grader() -> None:
    s = load_settings(grading=GRADING)
    assert configured_scorer(s).graders.for_request(RequestClass("x", "math")).name == "final_answer"
    pinned = load_settings(grading=GRADING, monitoring={"agreement": "gsm"})
    sc = configured_scorer(pinned)
    assert sc.name == "gsm" and sc.graders.for_request(RequestClass("x", "chat")).name == "final_answer"
    with pytest.raises(ValueError, match="unknown grader"):
        configured_scorer(load_settings(monitoring={"agreement": "nope"}))
