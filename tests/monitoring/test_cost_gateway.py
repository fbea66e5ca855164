"""Cost and savings through the real gateway (``distillserve serve``), driven by the official
``openai`` SDK, against hand-computed dollars for a known workload.

Gateway A: the embedded testbed student and the testbed teacher as an OpenAI-compatible upstream
process, a price table of round numbers, shadow sampling on every student answer, two tenants and a
key with a money budget. Every expected dollar is the token counts the SDK read from the answers
(or, for a shadow, the teacher's own answer to the same conversation) times the configured prices.

Gateway B: a teacher that replays DeepSeek's recorded answers (tests/fixtures/providers), whose usage
carries ``prompt_tokens_details.cached_tokens`` / ``prompt_cache_hit_tokens``, at the shipped
default price of ``deepseek-reasoner``: cached prompt tokens are priced at the cached rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from distillserve.config.pricing import default_prices
from distillserve.serving.keys.keyring import hash_key
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.fixture_teacher import fixture_teacher
from tests.support.servers import Server, start_gateway, start_testbed_teacher

ACME, BETA, TINY = "sk-cost-acme", "sk-cost-beta", "sk-cost-tiny"
TEACHER_IN, TEACHER_OUT = 3.0, 12.0  # $ per 1M tokens
STUDENT_IN, STUDENT_OUT = 0.2, 0.4
TINY_BUDGET_USD = 0.00005  # less than any one teacher answer here costs
PRICING = {
    "models": {
        "teacher-llm": {
            "input_per_million": TEACHER_IN,
            "cached_input_per_million": 0.3,
            "output_per_million": TEACHER_OUT,
        },
        "student-gpu": {"input_per_million": STUDENT_IN, "output_per_million": STUDENT_OUT},
    },
    "teacher_model": "teacher-llm",
    "student_model": "student-gpu",
}
KEYS = [
    {
        "sha256": hash_key(ACME),
        "tenant": "acme",
        "alias": "acme-prod",
        "budget": {"limit": 10.0, "unit": "usd", "period": "day"},
    },
    {"sha256": hash_key(BETA), "tenant": "beta"},
    {
        "sha256": hash_key(TINY),
        "tenant": "tiny",
        "budget": {"limit": TINY_BUDGET_USD, "unit": "usd", "period": "day"},
    },
]


def usd(
    prompt: int, completion: int, rate_in: float, rate_out: float, cached: int = 0, rate_cached: float = 0.0
) -> float:
    return ((prompt - cached) * rate_in + cached * rate_cached + completion * rate_out) / 1_000_000


def scrape(gw: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(gw.url.removesuffix("/v1") + "/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(gw: Server, name: str, expected: float, timeout: float = 60.0, **labels: str) -> dict:
    """The scrape once ``name{labels}`` reached ``expected`` (shadows and stream settling run after
    the answer); the last scrape when the time is up, for the assertion to show."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(gw)
        if value(samples, name, **labels) >= expected - 1e-15 or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cost")


@pytest.fixture(scope="module")
def teacher(tmp: Path) -> Iterator[Server]:
    with start_testbed_teacher(tmp) as t:
        yield t


@pytest.fixture(scope="module")
def gateway(tmp: Path, teacher: Server) -> Iterator[Server]:
    student = ensure_testbed_student()
    config = {
        "student": {"kind": "embedded", "name": "student", "model_path": str(student)},
        "teacher": {"kind": "openai", "name": "teacher", "url": teacher.url, "timeout_s": 10},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
        "monitoring": {"shadow_rate": 1.0},
        "keys": {"entries": KEYS},
        "pricing": PRICING,
    }
    with start_gateway(tmp, config, ready_path="/readyz") as g:
        yield g


def chat(gw: Server, key: str, model: str, content: str, *, stream: bool = False):
    """One answer and its usage, as the SDK read them; headers say which route answered."""
    client = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": content}]
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=24)
        return raw.headers["x-distillserve-route"], raw.parse().usage
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=24, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    return raw.headers["x-distillserve-route"], chunks[-1].usage


def teacher_usage(teacher: Server, content: str):
    """The teacher's own answer to a conversation: what a shadow comparison of it costs."""
    client = openai.OpenAI(base_url=teacher.url, api_key="none", max_retries=0)
    body = client.chat.completions.create(
        model="teacher", messages=[{"role": "user", "content": content}], max_tokens=24
    )
    return body.usage


def test_spend_savings_and_money_budget_match_hand_computed_dollars(gateway: Server, teacher: Server) -> None:
    workload = [
        (ACME, "teacher", "reverse: lantern", False),
        (ACME, "teacher", "upper: meadow", False),
        (ACME, "student", "copy: pillow", False),
        (BETA, "student", "upper: garden", True),
        (BETA, "teacher", "copy: harbor", True),
    ]
    spend: dict[tuple[str, str], float] = {}
    savings: dict[str, float] = {}
    shadow: dict[str, float] = {}
    acme_budget_micros = 0
    for key, model, content, stream in workload:
        route, use = chat(gateway, key, model, content, stream=stream)
        assert route == model and use is not None and use.prompt_tokens > 0 and use.completion_tokens > 0
        tenant = "acme" if key == ACME else "beta"
        rates = (TEACHER_IN, TEACHER_OUT) if route == "teacher" else (STUDENT_IN, STUDENT_OUT)
        cost = usd(use.prompt_tokens, use.completion_tokens, *rates)
        spend[(route, tenant)] = spend.get((route, tenant), 0.0) + cost
        if key == ACME:
            acme_budget_micros += math.ceil(round(cost * 1e6, 3))
        if route == "student":
            savings[tenant] = savings.get(tenant, 0.0) + usd(
                use.prompt_tokens, use.completion_tokens, TEACHER_IN, TEACHER_OUT
            )
            t = teacher_usage(teacher, content)
            shadow[tenant] = usd(t.prompt_tokens, t.completion_tokens, TEACHER_IN, TEACHER_OUT)

    samples = wait_for(
        gateway,
        "distillserve_spend_usd_total",
        shadow["beta"],
        route="teacher",
        tenant="beta",
        purpose="shadow",
    )
    samples = wait_for(
        gateway,
        "distillserve_key_budget_charged_total",
        acme_budget_micros / 1e6,
        tenant="acme",
        key_alias="acme-prod",
        unit="usd",
    )
    for (route, tenant), expected in spend.items():
        got = value(samples, "distillserve_spend_usd_total", route=route, tenant=tenant, purpose="serve")
        assert got == pytest.approx(expected, rel=1e-9), (route, tenant)
    for tenant, expected in savings.items():
        assert value(samples, "distillserve_savings_usd_total", tenant=tenant) == pytest.approx(
            expected, rel=1e-9
        )
    for tenant, expected in shadow.items():  # the teacher call a shadow made, charged to the request's tenant
        got = value(samples, "distillserve_spend_usd_total", route="teacher", tenant=tenant, purpose="shadow")
        assert got == pytest.approx(expected, rel=1e-9), tenant
    # the money budget: charged in whole micro-dollars, rounded up per request; limit and period published
    assert value(
        samples, "distillserve_key_budget_charged_total", tenant="acme", key_alias="acme-prod", unit="usd"
    ) == pytest.approx(acme_budget_micros / 1e6, rel=1e-12)
    assert (
        value(samples, "distillserve_key_budget_limit", tenant="acme", key_alias="acme-prod", unit="usd")
        == 10.0
    )
    assert (
        value(
            samples,
            "distillserve_key_budget_period_seconds",
            tenant="acme",
            key_alias="acme-prod",
            unit="usd",
        )
        == 86400
    )
    assert value(samples, "distillserve_unpriced_tokens_total", route="teacher", purpose="serve") == 0


def test_a_spent_money_budget_answers_insufficient_quota(gateway: Server) -> None:
    route, use = chat(gateway, TINY, "teacher", "reverse: candle")
    assert (
        route == "teacher"
        and usd(use.prompt_tokens, use.completion_tokens, TEACHER_IN, TEACHER_OUT) > TINY_BUDGET_USD
    )
    client = openai.OpenAI(base_url=gateway.url, api_key=TINY, max_retries=0)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="student", messages=[{"role": "user", "content": "copy: cup"}])
    assert refused.value.code == "insufficient_quota"
    assert "$0.00005" in refused.value.message and refused.value.response.headers["x-should-retry"] == "false"


def test_cached_prompt_tokens_are_priced_at_the_cached_rate(tmp: Path) -> None:
    """DeepSeek's recorded answers: 192 of 237 prompt tokens from its context cache (blocking), and a
    reasoner stream with none; the shipped deepseek-reasoner price."""
    price = default_prices()["deepseek-reasoner"]
    with fixture_teacher() as upstream:
        config = {
            "student": {"kind": "testbed", "name": "student"},
            "teacher": {
                "kind": "openai",
                "name": "teacher",
                "url": upstream.url,
                "upstream_model": "deepseek-reasoner",
                "timeout_s": 10,
            },
            "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log-b")},
        }
        with start_gateway(tmp, config) as gw:
            client = openai.OpenAI(base_url=gw.url, api_key="none", max_retries=0)
            blocking = client.chat.completions.create(
                model="teacher", messages=[{"role": "user", "content": "deepseek/chat-tools-blocking.json"}]
            )
            streamed = list(
                client.chat.completions.create(
                    model="teacher",
                    messages=[{"role": "user", "content": "deepseek/reasoner-stream.sse"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            samples = scrape(gw)
    assert blocking.usage is not None and blocking.usage.prompt_tokens_details.cached_tokens == 192
    assert streamed[-1].usage is not None and streamed[-1].usage.prompt_tokens == 21
    # by hand: (45 x 0.56 + 192 x 0.07 + 20 x 1.68) / 1e6 and (21 x 0.56 + 40 x 1.68) / 1e6
    expected = (45 * 0.56 + 192 * 0.07 + 20 * 1.68 + 21 * 0.56 + 40 * 1.68) / 1e6
    assert (price.input_per_million, price.cached_input_per_million, price.output_per_million) == (
        0.56,
        0.07,
        1.68,
    )
    assert value(
        samples, "distillserve_spend_usd_total", route="teacher", tenant="", purpose="serve"
    ) == pytest.approx(expected, rel=1e-9)
