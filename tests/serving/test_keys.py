"""Keys with policies over real HTTP: two gateway processes (``distillserve serve``) share one real
Redis (Debian's redis-server) for their limits, and the official ``openai`` SDK (retries off) is
the client. The teacher is the testbed teacher as an OpenAI-compatible upstream process; the
student the in-process testbed oracle, so the route that answered shows in the headers. The
teacher log is the file sink, written before a blocking answer returns.

The config holds only the keys' SHA-256 hashes; the tests send the keys themselves.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from distillserve.serving.keys.keyring import hash_key
from distillserve.teacher_log.record import TeacherLogRecord
from tests.support.log_file import read_log, read_log_once
from tests.support.redis import running_redis
from tests.support.servers import Server, start_gateway, start_testbed_teacher

RPM_KEY = "sk-test-rpm"
TPM_KEY = "sk-test-tpm"
STREAM_KEY = "sk-test-stream"
BUDGET_KEY = "sk-test-budget"
FREE_KEY = "sk-test-free"  # student only, model "auto" only, max_tokens <= 32, no route forcing
PRIVATE_KEY = "sk-test-private"  # its traffic is never logged
LOGGED_KEY = "sk-test-logged"  # logged, may force a route
EASY = "copy: hello"
HARD = (
    "Prove step by step that the algorithm below is optimal, analyze its complexity, and explain why "
    "every invariant holds?\n" + "x = y + z * 2 - w / 3\n" * 6 + "reverse: "
)
TPM_LIMIT = 300

# OpenAI's own 429 bodies, as its API sends them (the type of a rate limit names the limit):
# - https://github.com/mmz-001/knowledge_gpt/issues/5: the SDK logs "error_type=requests" for
#   "Rate limit reached for ... on requests per min";
# - https://github.com/chatanywhere/GPT_API_free/issues/229: the full insufficient_quota body.
OPENAI_RATE_LIMITED = {
    "error": {
        "message": "Rate limit reached for default-gpt-3.5-turbo in organization org-x on requests per min. "
        "Limit: 3 / min. Please try again in 20s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
OPENAI_INSUFFICIENT_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def assert_shaped_like(body: object, reference: dict) -> None:
    """Same fields as OpenAI's body, the same type and code (the message is ours)."""
    ref = reference["error"]
    assert isinstance(body, dict) and set(body) == set(ref)
    assert (body["type"], body["param"], body["code"]) == (ref["type"], ref["param"], ref["code"])


BUDGET_TOKENS = 60


def _entries() -> list[dict[str, object]]:
    return [
        {"sha256": hash_key(RPM_KEY), "tenant": "acme", "rpm_limit": 3},
        {"sha256": hash_key(TPM_KEY), "tenant": "acme", "tpm_limit": TPM_LIMIT},
        {"sha256": hash_key(STREAM_KEY), "tenant": "acme", "tpm_limit": TPM_LIMIT},
        {
            "sha256": hash_key(BUDGET_KEY),
            "tenant": "beta",
            "budget": {"limit": BUDGET_TOKENS, "period": "day"},
        },
        {
            "sha256": hash_key(FREE_KEY),
            "tenant": "free",
            "models": ["auto"],
            "routes": ["student"],
            "max_tokens": 32,
        },
        {"sha256": hash_key(PRIVATE_KEY), "tenant": "private", "log": False, "may_force_route": True},
        {"sha256": hash_key(LOGGED_KEY), "tenant": "gamma", "may_force_route": True},
    ]


def gateway_config(tmp: Path, teacher_url: str, redis_url: str, log_dir: str) -> dict:
    return {
        "student": {"kind": "testbed", "name": "student"},
        "teacher": {"kind": "openai", "name": "teacher", "url": teacher_url, "timeout_s": 5},
        "router": {"scorer": "heuristic", "policy": "threshold", "threshold": 0.5},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / log_dir)},
        "keys": {"storage": redis_url, "entries": _entries()},
    }


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def redis_url(tmp: Path) -> Iterator[str]:
    with running_redis(tmp) as url:
        yield url


@pytest.fixture(scope="module")
def teacher(tmp: Path) -> Iterator[Server]:
    with start_testbed_teacher(tmp) as t:
        yield t


@pytest.fixture(scope="module")
def gateways(tmp: Path, teacher: Server, redis_url: str) -> Iterator[tuple[Server, Server]]:
    with (
        start_gateway(tmp, gateway_config(tmp, teacher.url, redis_url, "log-a")) as a,
        start_gateway(tmp, gateway_config(tmp, teacher.url, redis_url, "log-b")) as b,
    ):
        yield a, b


def client(gw: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)


def chat(gw: Server, key: str, content: str, model: str = "auto", **kw: object):
    return client(gw, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kw
    )


def log_records(tmp: Path, log_dir: str) -> list[TeacherLogRecord]:
    return read_log(tmp / log_dir / "teacher-log.jsonl")


def log_records_once(tmp: Path, log_dir: str, request_id: str) -> list[TeacherLogRecord]:
    return read_log_once(tmp / log_dir / "teacher-log.jsonl", lambda r: r.request_id == request_id)


def metric(gw: Server, name: str, **labels: str) -> float:
    text = httpx.get(gw.url.removesuffix("/v1") + "/metrics").text
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(want):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- requests per minute, across two replicas ------------------------------------------------------
def test_requests_per_minute_is_shared_by_two_gateways(gateways: tuple[Server, Server]) -> None:
    a, b = gateways
    remaining = [chat(gw, RPM_KEY, EASY).headers["x-ratelimit-remaining-requests"] for gw in (a, b, a)]
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        chat(b, RPM_KEY, EASY)
    err = caught.value
    assert err.status_code == 429
    assert_shaped_like(err.body, OPENAI_RATE_LIMITED)
    headers = err.response.headers
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    # The moving window frees its oldest slot within the minute.
    assert 1 <= int(headers["retry-after"]) <= 60
    assert 0 < int(headers["retry-after-ms"]) <= 60_000
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert metric(b, "distillserve_key_refusals_total", tenant="acme", reason="requests") == 1


# --- tokens per minute: reserved up front, corrected by the usage ---------------------------------
def reserve(content: str, max_tokens: int) -> int:
    """The documented up-front estimate: ~4 characters per token, plus the max_tokens asked."""
    return math.ceil(len(content) / 4) + max_tokens


def test_tokens_per_minute_reserves_then_corrects_across_gateways(gateways: tuple[Server, Server]) -> None:
    a, b = gateways
    first = chat(a, TPM_KEY, EASY, max_tokens=200)
    assert int(first.headers["x-ratelimit-limit-tokens"]) == TPM_LIMIT
    # Seen at admission: the whole reservation is taken.
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == TPM_LIMIT - reserve(EASY, 200)
    used = first.parse().usage.total_tokens
    assert 0 < used < reserve(EASY, 200)
    # Without the correction 2 x 203 tokens would not fit in 300; with it, the first costs its usage.
    second = chat(b, TPM_KEY, EASY, max_tokens=200)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == TPM_LIMIT - used - reserve(EASY, 200)
    used += second.parse().usage.total_tokens
    # Now TPM_LIMIT - used tokens are left: a reservation larger than that is refused.
    too_many = TPM_LIMIT - used - reserve(EASY, 0) + 1
    with pytest.raises(openai.RateLimitError) as caught:
        chat(a, TPM_KEY, EASY, max_tokens=too_many)
    err = caught.value
    assert err.code == "rate_limit_exceeded" and err.body["type"] == "tokens"  # type: ignore[index]
    headers = err.response.headers
    assert headers["x-ratelimit-limit-tokens"] == str(TPM_LIMIT)
    assert headers["x-ratelimit-remaining-tokens"] == str(TPM_LIMIT - used)
    assert 1 <= int(headers["retry-after"]) <= 60
    # The refused reservation was given back: exactly what is left still fits.
    fits = chat(b, TPM_KEY, EASY, max_tokens=too_many - 1)
    assert fits.headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_streamed_answer_is_settled_by_its_usage(gateways: tuple[Server, Server]) -> None:
    a, b = gateways
    stream = client(a, STREAM_KEY).chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": EASY}],
        max_tokens=200,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert int(stream.headers["x-ratelimit-remaining-tokens"]) == TPM_LIMIT - reserve(EASY, 200)
    chunks = list(stream.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert usage is not None and usage.total_tokens < reserve(EASY, 200)
    # Settled after the stream's end, off the request's task: once it is, exactly the rest fits
    # (on the other gateway); until then the uncorrected reservation leaves too little.
    rest = TPM_LIMIT - usage.total_tokens
    deadline = time.monotonic() + 10
    while True:
        try:
            fits = chat(b, STREAM_KEY, EASY, max_tokens=rest - reserve(EASY, 0))
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the stream's reservation was never corrected"
            time.sleep(0.05)
    assert fits.headers["x-ratelimit-remaining-tokens"] == "0"


# --- a budget per period -------------------------------------------------------------------------
def test_budget_exhaustion_is_insufficient_quota(gateways: tuple[Server, Server]) -> None:
    a, b = gateways
    spent, answered = 0, 0
    while spent < BUDGET_TOKENS:
        gw = (a, b)[answered % 2]
        spent += chat(gw, BUDGET_KEY, EASY, max_tokens=8).parse().usage.total_tokens
        answered += 1
        assert answered < 50, "the budget never ran out"
    assert answered >= 2  # both gateways charged the same budget
    with pytest.raises(openai.RateLimitError) as caught:
        chat(a, BUDGET_KEY, EASY, max_tokens=8)
    err = caught.value
    assert err.status_code == 429
    assert_shaped_like(err.body, OPENAI_INSUFFICIENT_QUOTA)
    assert str(BUDGET_TOKENS) in err.message
    # The SDK would not retry it, and the period's end is announced.
    assert err.response.headers["x-should-retry"] == "false"
    assert int(err.response.headers["retry-after"]) > 3600
    assert metric(a, "distillserve_key_refusals_total", tenant="beta", reason="budget") == 1


# --- what a key may ask --------------------------------------------------------------------------
def test_forcing_a_route_without_permission_is_403(gateways: tuple[Server, Server]) -> None:
    a, _ = gateways
    free = client(a, FREE_KEY)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        free.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": EASY}],
            extra_headers={"x-distillserve-route": "teacher"},
        )
    assert caught.value.status_code == 403 and caught.value.code == "permission_denied"
    # A key with the permission is served on the route it forced.
    forced = client(a, LOGGED_KEY).chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": EASY}],
        extra_headers={"x-distillserve-route": "teacher"},
    )
    assert forced.headers["x-distillserve-route"] == "teacher"


def test_max_tokens_above_the_cap_is_400_naming_it(gateways: tuple[Server, Server]) -> None:
    a, _ = gateways
    with pytest.raises(openai.BadRequestError) as caught:
        chat(a, FREE_KEY, EASY, max_tokens=64)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "max_tokens"  # type: ignore[index]
    assert "at most 32" in caught.value.message
    with pytest.raises(openai.BadRequestError):
        chat(a, FREE_KEY, EASY, max_completion_tokens=33)
    assert chat(a, FREE_KEY, EASY, max_tokens=32).parse().choices[0].message.content


def test_a_model_outside_the_key_is_404(gateways: tuple[Server, Server]) -> None:
    a, _ = gateways
    with pytest.raises(openai.NotFoundError) as caught:
        chat(a, FREE_KEY, EASY, model="teacher")
    assert caught.value.code == "model_not_found"
    assert "does not exist or you do not have access to it" in caught.value.message
    # The same model is there for a key without a model list.
    assert chat(a, LOGGED_KEY, EASY, model="teacher").headers["x-distillserve-route"] == "teacher"


def test_a_student_only_key_is_never_served_by_the_teacher(gateways: tuple[Server, Server]) -> None:
    a, _ = gateways
    hard = chat(a, LOGGED_KEY, HARD + "abc")
    assert hard.headers["x-distillserve-route"] == "teacher"  # the router does call it hard
    free = chat(a, FREE_KEY, HARD + "abc")
    assert free.headers["x-distillserve-route"] == "student"


# --- the teacher log -------------------------------------------------------------------------------
def test_records_carry_the_tenant(gateways: tuple[Server, Server], tmp: Path) -> None:
    a, _ = gateways
    word = uuid.uuid4().hex[:8]
    resp = chat(a, LOGGED_KEY, HARD + word).parse()
    records = [r for r in log_records_once(tmp, "log-a", resp.id) if r.request_id == resp.id]
    assert len(records) == 1 and records[0].tenant == "gamma"


def test_opted_out_traffic_is_served_but_never_logged(gateways: tuple[Server, Server], tmp: Path) -> None:
    _, b = gateways
    before = metric(b, "distillserve_teacher_log_records_total", outcome="opted_out")
    by_key, by_header = f"{HARD}{uuid.uuid4().hex[:8]}", f"{HARD}{uuid.uuid4().hex[:8]}"
    served = [
        chat(b, PRIVATE_KEY, by_key),
        client(b, LOGGED_KEY).chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": by_header}],
            extra_headers={"x-distillserve-log": "off"},
        ),
    ]
    for raw in served:  # answered by the teacher, in full
        assert raw.headers["x-distillserve-route"] == "teacher"
        assert raw.parse().choices[0].message.content
    # A logged request afterwards: its record proves the log was written past the opted-out ones.
    barrier = chat(b, LOGGED_KEY, f"{HARD}{uuid.uuid4().hex[:8]}").parse()
    records = log_records_once(tmp, "log-b", barrier.id)
    prompts = [m.get("content") for r in records for m in r.messages or []]
    assert by_key not in prompts and by_header not in prompts
    assert metric(b, "distillserve_teacher_log_records_total", outcome="opted_out") == before + 2


def test_keys_are_required_and_unknown_keys_refused(gateways: tuple[Server, Server]) -> None:
    a, _ = gateways
    with pytest.raises(openai.AuthenticationError):
        chat(a, "sk-not-configured", EASY)
    # The hash itself is not a key.
    with pytest.raises(openai.AuthenticationError):
        chat(a, hash_key(LOGGED_KEY), EASY)
