"""The vLLM backend over several replicas, each addressed on its own: two student servers on
vLLM's OpenAI + LoRA wire (the embedded engine, each its own process). A version is loaded and
probed on every replica or on none; requests go round-robin; ``list_adapters`` names only what
every replica holds; a headless service's name resolves to one replica per address."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distillserve.backends.vllm import VLLMBackend
from distillserve.config import VLLMBackendConfig
from distillserve.protocol.errors import APIError
from distillserve.protocol.schema import ChatCompletionRequest, ChatMessage
from tests.support.lora_adapters import make_lora_adapter
from tests.support.lora_students import start_lora_student
from tests.support.processes import free_port
from tests.support.servers import Server
from tests.support.tiny_student import build_tiny_student

pytestmark = pytest.mark.timeout(1200)

ASK = ChatCompletionRequest(
    model="student", messages=[ChatMessage(role="user", content="copy: ab")], max_tokens=1, temperature=0
)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Server]]]:
    tmp = tmp_path_factory.mktemp("replicas")
    base = build_tiny_student(tmp / "tiny").resolve()
    with contextlib.ExitStack() as stack:
        yield base, [stack.enter_context(start_lora_student(tmp, base)) for _ in range(2)]


def _backend(urls: list[str], **kw: object) -> VLLMBackend:
    return VLLMBackend(VLLMBackendConfig(name="student", url=urls[0], replica_urls=urls, **kw))


def _held(server: Server) -> set[str]:
    models = httpx.get(f"{server.url}/models", timeout=30).json()["data"]
    return {m["id"] for m in models if m.get("parent")}


async def test_a_version_is_loaded_and_probed_on_every_replica(
    replicas: tuple[Path, list[Server]], tmp_path: Path
) -> None:
    base, servers = replicas
    adapter = make_lora_adapter(base, tmp_path / "a", seed=1, rank=2)
    backend = _backend([s.url for s in servers])
    try:
        await backend.load_adapter("student@r1", str(adapter))
        assert all("student@r1" in _held(s) for s in servers)
        assert await backend.list_adapters() == ["student@r1"]
        await backend.load_adapter("student@r1", str(adapter))  # held already: nothing to do
        answers = [await backend.chat(ASK, model="student@r1") for _ in range(4)]
        assert all(a["model"] == "student@r1" for a in answers)
        urls = [s.url for s in servers]
        assert [backend.replicas.next().base_url for _ in range(4)] == urls * 2  # round-robin
        httpx.post(f"{servers[1].url}/unload_lora_adapter", json={"lora_name": "student@r1"}, timeout=30)
        assert await backend.list_adapters() == []  # one replica lacks it: counted as missing
        await backend.load_adapter("student@r1", str(adapter))  # reloads it where it is missing
        assert all("student@r1" in _held(s) for s in servers)
        await backend.unload_adapter("student@r1")
        assert not any(_held(s) for s in servers)
    finally:
        await backend.aclose()


async def test_one_replica_down_refuses_the_version_everywhere(
    replicas: tuple[Path, list[Server]], tmp_path: Path
) -> None:
    base, servers = replicas
    adapter = make_lora_adapter(base, tmp_path / "b", seed=2, rank=2)
    dead = f"http://127.0.0.1:{free_port()}/v1"  # a replica that is not there (scaled down, crashed)
    backend = _backend([servers[0].url, dead])
    try:
        with pytest.raises(APIError, match="unreachable"):
            await backend.load_adapter("student@r2", str(adapter))
        assert "student@r2" not in _held(servers[0])  # all or none: the live replica let it go
    finally:
        await backend.aclose()


async def test_a_headless_service_name_resolves_to_one_replica_per_address(
    replicas: tuple[Path, list[Server]],
) -> None:
    _, servers = replicas
    port = servers[0].port
    backend = VLLMBackend(
        VLLMBackendConfig(name="student", url=f"http://localhost:{port}/v1", resolve_replicas=True)
    )
    try:
        found = [r.base_url for r in await backend.replicas.refresh()]
        assert f"http://127.0.0.1:{port}/v1" in found
        assert all(u.endswith(f":{port}/v1") for u in found)
    finally:
        await backend.aclose()
