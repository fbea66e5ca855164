"""Which grader judges a request: the first matching ``grading.rules`` entry, else the default.

A request's class is what the rules can see of it: the prompt, the task tag of its ``metadata``
(OpenAI's request field: ``metadata: {"task": "math"}``) and, where the caller knows it, the API
key it came with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from distillserve.config.grading import GradingConfig, GradingRule
from distillserve.grading.grade import Grader

TASK_KEY = "task"


@dataclass(frozen=True)
class RequestClass:
    prompt: str = ""
    task: str | None = None
    api_key: str | None = None


def task_of(metadata: Any) -> str | None:
    """The task tag of a request's ``metadata`` (a mapping of strings), if it has one."""
    if isinstance(metadata, Mapping):
        task = metadata.get(TASK_KEY)
        if isinstance(task, str) and task:
            return task
    return None


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def rule_matches(rule: GradingRule, rc: RequestClass) -> bool:
    if rule.task is not None:
        return rc.task == rule.task
    if rule.prompt_regex is not None:
        return _compiled(rule.prompt_regex).search(rc.prompt) is not None
    return rule.api_key is not None and rc.api_key == rule.api_key.get_secret_value()


def resolve_grader_name(cfg: GradingConfig, rc: RequestClass) -> str:
    for rule in cfg.rules:
        if rule_matches(rule, rc):
            return rule.grader
    return cfg.default


class GraderSelection:
    """The configured graders by name, and the one for each request class."""

    def __init__(self, cfg: GradingConfig, graders: Mapping[str, Grader]) -> None:
        missing = {cfg.default, *(r.grader for r in cfg.rules)} - set(graders)
        if missing:
            raise ValueError(f"graders named in the config but not built: {sorted(missing)}")
        self.cfg = cfg
        self.graders = dict(graders)

    @classmethod
    def only(cls, grader: Grader) -> GraderSelection:
        """A selection that uses ``grader`` (named by its kind) for every request."""
        return cls(GradingConfig(default=grader.name), {grader.name: grader})

    @property
    def default(self) -> Grader:
        return self.graders[self.cfg.default]

    def for_request(self, rc: RequestClass) -> Grader:
        return self.graders[resolve_grader_name(self.cfg, rc)]

    def warm_up(self) -> None:
        for g in self.graders.values():
            g.warm_up()
