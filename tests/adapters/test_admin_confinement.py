"""Admin path confinement: adapters come only from under the registry root or ``admin.adapter_roots``,
and a refusal never tells whether a path outside exists.

The policy is checked on real directories and symlinks; the HTTP behaviour through the real gateway
app (its error handlers, the embedded engine serving the testbed student, a real PEFT adapter), with
the same valid adapter copied inside and outside the allowed roots.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from distillserve.adapters.validation import AdapterPathForbidden, AdapterPathPolicy
from distillserve.config import Settings
from distillserve.serving.server import build_app
from distillserve.testbed.student_model import ensure_testbed_student
from tests.support.adapters import untrained_adapter

ADMIN = "confinement-admin-key"


def test_paths_under_a_root_pass_resolved(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    (root / "tiny" / "versions" / "v1").mkdir(parents=True)
    policy = AdapterPathPolicy([str(root)])
    inside = root / "tiny" / "versions" / "v1"
    assert policy.confine(str(inside)) == str(inside.resolve())
    # Not yet there is fine inside a root: the validator then says it does not exist.
    assert policy.confine(str(root / "tiny" / "versions" / "v9")) == str(
        (root / "tiny/versions/v9").resolve()
    )
    assert policy.confine(str(root / "x" / ".." / "tiny")) == str((root / "tiny").resolve())


def _refusal(policy: AdapterPathPolicy, path: str) -> tuple[int, str, str | None, str | None]:
    with pytest.raises(AdapterPathForbidden) as caught:
        policy.confine(path)
    err = caught.value
    return err.status_code, err.message, err.param, err.code


def test_every_path_outside_gets_the_same_refusal(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "link").symlink_to(outside)  # inside by name, outside in fact
    sibling = tmp_path / "registry-evil"  # shares the root's name as a prefix
    sibling.mkdir()
    policy = AdapterPathPolicy([str(root)])
    refusals = {
        _refusal(policy, p)
        for p in (
            str(outside),  # exists
            str(tmp_path / "nowhere"),  # does not
            "/etc",
            str(root / ".." / "elsewhere"),
            str(root / "link"),
            str(root / "link" / "deeper"),
            str(sibling),
            "relative/dir",
            "bad\x00name",
            "s3://bucket/adapters",
        )
    }
    assert len(refusals) == 1, refusals
    status, message, param, code = refusals.pop()
    assert (status, param, code) == (403, "path", "adapter_path_forbidden")
    assert str(tmp_path) not in message


def test_url_roots_compare_normalized_paths() -> None:
    policy = AdapterPathPolicy(["s3://models/registry"])
    assert policy.confine("s3://models/registry/tiny/versions/v2") == "s3://models/registry/tiny/versions/v2"
    for path in ("s3://models/registry/../secrets", "s3://models/registry-x/v1", "gs://models/registry/v1"):
        with pytest.raises(AdapterPathForbidden):
            policy.confine(path)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real adapter for the testbed student, copied into the registry, into a configured root,
    and outside both."""
    tmp = tmp_path_factory.mktemp("confinement")
    base = ensure_testbed_student(pretrain=False)
    made = untrained_adapter(base, tmp / "made", rank=4)
    places = {
        "registry": tmp / "registry" / "uploads" / "a1",
        "allowed": tmp / "allowed" / "a2",
        "outside": tmp / "outside" / "a3",
    }
    for dest in places.values():
        shutil.copytree(made, dest)
    return {**places, "base": base, "tmp": tmp}


@pytest.fixture(scope="module")
def admin(adapters: dict[str, Path]) -> Iterator[TestClient]:
    tmp = adapters["tmp"]
    settings = Settings(
        server={"admin_key": ADMIN},
        student={"kind": "embedded", "name": "student", "model_path": str(adapters["base"]), "threads": 1},
        teacher={"kind": "testbed", "name": "teacher"},
        teacher_log={"enabled": False, "sink": "none"},
        registry={"url": str(tmp / "registry")},
        admin={"adapter_roots": [str(tmp / "allowed")], "audit_log": str(tmp / "audit.jsonl")},
    )
    with TestClient(build_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client


def test_adapters_inside_the_roots_go_live(admin: TestClient, adapters: dict[str, Path]) -> None:
    r = admin.post("/admin/student/activate", json={"name": "student@r1", "path": str(adapters["registry"])})
    assert r.status_code == 200, r.text
    r = admin.post("/admin/student/activate", json={"name": "student@a2", "path": str(adapters["allowed"])})
    assert r.status_code == 200, r.text
    status = admin.get("/admin/student").json()
    assert status["live"] == "student@a2"
    assert status["adapters"]["student@a2"] == str(adapters["allowed"].resolve())


def _refused(r: httpx.Response) -> dict:
    assert r.status_code == 403, r.text
    return r.json()


def test_outside_paths_are_refused_alike_and_nothing_changes(
    admin: TestClient, adapters: dict[str, Path]
) -> None:
    live_before = admin.get("/admin/student").json()["live"]
    outside = adapters["outside"]
    escape = adapters["registry"] / ".." / ".." / ".." / "outside" / "a3"  # the same adapter, by ..
    paths = (outside, outside.parent / "missing", Path("/etc/passwd"), escape)
    bodies = [
        _refused(admin.post("/admin/student/activate", json={"name": "student@x1", "path": str(p)}))
        for p in paths
    ]
    bodies.append(
        _refused(
            admin.post(
                "/admin/student/canary", json={"name": "student@x2", "path": str(outside), "share": 0.5}
            )
        )
    )
    assert all(b == bodies[0] for b in bodies), bodies
    assert bodies[0]["error"]["code"] == "adapter_path_forbidden"
    status = admin.get("/admin/student").json()
    assert status["live"] == live_before and status["canary"] is None
    assert "student@x1" not in status["adapters"]


def test_inside_a_root_the_validator_still_explains(admin: TestClient, adapters: dict[str, Path]) -> None:
    missing = adapters["allowed"].parent / "not-there"
    r = admin.post("/admin/student/activate", json={"name": "student@m1", "path": str(missing)})
    assert r.status_code == 400 and "does not exist" in r.json()["error"]["message"]
