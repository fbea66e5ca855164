"""The gateway's OpenAPI document describes what goes over the wire: request bodies from the models
the handlers validate with, responses in the shapes OpenAI-compatible providers send (fixtures from
their public API references), the error object on every documented status, SSE for streams.

The live conformance of the gateway to this document is ``test_openapi_fuzz`` (schemathesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel, ValidationError

from distillserve.config import Settings
from distillserve.protocol import schema
from distillserve.protocol.errors import InvalidRequest
from distillserve.protocol.http import parse_request
from distillserve.protocol.responses import (
    ChatCompletion,
    ChatCompletionChunk,
    ErrorResponse,
    ModelList,
    TextCompletion,
)
from distillserve.serving.server import build_app

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "provider_responses.json").read_text())
SHAPES: dict[str, type[BaseModel]] = {
    "chat_completion": ChatCompletion,
    "chat_completion_chunk": ChatCompletionChunk,
    "text_completion": TextCompletion,
    "model_list": ModelList,
    "error": ErrorResponse,
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(
        server={"api_keys": ["k"], "admin_key": "a"},
        student={"kind": "testbed", "name": "student"},
        teacher_log={"enabled": False, "sink": "none"},
    )
    return build_app(settings).openapi()


def _validator(document: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    """A validator for ``components.schemas[name]`` with the document's other schemas in reach."""
    root = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root)


def _operation(document: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    return document["paths"][path][method]


@pytest.mark.parametrize(
    ("path", "model"),
    [("/v1/chat/completions", "ChatCompletionRequest"), ("/v1/completions", "CompletionRequest")],
)
def test_completion_bodies_are_the_validated_models(document: dict, path: str, model: str) -> None:
    op = _operation(document, path)
    media = op["requestBody"]["content"]["application/json"]
    assert op["requestBody"]["required"] is True
    assert media["schema"] == {"$ref": f"#/components/schemas/{model}"}
    validator = _validator(document, model)
    for example in media["examples"].values():
        validator.validate(example["value"])
    properties = document["components"]["schemas"][model]["properties"]
    assert {"model", "max_tokens", "temperature", "stream", "stream_options", "seed", "stop"} <= set(
        properties
    )


def test_the_schema_holds_every_constraint_the_parser_enforces(document: dict) -> None:
    """Each body the parser refuses is refused by the document too, and the other way round."""
    chat = _validator(document, "ChatCompletionRequest")
    text = _validator(document, "CompletionRequest")
    msgs = [{"role": "user", "content": "hi"}]
    cases: list[tuple[jsonschema_rs.Validator, type[BaseModel], dict[str, Any]]] = [
        (chat, schema.ChatCompletionRequest, {"model": "m", "messages": msgs, "n": 2}),
        (chat, schema.ChatCompletionRequest, {"model": "m", "messages": msgs, "stop": ["a"] * 5}),
        (chat, schema.ChatCompletionRequest, {"model": "m", "messages": msgs, "top_logprobs": 2}),
        (chat, schema.ChatCompletionRequest, {"model": "m", "messages": msgs, "temperature": "1"}),
        (chat, schema.ChatCompletionRequest, {"model": "m", "messages": msgs, "stream": 1}),
        (chat, schema.ChatCompletionRequest, {"model": "m", "messages": msgs, "seed": 2**64}),
        (chat, schema.ChatCompletionRequest, {"model": "m", "messages": []}),
        (text, schema.CompletionRequest, {"model": "m", "prompt": ["a", "b"]}),
        (text, schema.CompletionRequest, {"model": "m", "prompt": ""}),
        (text, schema.CompletionRequest, {"model": "m", "prompt": "p", "max_tokens": 0}),
    ]
    for validator, model, body in cases:
        assert not validator.is_valid(body), body
        with pytest.raises(ValidationError):
            model.model_validate(body, strict=True)
    accepted = [
        (
            chat,
            schema.ChatCompletionRequest,
            {"model": "m", "messages": msgs, "top_logprobs": 2, "logprobs": True},
        ),
        (
            chat,
            schema.ChatCompletionRequest,
            {"model": "m", "messages": msgs, "max_tokens": 5.0, "x-extra": 1},
        ),
        (text, schema.CompletionRequest, {"model": "m", "prompt": ["p"], "logprobs": 0, "echo": True}),
    ]
    for validator, model, body in accepted:
        assert validator.is_valid(body), body
        model.model_validate(body, strict=True)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_provider_responses_fit_the_documented_schemas(document: dict, shape: str) -> None:
    validator = _validator(document, SHAPES[shape].__name__)
    for entry in FIXTURES[shape]:
        validator.validate(entry["body"])
        SHAPES[shape].model_validate(entry["body"])


def test_the_gateways_own_bodies_fit_the_documented_schemas(document: dict) -> None:
    lp = {"content": [schema.token_logprob("hi", -0.1, [("hi", -0.1), ("yo", -2.5)])]}
    bodies = {
        "ChatCompletion": schema.chat_completion(
            id="c1",
            model="auto",
            content="x",
            finish_reason="stop",
            prompt_tokens=3,
            completion_tokens=1,
            reasoning_content="r",
            logprobs=lp,
        ),
        "ChatCompletionChunk": schema.chat_chunk(id="c1", model="m", created=1, delta={"content": "x"}),
        "TextCompletion": schema.text_completion(
            id="t1", model="m", text="x", finish_reason="length", prompt_tokens=1, completion_tokens=1
        ),
    }
    bodies_more = [
        ("ChatCompletionChunk", schema.chat_chunk(id="c1", model="m", created=1, usage_=schema.usage(1, 2))),
        ("TextCompletion", schema.text_chunk(id="t1", model="m", created=1, text="x")),
        (
            "TextCompletion",
            schema.text_chunk(id="t1", model="m", created=1, text=None, usage_=schema.usage(1, 2)),
        ),
    ]
    for name, body in [*bodies.items(), *bodies_more]:
        _validator(document, name).validate(json.loads(json.dumps(body)))


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_completions_document_errors_and_the_event_stream(document: dict, path: str) -> None:
    responses = _operation(document, path)["responses"]
    for status in ("400", "401", "403", "404", "413", "429", "502", "503", "504"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }, status
    assert {"Retry-After", "x-ratelimit-remaining-requests"} <= set(responses["429"]["headers"])
    content = responses["200"]["content"]
    assert set(content) == {"application/json", "text/event-stream"}
    event = content["text/event-stream"]["schema"]
    assert event["required"] == ["data"]
    data = event["properties"]["data"]
    assert data["if"] == {"const": "[DONE]"}
    assert data["else"]["contentMediaType"] == "application/json"
    assert _operation(document, path)["security"] == [{"APIKey": []}]


def test_admin_operations_need_the_admin_key_and_answer_openai_errors(document: dict) -> None:
    admin = {p: ops for p, ops in document["paths"].items() if p.startswith("/admin/")}
    assert len([op for ops in admin.values() for op in ops.values()]) == 13
    for ops in admin.values():
        for op in ops.values():
            assert op["security"] == [{"AdminKey": []}]
            for status in ("400", "401", "403", "404", "500"):
                assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
                    "/ErrorResponse"
                )
    activate = _operation(document, "/admin/student/activate")
    assert activate["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ActivateRequest"
    )


def test_nothing_documents_fastapis_422(document: dict) -> None:
    """Validation failures answer OpenAI's 400 (serving.api.errors); a 422 would be untrue."""
    statuses = {s for ops in document["paths"].values() for op in ops.values() for s in op["responses"]}
    assert "422" not in statuses
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("5", True),
        ("5.0", True),  # JSON Schema's integer includes integral floats
        ("6.434406934077298e+16", True),  # an integral float beyond 2**53 (found by schemathesis)
        ("5.5", False),
        ('"5"', False),
        ("-9223372036854775809", False),  # below int64: orjson would read it as the float -2**63
    ],
)
def test_the_parser_reads_integers_as_the_document_does(document: dict, number: str, valid: bool) -> None:
    raw = '{"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": ' + number + "}"
    assert _validator(document, "ChatCompletionRequest").is_valid(json.loads(raw)) is valid
    if valid:
        parse_request(raw.encode(), schema.ChatCompletionRequest)
    else:
        with pytest.raises(InvalidRequest) as caught:
            parse_request(raw.encode(), schema.ChatCompletionRequest)
        assert caught.value.param == "seed"
