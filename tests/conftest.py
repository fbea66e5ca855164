"""Test-wide settings: offline, caches inside the repo's ignored .cache folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

if TYPE_CHECKING:
    from distillserve.launchers.vllm_process import VLLMProcess

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


@pytest.fixture(scope="session")
def vllm_teacher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMProcess]:
    """The session's vLLM teacher (tests/support/vllm_teacher.py)."""
    from tests.support.vllm_teacher import vllm_teacher_engine

    with vllm_teacher_engine(tmp_path_factory.mktemp("vllm-teacher")) as engine:
        yield engine


# The suite runs on pytest-xdist workers (scripts/test.sh: ``-n 2``). Each module is
# one unit of work, so its module-scoped servers start once; modules that share a session server are
# one unit too. Units are handed out in this order as workers free up: the longest first, so that
# no long module starts last (seconds measured on a fresh clone, 2 cores: bench/RESULTS.md, "CI time").
_SHARED_SESSION_SERVER = {
    "tests/backends/test_vllm_teacher_features.py": "vllm-teacher",
    "tests/teacher_log/test_vllm_teacher.py": "vllm-teacher",
}
_LONGEST_FIRST = (
    "tests/export/test_formats.py",
    "tests/demo/test_demo.py",
    "tests/backends/test_vllm.py",
    "tests/distiller/test_loop.py",
    "tests/router/test_shared_router_gateways.py",
    "tests/replicas/test_fleet.py",
    "tests/backends/test_vllm_teacher_features.py",
    "tests/teacher_log/test_vllm_teacher.py",
    "tests/demo/test_smollm2_loop.py",
    "tests/deploy/test_dashboards_learning_loop.py",
    "tests/replicas/test_vllm_replicas.py",
    "tests/demo/test_demo_smollm2.py",
    "tests/router/test_learning.py",
    "tests/export/test_cli.py",
    "tests/export/test_s3_registry.py",
    "tests/distiller/test_distributed.py",
    "tests/backends/test_triton.py",
    "tests/router/test_embedding_scorer.py",
    "tests/serving/test_openapi_fuzz.py",
    "tests/export/test_refusals.py",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Units of work by module (or shared session server), in collection order: pytest-xdist's
    ``loadfile`` with our groups (its ``loadgroup`` marks do not reach the scheduler on pytest 9)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return _SHARED_SESSION_SERVER.get(module, module)

    return ModuleUnits(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item), len(rank)))  # stable: a module keeps its order


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]
