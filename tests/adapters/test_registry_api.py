"""The registry admin API over real HTTP: admin key required, OpenAI-shaped errors, and
promote / rollback / canary / diff doing what the registry tests prove at the Python level."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from distillserve.adapters.admin_audit import AdminAudit
from distillserve.adapters.promotion import NoActivator, Promoter
from distillserve.adapters.registry import AdapterCard, AdapterRegistry
from distillserve.adapters.registry_api import registry_router
from distillserve.backends import testbed_teacher
from distillserve.config import Settings
from distillserve.router.router import Router
from distillserve.serving.app import create_app
from distillserve.serving.gateway import Gateway
from tests.adapters.test_registry import adapter_dir  # noqa: F401 - module fixture
from tests.support.processes import free_port

KEY = "adm-test-key"


def _app(promoter: Promoter, key: str | None) -> FastAPI:
    """The real gateway app (its error handlers included) with the registry router mounted."""
    settings = Settings(
        student={"kind": "testbed", "name": "student"},
        teacher_log={"enabled": False, "sink": "none"},
        server={"admin_key": key},
    )
    gateway = Gateway(
        settings,
        student=testbed_teacher.TestbedTeacher("student"),
        teacher=testbed_teacher.TestbedTeacher(),
        router=Router(settings.router),
    )
    return create_app(
        gateway,
        extra_routers=[
            registry_router(
                promoter.registry,
                key,
                activator=promoter.activator,
                audit=AdminAudit(Path(promoter.registry.url) / "audit.jsonl"),
            )
        ],
    )


@pytest.fixture
def served(tmp_path: Path, adapter_dir: Path) -> Iterator[tuple[str, AdapterRegistry]]:  # noqa: F811
    reg = AdapterRegistry(str(tmp_path / "reg"), "tiny")
    for em in (0.2, 0.7, 0.9):
        reg.register(
            adapter_dir,
            AdapterCard(base_model="tiny", eval={"candidate": {"heldout": {"exact_match": em, "n": 10}}}),
        )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            _app(Promoter(reg, NoActivator()), KEY), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/admin/registry", reg
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _served_live(url: str) -> str | None:
    return httpx.get(f"{url}/state", headers=_h()).json()["live"]


def _h(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_admin_key_is_required(served: tuple[str, AdapterRegistry]) -> None:
    url, _ = served
    r = httpx.get(f"{url}/versions")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(f"{url}/versions", headers=_h("wrong"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    r = httpx.post(f"{url}/promote", json={"version": "v1"}, headers=_h("wrong"))
    assert r.status_code == 403 and _served_live(url) is None


def test_list_show_diff(served: tuple[str, AdapterRegistry]) -> None:
    url, _ = served
    listing = httpx.get(f"{url}/versions", headers=_h()).json()
    assert [c["version"] for c in listing["data"]] == ["v1", "v2", "v3"] and listing["base_model"] == "tiny"
    assert httpx.get(f"{url}/versions/v2", headers=_h()).json()["status"] == "candidate"
    d = httpx.get(f"{url}/diff", params={"a": "v1", "b": "v3"}, headers=_h()).json()
    assert d["sets"]["heldout"] == {"a": 0.2, "b": 0.9, "delta": 0.7}
    missing = httpx.get(f"{url}/versions/v7", headers=_h())
    assert missing.status_code == 404 and "no version 'v7'" in missing.json()["error"]["message"]


def test_promote_rollback_canary(served: tuple[str, AdapterRegistry]) -> None:
    url, reg = served
    assert httpx.post(f"{url}/promote", json={"version": "v1"}, headers=_h()).json()["live"] == "v1"
    assert (
        httpx.post(f"{url}/promote", json={"version": "v3"}, headers=_h()).json()["adapter"] == "student@v3"
    )
    assert httpx.post(f"{url}/rollback", headers=_h()).json()["live"] == "v1"
    r = httpx.post(f"{url}/canary", json={"version": "v2", "share": 0.2}, headers=_h())
    assert r.json() == {"canary": "v2", "share": 0.2}
    state = httpx.get(f"{url}/state", headers=_h()).json()
    assert (state["live"], state["canary"]) == ("v1", "v2")
    assert (
        httpx.post(f"{url}/canary", json={"version": None, "share": 0}, headers=_h()).json()["canary"] is None
    )
    assert reg.live() == "v1"


def test_bad_requests_get_clear_errors_and_change_nothing(served: tuple[str, AdapterRegistry]) -> None:
    url, reg = served
    httpx.post(f"{url}/promote", json={"version": "v1"}, headers=_h())
    weights = Path(reg.version_path("v2"), "adapter_model.safetensors")
    weights.write_bytes(b"not safetensors")
    r = httpx.post(f"{url}/promote", json={"version": "v2"}, headers=_h())
    assert r.status_code == 400 and r.json()["error"]["code"] == "adapter_rejected"
    assert "checksum" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/promote", json={"version": "v404"}, headers=_h())
    assert r.status_code == 404
    r = httpx.post(f"{url}/canary", json={"version": "v1", "share": 0.5}, headers=_h())
    assert r.status_code == 409 and "already live" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/canary", json={"version": "v3", "share": 2}, headers=_h())
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert reg.live() == "v1" and reg.state().canary is None


def test_disabled_without_an_admin_key(tmp_path: Path) -> None:
    reg = AdapterRegistry(str(tmp_path / "r"), "tiny")
    app = _app(Promoter(reg, NoActivator()), None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        r = httpx.get(f"http://127.0.0.1:{port}/admin/registry/versions", headers=_h())
        assert r.status_code == 403 and "disabled" in r.json()["error"]["message"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
