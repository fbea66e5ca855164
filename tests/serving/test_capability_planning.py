"""How the gateway plans a request that needs tools, a response format or images, fast and
without servers. The backends are the scripted fakes of ``tests/support/scripted_backend.py``
(planning never calls them); ``test_capabilities.py`` runs the same paths over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from distillserve.config import RouterConfig, Settings
from distillserve.protocol.features import UnsupportedFeature
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.router import Router
from distillserve.serving.gateway import Gateway
from tests.support.metrics import sample
from tests.support.scripted_backend import ScriptedBackend

TOOLS = [{"type": "function", "function": {"name": "f"}}]


def gateway(student_supports: set[str], teacher_supports: set[str], scorer: str = "heuristic") -> Gateway:
    student, teacher = ScriptedBackend("student"), ScriptedBackend("teacher")
    student.supports, teacher.supports = frozenset(student_supports), frozenset(teacher_supports)
    return Gateway(Settings(), student, teacher, Router(RouterConfig(scorer=scorer)))


def req(model: str = "auto", **kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "copy: hi"}], **kw}
    )


@pytest.mark.parametrize("scorer", ["heuristic", "cascade"])
async def test_what_the_student_cannot_serve_goes_to_the_teacher_without_a_way_back(
    scorer: str, fresh_metrics: CollectorRegistry
) -> None:
    gw = gateway(set(), {"tools", "json_schema", "vision"}, scorer)
    plan = await gw.plan(req(tools=TOOLS, response_format={"type": "json_object"}), forced=None, api_key=None)
    assert (plan.route, plan.decision.reason, plan.strategy) == ("teacher", "capability", "direct")
    assert plan.fallback is None  # failing over to the student would drop the tools
    assert plan.teacher_origin().route == "capability"  # what the teacher log says
    for feature in ("tools", "json_schema"):
        assert (
            sample(
                fresh_metrics,
                "distillserve_unsupported_feature_requests_total",
                feature=feature,
                outcome="teacher",
            )
            == 1
        )
    assert (
        sample(fresh_metrics, "distillserve_route_decisions_total", route="teacher", reason="capability") == 1
    )


async def test_a_student_that_serves_it_keeps_it(fresh_metrics: CollectorRegistry) -> None:
    gw = gateway({"tools"}, {"tools"})
    plan = await gw.plan(req(tools=TOOLS), forced=None, api_key=None)
    assert plan.route == "student" and plan.decision.reason == "score" and plan.fallback is not None


async def test_no_backend_that_serves_it_is_a_400(fresh_metrics: CollectorRegistry) -> None:
    gw = gateway(set(), set())  # the all-local default: embedded student, testbed teacher
    with pytest.raises(UnsupportedFeature) as err:
        await gw.plan(req(response_format={"type": "json_object"}), forced=None, api_key=None)
    assert err.value.param == "response_format" and "'teacher'" in err.value.message
    assert (
        sample(
            fresh_metrics,
            "distillserve_unsupported_feature_requests_total",
            feature="json_schema",
            outcome="refused",
        )
        == 1
    )
    assert (
        sample(
            fresh_metrics,
            "distillserve_unsupported_feature_requests_total",
            feature="json_schema",
            outcome="teacher",
        )
        == 0
    )


@pytest.mark.parametrize(("model", "forced"), [("auto", "student"), ("student", None)])
async def test_forced_or_pinned_to_a_student_that_cannot_serve_it_is_a_400(
    model: str, forced: str | None
) -> None:
    gw = gateway(set(), {"tools"})
    with pytest.raises(UnsupportedFeature) as err:
        await gw.plan(req(model, tools=TOOLS), forced=forced, api_key=None)
    assert err.value.status_code == 400 and err.value.param == "tools" and "'student'" in err.value.message
