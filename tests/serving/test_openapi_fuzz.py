"""The published OpenAPI document, fuzzed against the real gateway by schemathesis.

``distillserve serve`` runs with the embedded testbed student and the testbed teacher, client and
admin keys configured; ``schemathesis run <gateway>/openapi.json --checks all`` then generates
requests from the document (its examples, boundary cases, random and invalid bodies) and checks
every answer: no 5xx, only documented status codes and content types, bodies and SSE events that
match their schemas, schema-valid requests accepted, invalid ones refused, and no operation that
answers without its key. Two runs, because one header carries one key: the OpenAI endpoints with a
client key, the admin API with the admin key. No check is excluded.

A fixed seed and a bounded number of examples per operation keep the run reproducible and about a
minute long on two busy cores; widen ``MAX_EXAMPLES`` or drop ``--seed`` to fuzz harder by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from distillserve.adapters.registry import AdapterCard, AdapterRegistry
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.adapters import untrained_adapter
from tests.support.servers import Server, start_gateway

CLIENT_KEY = "fuzz-client-key"
ADMIN_KEY = "fuzz-admin-key"
MAX_EXAMPLES = 15
SEED = 20
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("openapi-fuzz")
    student = ensure_testbed_student()  # build before the server starts, not inside its ready timeout
    # One registered version (a real adapter for the student), so the registry operations reach
    # their work: the document's examples name it (v1), and promoting it hot-swaps it in.
    registry = AdapterRegistry(str(tmp / "registry"), str(student))
    registry.register(
        untrained_adapter(student, tmp / "adapter", rank=4), AdapterCard(base_model=str(student))
    )
    config = {
        "server": {"api_keys": [CLIENT_KEY], "admin_key": ADMIN_KEY},
        "student": {"kind": "embedded", "name": "student", "model_path": str(student), "max_batch_size": 4},
        "teacher": {"kind": "testbed", "name": "teacher"},
        "teacher_log": {"sink": "file", "spool_dir": str(tmp / "log")},
        "registry": {"url": str(tmp / "registry")},
    }
    with start_gateway(tmp, config, ready_path="/readyz") as g:
        yield g


# A schema-valid request may still ask for a feature no configured backend serves (tools,
# json_schema, images: this gateway's testbed teacher and embedded student read text only). That is
# OpenAI's own answer to an unsupported parameter: a 400 naming it (``unsupported_feature``,
# tests/serving/test_capabilities.py), so schema-valid data may also meet a 400 here.
ACCEPTANCE = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""


def fuzz(gw: Server, tmp: Path, key: str, paths: list[str]) -> tuple[subprocess.CompletedProcess[str], dict]:
    """One schemathesis run over ``paths`` (a filter); its exit status, output and JSON report."""
    report = tmp / "report.json"
    config = tmp / "schemathesis.toml"
    config.write_text(ACCEPTANCE)
    cmd = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"http://127.0.0.1:{gw.port}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *paths,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp)
    return done, json.loads(report.read_text()) if report.exists() else {}


def _assert_clean(done: subprocess.CompletedProcess[str], report: dict, operations: int) -> None:
    output = done.stdout[-8000:] + done.stderr[-2000:]
    assert done.returncode == 0 and report, output
    assert report["complete"] and report["failures"] == [] and report["errors"] == [], output
    ops = report["operations"]
    assert ops["selected"] == ops["tested"] == operations and ops["errored"] == 0, ops
    cases = report["test_cases"]
    assert cases["with_failures"] == 0 and cases["errored"] == 0, cases
    assert cases["generated"] >= 5 * operations, cases  # not a vacuous run
    warnings = report["warnings"]
    # Every $ref resolved, every documented media type (JSON, SSE, text) could be read back.
    assert warnings["unresolvable_reference"] == [] and warnings["missing_deserializer"] == [], warnings


def _accepted(report: dict, operation: str) -> int:
    """How many generated requests ``operation`` served with a 2xx (the fuzzer got past the checks)."""
    return sum(phase["accepted"] for phase in report["valid_rates"].get(operation, {}).values())


def test_openai_endpoints_conform_to_the_document(gw: Server, tmp_path: Path) -> None:
    done, report = fuzz(gw, tmp_path, CLIENT_KEY, ["--exclude-path-regex", "^/admin/"])
    # chat, completions, models, healthz, readyz, metrics
    _assert_clean(done, report, operations=6)
    # Real answers were checked, blocking and streamed (the examples include stream: true).
    assert _accepted(report, "POST /v1/chat/completions") > 0, report["valid_rates"]
    assert _accepted(report, "POST /v1/completions") > 0, report["valid_rates"]


def test_admin_api_conforms_to_the_document(gw: Server, tmp_path: Path) -> None:
    done, report = fuzz(gw, tmp_path, ADMIN_KEY, ["--include-path-regex", "^/admin/"])
    # student status, activate, canary set/clear; registry versions, card, diff, state,
    # promote, rollback, canary; tenant data deletion and the deletions on record
    _assert_clean(done, report, operations=13)
    # The registered version was read, compared and promoted, not only refused.
    for operation in (
        "GET /admin/registry/versions/{version}",
        "GET /admin/registry/diff",
        "POST /admin/registry/promote",
    ):
        assert _accepted(report, operation) > 0, report["valid_rates"]
