"""What a key may ask, checked before anything is spent: the model it names, forcing a route, the
``max_tokens`` cap, and which routes (student, teacher) may serve it. The statuses are OpenAI's:
a model the key cannot see is 404 ``model_not_found``, a forbidden action 403, a too-large
``max_tokens`` 400 naming the limit (OpenAI rejects rather than clamps)."""

from __future__ import annotations

from distillserve.protocol.errors import InvalidRequest, ModelNotFound, PermissionDenied
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.serving.keys.keyring import Caller
from distillserve.serving.route_plan import Request, RoutePlan


def check_model(caller: Caller, request: Request) -> None:
    allowed = caller.policy.models
    if allowed and request.model not in allowed:
        # OpenAI's wording: it does not say whether the model exists for other keys.
        raise ModelNotFound(
            f"The model `{request.model}` does not exist or you do not have access to it.", param="model"
        )


def check_forced_route(caller: Caller, forced: str | None, header: str) -> None:
    if forced and forced.strip() and not caller.policy.may_force_route:
        raise PermissionDenied(f"This API key may not choose the route: remove the '{header}' header.")


def capped(caller: Caller, request: Request) -> Request:
    """``request`` with its token limit within the key's cap: one that asks for more is refused,
    one that asks for none gets the cap (so no request of the key runs unbounded)."""
    cap = caller.policy.max_tokens
    if cap is None:
        return request
    fields = (
        ("max_tokens", "max_completion_tokens")
        if isinstance(request, ChatCompletionRequest)
        else ("max_tokens",)
    )
    asked = {f: getattr(request, f) for f in fields if getattr(request, f) is not None}
    for name, value in asked.items():
        if value > cap:
            raise InvalidRequest(
                f"{name} is too large: {value}. This API key allows at most {cap} completion tokens.",
                param=name,
                code="max_tokens_exceeded",
            )
    return request if asked else request.model_copy(update={"max_tokens": cap})


def restrict_routes(caller: Caller, plan: RoutePlan) -> RoutePlan:
    """The plan limited to the key's routes: a planned route the key may not use gives way to its
    fallback when that one is allowed (a student-only key gets the student even for a hard prompt),
    and no fallback or cascade escalation leads to a route outside the key's."""
    allowed = caller.policy.routes
    if plan.route not in allowed:
        if plan.fallback is None or plan.fallback.route not in allowed:
            raise PermissionDenied(f"This API key may not use the {plan.route} route.", param="model")
        plan = plan.fallback
    if plan.fallback is not None and plan.fallback.route not in allowed:
        plan.fallback = None
        plan.strategy = "direct"  # a cascade escalates to the fallback (the teacher)
    return plan
