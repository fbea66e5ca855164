"""Test-wide settings: offline, caches inside the repo's ignored .cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

_CACHE = Path(__file__).resolve().parents[1] / ".cache"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(_CACHE / "hf"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(_CACHE / "torchinductor"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_CACHE / "tiktoken"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist ("gw0", "gw1", ...) each worker hands out ports from a range of its own, below
# the kernel's ephemeral range (32768+): a port chosen by one worker is never chosen by another,
# nor taken by an outgoing connection, before its server binds it (launchers/child_process.py).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    _WIDTH = 12000 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _LOW = 20000 + int(_WORKER.removeprefix("gw")) * _WIDTH
    os.environ.setdefault("DISTILLSERVE_PORT_RANGE", f"{_LOW}-{_LOW + _WIDTH - 1}")


@pytest.fixture
def fresh_metrics(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    """Every distillserve metric in this test's own registry (see tests/support/metrics.py)."""
    # Imported here, not above: the environment set above must come before any distillserve import.
    from tests.support.metrics import use_fresh_metrics

    return use_fresh_metrics(monkeypatch)
