"""Pricing in one process: token counts read from the providers' recorded usage objects
(tests/fixtures/providers), dollars against hand-computed values, the money meter of a key's
budget, and the two LLM calls distillserve makes outside client requests: the judge (asking the
testbed teacher over HTTP) and the router's relabel (asking the embedded testbed student).
The gateway-level accounting (serve, shadow, savings, a budget over HTTP) is in
``test_cost_gateway.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from distillserve.backends.factory import build_backend
from distillserve.config import BudgetConfig, EmbeddedBackendConfig, KeyEntry, PricingConfig
from distillserve.grading.judge import JudgeEndpoint, judge_messages
from distillserve.grading.judge_grader import JudgeGrader
from distillserve.monitoring.cost import CostLedger, TokenUse
from distillserve.monitoring.graders import PrometheusJudgeMeter
from distillserve.router.retraining import TeacherAnswer, relabel
from distillserve.router.student_answers import ask
from distillserve.serving.keys.budget import ServedTokens, UsdMeter, budget_meters
from distillserve.serving.keys.keyring import KeyRing, hash_key
from distillserve.serving.keys.limiter import KeyLimiter
from distillserve.serving.keys.refusals import QuotaExhausted
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.fixture_teacher import FIXTURES
from tests.support.metrics import sample
from tests.support.servers import Server, start_testbed_teacher

PRICES = {
    "teacher-llm": {"input_per_million": 3.0, "cached_input_per_million": 0.3, "output_per_million": 12.0},
    "student-gpu": {"input_per_million": 0.2, "output_per_million": 0.4},
}


def ledger(**pricing: object) -> CostLedger:
    return CostLedger(PricingConfig(models=PRICES, **pricing), teacher_model="teacher-llm")  # type: ignore[arg-type]


def usage_of(fixture: str) -> dict:
    data = (FIXTURES / fixture).read_bytes()
    if fixture.endswith(".sse"):  # the stream's usage rides on its last data event
        events = [line[6:] for line in data.splitlines() if line.startswith(b"data: {")]
        return orjson.loads(events[-1])["usage"]
    return orjson.loads(data)["usage"]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("deepseek/chat-tools-blocking.json", TokenUse(237, 192, 20)),  # prompt_cache_hit_tokens
        ("deepseek/reasoner-stream.sse", TokenUse(21, 0, 40)),  # reasoning tokens are output
        ("openai/chat-blocking.json", TokenUse(19, 0, 10)),  # prompt_tokens_details.cached_tokens: 0
        ("vllm/chat-blocking.json", TokenUse(27, 0, 8)),  # "prompt_tokens_details": null
        ("faults/invalid-usage.json", TokenUse(0, 0, 8)),  # a negative count never prices as a refund
    ],
)
def test_token_counts_from_each_providers_usage(fixture: str, expected: TokenUse) -> None:
    assert TokenUse.from_usage(usage_of(fixture)) == expected


def test_openai_cached_tokens_count_as_cached() -> None:
    usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1920},
    }
    assert TokenUse.from_usage(usage) == TokenUse(2006, 1920, 300)
    assert TokenUse.from_usage(None) is None and TokenUse.from_usage({"prompt_tokens": 0}) is None


def test_prices_by_hand() -> None:
    teacher = ledger().route_price("teacher")
    assert teacher is not None
    # 45 uncached x $3 + 192 cached x $0.30 + 20 out x $12, per million
    assert teacher.cost_usd(237, 192, 20) == pytest.approx(
        (45 * 3.0 + 192 * 0.3 + 20 * 12.0) / 1e6, rel=1e-12
    )
    no_cache_price = ledger(student_model="student-gpu").route_price("student")
    assert no_cache_price is not None  # no cached rate configured: cached tokens pay the input rate
    assert no_cache_price.cost_usd(100, 60, 10) == pytest.approx((100 * 0.2 + 10 * 0.4) / 1e6, rel=1e-12)


def test_a_free_student_still_counts_its_savings(fresh_metrics: CollectorRegistry) -> None:
    book = ledger()  # no student_model: the student costs nothing per token
    assert book.spend("student", "serve", {"prompt_tokens": 100, "completion_tokens": 50}, "acme") == 0.0
    assert (
        sample(fresh_metrics, "distillserve_spend_usd_total", route="student", tenant="acme", purpose="serve")
        == 0
    )
    # what the teacher would have charged: no cache discount (its cache never saw the request)
    assert sample(fresh_metrics, "distillserve_savings_usd_total", tenant="acme") == pytest.approx(
        (100 * 3.0 + 50 * 12.0) / 1e6, rel=1e-12
    )


def test_an_unpriced_teacher_is_counted_not_lost(fresh_metrics: CollectorRegistry) -> None:
    book = CostLedger(PricingConfig(models=PRICES), teacher_model="some-unlisted-model")  # type: ignore[arg-type]
    book.spend("teacher", "serve", {"prompt_tokens": 30, "completion_tokens": 12}, "acme")
    book.spend("student", "serve", {"prompt_tokens": 5, "completion_tokens": 5}, "acme")
    assert sample(fresh_metrics, "distillserve_unpriced_tokens_total", route="teacher", purpose="serve") == 42
    assert (
        sample(fresh_metrics, "distillserve_spend_usd_total", route="teacher", tenant="acme", purpose="serve")
        == 0
    )
    assert sample(fresh_metrics, "distillserve_savings_usd_total", tenant="acme") == 0  # no teacher price


def test_the_money_meter_charges_whole_micro_dollars_rounded_up() -> None:
    meter = UsdMeter(ledger())
    # (7 x 3 + 3 x 12) / 1e6 = $0.000057 exactly: 57 micro-dollars, float noise not rounded up
    assert meter.charge(ServedTokens(7, 3, route="teacher")) == 57
    assert meter.charge(ServedTokens(1, 0, route="teacher")) == 3
    assert (
        meter.charge(ServedTokens(237, 20, route="teacher", cached_prompt_tokens=192)) == 433
    )  # 135 + 57.6 + 240 = 432.6, up
    assert meter.charge(ServedTokens(0, 0, route="teacher")) == 0
    assert meter.charge(ServedTokens(10, 10, route=None)) == 0  # nothing was served
    assert meter.charge(ServedTokens(10, 10, route="student")) == 0  # a free student
    assert meter.in_unit(433) == pytest.approx(0.000433)


def test_budget_config_counts_dollars_in_micro_dollars() -> None:
    assert BudgetConfig(limit=25.0, unit="usd").counted_limit == 25_000_000
    assert BudgetConfig(limit=500).counted_limit == 500
    with pytest.raises(ValidationError, match="whole number"):
        BudgetConfig(limit=2.5, unit="tokens")


async def test_a_usd_budget_is_charged_then_refused(fresh_metrics: CollectorRegistry) -> None:
    limiter = KeyLimiter("memory://", budget_meters(ledger()))
    entry = KeyEntry(
        sha256=hash_key("sk-usd"), tenant="acme", budget={"limit": 0.0001, "unit": "usd", "period": "hour"}
    )  # type: ignore[arg-type]
    who = KeyRing([entry]).lookup("sk-usd")
    assert who is not None
    first = await limiter.admit(who, 10)
    await first.settle(ServedTokens(7, 3, route="teacher"))  # 57 of 100 micro-dollars
    second = await limiter.admit(who, 10)  # 43 left: let through
    await second.settle(ServedTokens(7, 3, route="teacher"))  # 114: over
    with pytest.raises(QuotaExhausted) as refused:
        await limiter.admit(who, 10)
    assert "$0.0001 is spent" in refused.value.message
    key = hash_key("sk-usd")[:16]
    charged = sample(
        fresh_metrics, "distillserve_key_budget_charged_total", tenant="acme", key_alias=key, unit="usd"
    )
    assert charged == pytest.approx(114e-6, rel=1e-12)


# --- the LLM calls distillserve makes itself ------------------------------------------------------
@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_testbed_teacher(tmp_path_factory.mktemp("cost-judge")) as t:
        yield t


async def test_judge_calls_are_priced_by_the_judges_model(
    teacher: Server, fresh_metrics: CollectorRegistry
) -> None:
    """The testbed teacher as the judge endpoint; its answers do not parse as verdicts, which costs
    the same. Expected: the teacher's own usage for the two judge prompts, asked directly."""
    prices = {**PRICES, "teacher": PRICES["teacher-llm"]}  # the testbed teacher's model name
    book = CostLedger(PricingConfig(models=prices), teacher_model="teacher")  # type: ignore[arg-type]
    judge = JudgeGrader(
        JudgeEndpoint(teacher.url, "teacher"), meter=PrometheusJudgeMeter(book), max_tokens=16
    )
    await judge.agrade("copy: lamp", "lamp", "lamp!")
    direct = openai.OpenAI(base_url=teacher.url, api_key="none", max_retries=0)
    expected = 0.0
    for first, second in (("lamp", "lamp!"), ("lamp!", "lamp")):
        u = direct.chat.completions.create(
            model="teacher",
            messages=judge_messages("copy: lamp", first, second),
            temperature=0.0,
            max_tokens=16,
        ).usage
        assert u is not None
        expected += (u.prompt_tokens * 3.0 + u.completion_tokens * 12.0) / 1e6
    got = sample(fresh_metrics, "distillserve_spend_usd_total", route="teacher", tenant="", purpose="judge")
    assert expected > 0 and got == pytest.approx(expected, rel=1e-9)


async def test_relabel_calls_are_priced_at_the_students_price(
    tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    student = build_backend(
        EmbeddedBackendConfig(name="student", model_path=str(ensure_testbed_student()), threads=1)
    )
    await student.start()
    book = ledger(student_model="student-gpu")
    conversations = [
        [{"role": "user", "content": "copy: pillow"}],
        [{"role": "user", "content": "upper: cat"}],
    ]
    try:
        await relabel(
            student,
            [TeacherAnswer(m, "x") for m in conversations],
            on_usage=lambda usage: book.spend("student", "relabel", usage),
        )
        expected = 0.0
        for messages in conversations:  # greedy: the same answer, the same tokens
            seen: list[dict] = []
            await ask(student, messages, on_usage=lambda u, seen=seen: seen.append(u or {}))
            expected += (seen[0]["prompt_tokens"] * 0.2 + seen[0]["completion_tokens"] * 0.4) / 1e6
    finally:
        await student.aclose()
    got = sample(fresh_metrics, "distillserve_spend_usd_total", route="student", tenant="", purpose="relabel")
    assert expected > 0 and got == pytest.approx(expected, rel=1e-9)
    assert sample(fresh_metrics, "distillserve_savings_usd_total", tenant="") == 0  # not a served request


def test_savings_price_the_teachers_measured_length_once_shadows_measured_it(
    fresh_metrics: CollectorRegistry,
) -> None:
    """A reasoning teacher bills its trace: DeepSeek's deepseek-reasoner stream fixture counts 40
    completion tokens (reasoning included) where a student answers in 5. Savings price the
    teacher's mean shadow completion once 8 shadow answers exist; before, the student's count."""
    book = ledger()
    reasoner = usage_of("deepseek/reasoner-stream.sse")
    student = {"prompt_tokens": 21, "completion_tokens": 5}
    book.spend("student", "serve", student, "acme")
    first = (21 * 3.0 + 5 * 12.0) / 1e6  # no shadow answer yet: the student's own length
    assert sample(fresh_metrics, "distillserve_savings_usd_total", tenant="acme") == pytest.approx(first)
    for _ in range(7):
        book.spend("teacher", "shadow", reasoner, "acme")
    assert book.teacher_completion_tokens(5) == 5  # 7 samples: not yet enough to trust
    book.spend("teacher", "shadow", {**reasoner, "completion_tokens": 80}, "acme")
    assert book.teacher_completion_tokens(5) == pytest.approx((7 * 40 + 80) / 8)
    book.spend("student", "serve", student, "acme")
    second = (21 * 3.0 + 45 * 12.0) / 1e6
    assert sample(fresh_metrics, "distillserve_savings_usd_total", tenant="acme") == pytest.approx(
        first + second
    )
    # the shadow calls themselves are learning spend on the teacher, at its full price
    assert sample(
        fresh_metrics, "distillserve_spend_usd_total", route="teacher", tenant="acme", purpose="shadow"
    ) == pytest.approx((7 * (21 * 3.0 + 40 * 12.0) + (21 * 3.0 + 80 * 12.0)) / 1e6)
