"""The admin audit trail: every admin action (done or refused) is one structured log line and one
line appended to a JSONL file, naming the key by a hash prefix (never the key), the client, the
action, its parameters and how it ended. Driven through the real gateway app with the embedded
engine serving the testbed student and a real PEFT adapter."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from distillserve.adapters.admin_audit import audit_log_path
from distillserve.config import Settings
from distillserve.serving.server import build_app
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.adapters import untrained_adapter

ADMIN = "audit-admin-key-0123"
KEY_ID = "sha256:" + hashlib.sha256(ADMIN.encode()).hexdigest()[:12]
EARLIER = {"action": "from an earlier run"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path, Path]]:
    tmp = tmp_path_factory.mktemp("audit")
    base = ensure_testbed_student(pretrain=False)
    adapter = untrained_adapter(base, tmp / "registry" / "uploads" / "v1", rank=4)
    settings = Settings(
        server={"admin_key": ADMIN},
        student={"kind": "embedded", "name": "student", "model_path": str(base), "threads": 1},
        teacher={"kind": "testbed", "name": "teacher"},
        teacher_log={"enabled": False, "sink": "none"},
        registry={"url": str(tmp / "registry")},
    )
    log_file = audit_log_path(settings)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(json.dumps(EARLIER) + "\n")  # appended to, never rewritten
    with TestClient(build_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client, log_file, adapter


def _drive(client: TestClient, adapter: Path, outside: Path) -> list[int]:
    calls = [
        ("POST", "/admin/student/activate", {"name": "student@v1", "path": str(adapter)}),
        ("POST", "/admin/student/activate", {"name": "student@v2", "path": str(outside)}),
        ("POST", "/admin/student/canary", {"name": "student@c1", "path": str(adapter), "share": 0.25}),
        ("DELETE", "/admin/student/canary", None),
        ("POST", "/admin/registry/promote", {"version": "v404"}),
        ("POST", "/admin/registry/rollback", None),
        ("POST", "/admin/registry/canary", {"version": None, "share": 0.0}),
    ]
    return [client.request(m, p, json=body).status_code for m, p, body in calls]


def test_each_admin_action_is_recorded_with_who_what_when(
    setup: tuple[TestClient, Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, log_file, adapter = setup
    started = datetime.now().astimezone()
    with caplog.at_level(logging.INFO, logger="distillserve.audit"):
        statuses = _drive(client, adapter, tmp_path)
        assert client.get("/admin/student").status_code == 200  # reading is not an action
    assert statuses == [200, 403, 200, 200, 404, 409, 200]

    lines = log_file.read_text().splitlines()
    assert json.loads(lines[0]) == EARLIER
    records = [json.loads(line) for line in lines[1:]]
    assert [(r["action"], r["outcome"], r["status"]) for r in records] == [
        ("load", "ok", 200),
        ("load", "refused", 403),
        ("canary", "ok", 200),
        ("unload_canary", "ok", 200),
        ("promote", "refused", 404),
        ("rollback", "refused", 409),
        ("registry_canary", "ok", 200),
    ]
    assert records[1]["code"] == "adapter_path_forbidden"
    assert records[1]["params"] == {"name": "student@v2", "path": str(tmp_path)}  # what was asked
    assert records[2]["params"]["share"] == 0.25 and records[4]["params"] == {"version": "v404"}
    assert {r["key_id"] for r in records} == {KEY_ID} and {r["client"] for r in records} == {"testclient"}
    times = [datetime.fromisoformat(r["time"]) for r in records]
    assert times == sorted(times) and times[0] >= started.replace(microsecond=0)
    assert ADMIN not in log_file.read_text()

    logged = [
        json.loads(r.getMessage().split(" ", 2)[2]) for r in caplog.records if r.name == "distillserve.audit"
    ]
    assert logged == records


def test_requests_without_the_admin_key_are_not_actions(setup: tuple[TestClient, Path, Path]) -> None:
    client, log_file, adapter = setup
    before = log_file.read_text()
    r = client.post(
        "/admin/student/activate",
        json={"name": "student@v9", "path": str(adapter)},
        headers={"Authorization": "Bearer not-the-admin-key"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert log_file.read_text() == before
