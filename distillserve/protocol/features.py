"""Refusing what a backend cannot serve: one error that names each missing feature.

A backend that would otherwise drop part of a request (``tools`` on an engine without a tool
parser, an image on a text-only model) refuses it with a 400 instead of a silent 200.
"""

from __future__ import annotations

from collections.abc import Collection

from distillserve.protocol.errors import InvalidRequest
from distillserve.protocol.schema import FEATURES, ChatCompletionRequest, CompletionRequest, Feature

#: The request field a client changes to drop the feature.
PARAM_OF: dict[Feature, str] = {"tools": "tools", "json_schema": "response_format", "vision": "messages"}
DESCRIPTION: dict[Feature, str] = {
    "tools": "tool calling (tools, tool_choice, assistant tool_calls, tool turns)",
    "json_schema": "structured output (response_format json_object or json_schema)",
    "vision": "image content parts (image_url)",
}


class UnsupportedFeature(InvalidRequest):
    code = "unsupported_feature"


def required_features(request: ChatCompletionRequest | CompletionRequest) -> frozenset[Feature]:
    """A text completion needs none: its prompt is one string."""
    return request.required_features() if isinstance(request, ChatCompletionRequest) else frozenset()


def missing_features(
    request: ChatCompletionRequest | CompletionRequest, supports: Collection[str]
) -> tuple[Feature, ...]:
    """The features ``request`` needs that ``supports`` lacks, in a fixed order."""
    needs = required_features(request)
    return tuple(f for f in FEATURES if f in needs and f not in supports)


def unsupported(missing: Collection[Feature], model: str) -> UnsupportedFeature:
    ordered = [f for f in FEATURES if f in missing]
    what = "; ".join(DESCRIPTION[f] for f in ordered)
    return UnsupportedFeature(
        f"The model '{model}' cannot serve {what}. Send the request to a model that does; with "
        f"model 'auto' the gateway routes it to one when one is configured.",
        param=PARAM_OF[ordered[0]],
    )


def refuse_unsupported(
    request: ChatCompletionRequest | CompletionRequest, supports: Collection[str], model: str
) -> None:
    """Raise ``UnsupportedFeature`` when ``request`` needs a feature ``supports`` lacks."""
    missing = missing_features(request, supports)
    if missing:
        raise unsupported(missing, model)
