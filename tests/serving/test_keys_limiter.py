"""The key limiter in one process against a real Redis (and the memory storage), the keys config
and the ``distillserve keys`` CLI. The gateway-level behaviour (429s over HTTP, two replicas) is in
``test_keys.py``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from distillserve.cli import app
from distillserve.config import KeyEntry, KeysConfig, Settings
from distillserve.serving.keys.budget import ServedTokens
from distillserve.serving.keys.keyring import KeyRing, hash_key
from distillserve.serving.keys.limiter import KeyLimiter
from distillserve.serving.keys.refusals import QuotaExhausted, RateLimited, go_duration
from tests.support.metrics import sample
from tests.support.redis import running_redis


def caller(**policy: object):
    entry = KeyEntry(sha256=hash_key("sk-unit"), tenant="unit", **policy)  # type: ignore[arg-type]
    found = KeyRing([entry]).lookup("sk-unit")
    assert found is not None
    return found


async def test_tokens_are_reserved_and_refunded_in_redis(tmp_path: Path) -> None:
    with running_redis(tmp_path) as url:
        limiter = KeyLimiter(url)
        who = caller(tpm_limit=100)
        first = await limiter.admit(who, 60)
        assert first.headers()["x-ratelimit-remaining-tokens"] == "40"
        with pytest.raises(RateLimited) as refused:
            await limiter.admit(who, 60)
        assert refused.value.headers["x-ratelimit-remaining-tokens"] == "40"  # the refusal took nothing
        await first.settle(ServedTokens(5, 10))  # 15 used: 45 of the 60 go back
        second = await limiter.admit(who, 60)
        assert second.headers()["x-ratelimit-remaining-tokens"] == str(100 - 15 - 60)
        # More than reserved (the estimate was low): the difference is charged too.
        await second.settle(ServedTokens(50, 30))
        third = await limiter.admit(who, 5)
        assert third.headers()["x-ratelimit-remaining-tokens"] == str(100 - 15 - 80 - 5)


async def test_budget_is_charged_after_and_checked_before() -> None:
    limiter = KeyLimiter("memory://")
    who = caller(budget={"limit": 100, "unit": "tokens", "period": "hour"})
    first = await limiter.admit(who, 10)
    await first.settle(ServedTokens(40, 70))  # over the budget in one answer: charged in full
    with pytest.raises(QuotaExhausted) as refused:
        await limiter.admit(who, 10)
    assert refused.value.code == "insufficient_quota"
    assert 3590 < int(refused.value.headers["retry-after"]) <= 3600


async def test_a_redis_outage_serves_unlimited_and_counts_it(
    tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    who = caller(rpm_limit=1)
    with running_redis(tmp_path) as url:
        limiter = KeyLimiter(url)
        await limiter.admit(who, 1)
        with pytest.raises(RateLimited):
            await limiter.admit(who, 1)
    # redis-server is stopped now (by its PID): requests go through, and the metric says why.
    admitted = await limiter.admit(who, 1)
    assert admitted.headers() == {}
    await admitted.settle(ServedTokens(1, 1))
    assert sample(fresh_metrics, "distillserve_key_limiter_errors_total", step="admit") == 1


def test_go_durations_as_openai_writes_them() -> None:
    assert [go_duration(s) for s in (0.02, 1.5, 59.0, 360.0, 61.25)] == [
        "20ms",
        "1.5s",
        "59s",
        "6m0s",
        "1m1.25s",
    ]


def test_keys_config_reads_a_file_and_refuses_duplicates_and_plain_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump([{"sha256": hash_key("sk-file"), "tenant": "f", "rpm_limit": 5}]))
    settings = Settings(
        keys={"entries": [{"sha256": hash_key("sk-inline"), "tenant": "i"}], "file": str(path)}
    )
    ring = KeyRing.from_config(settings.keys, [SecretStr("sk-legacy")])
    assert ring.lookup("sk-file").policy.rpm_limit == 5  # type: ignore[union-attr]
    assert ring.lookup("sk-inline").tenant == "i"  # type: ignore[union-attr]
    legacy = ring.lookup("sk-legacy")
    assert legacy is not None and legacy.tenant is None and legacy.policy.may_force_route
    assert ring.lookup("sk-other") is None
    dup = KeysConfig(entries=[{"sha256": hash_key("sk-file"), "tenant": "x"}], file=path)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="listed twice"):
        dup.all_entries()
    with pytest.raises(ValidationError, match="sha256"):
        KeyEntry(sha256="sk-plain-key", tenant="t")
    with pytest.raises(ValidationError, match="storage"):
        KeysConfig(storage="mongodb://x")


def test_keys_cli_hashes_and_makes_keys() -> None:
    runner = CliRunner()
    hashed = runner.invoke(app, ["keys", "hash"], input="sk-abc\n")
    assert hashed.exit_code == 0 and hashed.stdout.strip() == hashlib.sha256(b"sk-abc").hexdigest()
    made = runner.invoke(app, ["keys", "new", "--tenant", "acme"])
    assert made.exit_code == 0
    key = made.stderr.strip()
    [entry] = yaml.safe_load(made.stdout)
    assert key.startswith("sk-ds-") and entry == {"sha256": hash_key(key), "tenant": "acme"}
