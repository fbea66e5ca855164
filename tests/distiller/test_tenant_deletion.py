"""Tenant deletion: records of tenants A and B train an adapter; A's data is deleted (through the
gateway's admin API, and through the CLI); the replay store then holds only B's examples, and a
later batch with A's records trains none of them (counted). Training is real (the tiny student,
one epoch), the registry a temp directory, the admin API the real gateway app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from distillserve.adapters.admin_audit import audit_log_path
from distillserve.adapters.registry import AdapterRegistry
from distillserve.adapters.tenant_deletions import TenantDeletions
from distillserve.cli import app
from distillserve.config import Settings
from distillserve.distiller.examples import TrainingExample, build_examples
from distillserve.distiller.replay import ExampleStore
from distillserve.serving.server import build_app
from tests.distiller.test_worker import PASS_ANY, ListSource, distiller
from tests.support.metrics import sample
from tests.support.teacher_records import teacher_records
from tests.support.tiny_student import build_tiny_student

ADMIN = "tenant-admin-key-0123"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny"))


def records(tenant: str, n: int, seed: int) -> list[bytes]:
    return [
        r.model_copy(update={"tenant": tenant}).to_json() for r in teacher_records(["reverse"], n, seed=seed)
    ]


def tenants_of(examples: list[TrainingExample]) -> set[str | None]:
    return {e.tenant for e in examples}


def test_examples_carry_their_tenant_through_the_replay_store(tmp_path: Path) -> None:
    examples, _ = build_examples(records("a", 3, 1) + records("b", 3, 2), learn_reasoning=False)
    store = ExampleStore(tmp_path / "replay.jsonl", 100)
    store.add(examples)
    assert [e.tenant for e in store.load()] == ["a"] * 3 + ["b"] * 3
    assert store.forget_tenants(frozenset({"a"})) == 3
    assert tenants_of(store.load()) == {"b"}
    assert store.forget_tenants(frozenset({"a"})) == 0


def test_records_of_a_deleted_tenant_become_no_example() -> None:
    raw = records("a", 4, 1) + records("b", 4, 2)
    examples, report = build_examples(raw, learn_reasoning=False, deleted_tenants=frozenset({"a"}))
    assert tenants_of(examples) == {"b"} and report.kept == 4
    assert report.as_dict()["dropped"]["deleted_tenant"] == 4


def _admin_delete(tmp_path: Path, registry: AdapterRegistry, tenant: str) -> dict:
    settings = Settings(
        server={"admin_key": ADMIN},
        student={"kind": "testbed", "name": "student"},
        teacher={"kind": "testbed", "name": "teacher"},
        teacher_log={"enabled": False, "sink": "none"},
        registry={"url": str(tmp_path / "registry")},
        distiller={"base_model": registry.base_model},
    )
    with TestClient(build_app(settings)) as client:
        assert client.delete(f"/admin/tenants/{tenant}/data").status_code == 401
        answer = client.delete(f"/admin/tenants/{tenant}/data", headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 202, answer.text
        listed = client.get("/admin/tenants/deletions", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert [d["tenant"] for d in listed["deletions"]] == [tenant]
    audit = [json.loads(line) for line in audit_log_path(settings).read_text().splitlines()]
    return next(a for a in audit if a["action"] == "delete_tenant_data" and a["outcome"] == "ok")


def test_deleting_a_tenant_purges_its_replay_examples_and_skips_its_records(
    base: Path, tmp_path: Path, fresh_metrics: CollectorRegistry
) -> None:
    registry = AdapterRegistry(str(tmp_path / "registry"), str(base))
    worker = distiller(base, registry, tmp_path, **PASS_ANY)
    source = ListSource(
        records("a", 8, 1) + records("b", 8, 2) + records("a", 8, 3) + records("b", 8, 4), registry
    )
    first = worker.run_once(source.poll(16, 0), source)
    assert first.outcome in ("promoted", "held")
    assert tenants_of(worker.replay.load()) == {"a", "b"}  # both tenants' examples kept for replay

    audit = _admin_delete(tmp_path, registry, "a")
    assert audit["params"] == {"tenant": "a"} and audit["status"] == 200
    assert TenantDeletions(registry).tenants() == {"a"}

    second = worker.run_once(source.poll(16, 0), source)
    assert second.outcome in ("promoted", "held")
    records_seen = second.card.records if second.card else {}
    assert records_seen["dropped"]["deleted_tenant"] == 8 and records_seen["kept"] <= 8
    assert tenants_of(worker.replay.load()) == {"b"}
    assert tenants_of(worker.past_holdout.load()) <= {"b"}
    purged = sample(fresh_metrics, "distillserve_tenant_deleted_examples_total", where="replay_store")
    assert purged > 0
    assert sample(fresh_metrics, "distillserve_tenant_deleted_examples_total", where="teacher_log") == 8
    assert sample(fresh_metrics, "distillserve_distiller_records_total", outcome="deleted_tenant") == 8
    assert source.committed() == list(range(32))  # A's records are consumed, not retried


def test_the_cli_records_the_deletion_and_purges_a_local_replay_store(base: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    examples, _ = build_examples(records("a", 3, 1) + records("b", 3, 2), learn_reasoning=False)
    ExampleStore(state / "replay.jsonl", 100).add(examples)
    config = tmp_path / "cfg.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "registry": {"url": str(tmp_path / "registry")},
                "distiller": {"base_model": str(base), "state_dir": str(state)},
            }
        )
    )
    result = CliRunner().invoke(app, ["tenants", "delete", "a", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["purged"] == {"replay": 3, "past_holdout": 0}
    assert tenants_of(ExampleStore(state / "replay.jsonl", 100).load()) == {"b"}
    assert TenantDeletions(AdapterRegistry(str(tmp_path / "registry"), str(base))).tenants() == {"a"}
    audit = (tmp_path / "registry" / "audit.jsonl").read_text()
    assert '"action": "delete_tenant_data"' in audit and '"key_id": "cli:' in audit
