"""The adapter registry on a real S3 endpoint (moto in server mode, reached through fsspec's
s3fs): versions, the state fingerprint every gateway polls, local copies by content hash, and
promote / rollback / canary / corrupt-file refusal / a missing object, all on S3."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from distillserve.adapters.adapter_cache import AdapterCache
from distillserve.adapters.promotion import Promoter
from distillserve.adapters.registry import AdapterCard, AdapterRegistry, AdapterRejected, VersionNotFound
from tests.adapters.test_registry import RecordingActivator, adapter_dir  # noqa: F401 - module fixture
from tests.support.lora_adapters import make_lora_adapter
from tests.support.s3 import S3Server, start_s3
from tests.support.tiny_student import build_tiny_student


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with start_s3(tmp_path_factory.mktemp("moto")) as server:
        server.create_bucket("registry")
        yield server


@pytest.fixture(scope="module")
def other_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second adapter with other weights (another content hash)."""
    base = build_tiny_student(tmp_path_factory.mktemp("base2"))
    return make_lora_adapter(base, tmp_path_factory.mktemp("other"), seed=7, rank=2)


def _registry(s3: S3Server) -> AdapterRegistry:
    url = f"s3://registry/{uuid.uuid4().hex}"  # every test its own prefix
    return AdapterRegistry(url, "tiny", storage_options=s3.storage_options())


def _card(em: float = 0.5) -> AdapterCard:
    return AdapterCard(base_model="tiny", eval={"candidate": {"heldout": {"exact_match": em, "n": 10}}})


def test_versions_and_the_state_fingerprint_on_s3(s3: S3Server, adapter_dir: Path) -> None:  # noqa: F811
    reg = _registry(s3)
    assert reg.local is False and reg.versions() == [] and reg.state_fingerprint() is None
    reg.register(adapter_dir, _card())
    reg.register(adapter_dir, _card())
    assert reg.versions() == ["v1", "v2"] and reg.validate("v2").version == "v2"
    # A second client (another pod) sees the same versions: no stale listing cache.
    other = AdapterRegistry(reg.url, "tiny", storage_options=s3.storage_options())
    assert other.versions() == ["v1", "v2"]
    reg.mark_live("v1", by="test")
    first = other.state_fingerprint()
    assert first is not None and first == reg.state_fingerprint()  # an S3 ETag: the same for all
    reg.mark_live("v2", by="test", baseline=0.9)
    assert other.state_fingerprint() not in (None, first)
    state = other.state()
    assert (state.live, state.baselines) == ("v2", {"v2": 0.9})
    assert state.retired_since("v1") is not None and state.retired_since("v2") is None


def test_local_copies_are_checked_and_keyed_by_content(
    s3: S3Server,
    adapter_dir: Path,  # noqa: F811
    other_adapter: Path,
    tmp_path: Path,
) -> None:
    reg, cache = _registry(s3), AdapterCache(tmp_path / "cache")
    for d in (adapter_dir, other_adapter, adapter_dir):
        reg.register(d, _card())
    p1, p2, p3 = (cache.materialise(reg, v) for v in ("v1", "v2", "v3"))
    assert p1 == p3 != p2  # same content, same folder; other content, another
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (p1 / name).read_bytes() == (adapter_dir / name).read_bytes()
        assert (p2 / name).read_bytes() == (other_adapter / name).read_bytes()
    assert '"base_model": "tiny"' in (p1 / "card.json").read_text()  # the validator reads the base
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted({p1.name, p2.name})


def test_promote_rollback_and_canary_on_s3(s3: S3Server, adapter_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    reg = _registry(s3)
    for em in (0.5, 0.8, 0.6):
        reg.register(adapter_dir, _card(em))
    act = RecordingActivator()  # checks each path it gets is a local PEFT folder
    promoter = Promoter(reg, act, AdapterCache(tmp_path / "cache"))
    asyncio.run(promoter.promote("v1", by="test"))
    asyncio.run(promoter.promote("v2", by="test"))
    asyncio.run(promoter.canary("v3", 0.1, by="test"))
    st = reg.state()
    assert (st.live, st.canary, st.canary_share) == ("v2", "v3", 0.1)
    assert st.baselines == {"v1": 0.5, "v2": 0.8, "v3": 0.6}
    assert {c.version: c.status for c in reg.cards()} == {"v1": "retired", "v2": "live", "v3": "canary"}
    assert asyncio.run(promoter.rollback(by="test")) == "v1"
    assert reg.live() == "v1" and [c.status for c in reg.cards()].count("live") == 1
    assert [c[:2] for c in act.calls] == [
        ("activate", "student@v1"),
        ("activate", "student@v2"),
        ("canary", "student@v3"),
        ("activate", "student@v1"),
    ]


def test_a_corrupt_file_on_s3_is_refused_and_live_is_unchanged(
    s3: S3Server,
    adapter_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    reg = _registry(s3)
    reg.register(adapter_dir, _card())
    reg.register(adapter_dir, _card())
    cache_dir = tmp_path / "cache"
    promoter = Promoter(reg, RecordingActivator(), AdapterCache(cache_dir))
    asyncio.run(promoter.promote("v1", by="test"))
    weights = f"{reg.version_path('v2')}/adapter_model.safetensors"
    data = bytearray(reg.fs.cat_file(weights))
    data[-1] ^= 0xFF  # one flipped bit, as a torn upload or a bad disk leaves it
    reg.fs.pipe_file(weights, bytes(data))
    with pytest.raises(AdapterRejected, match="checksum"):
        asyncio.run(promoter.promote("v2", by="test"))
    with pytest.raises(AdapterRejected, match="checksum"):
        asyncio.run(promoter.canary("v2", 0.1, by="test"))
    assert reg.live() == "v1" and reg.state().canary is None
    # The cache kept no partial copy of the corrupt version, only v1's.
    with pytest.raises(AdapterRejected, match="checksum"):
        AdapterCache(tmp_path / "other-cache").materialise(reg, "v2")
    assert list((tmp_path / "other-cache").iterdir()) == []


def test_a_missing_object_on_s3_is_refused(s3: S3Server, adapter_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    reg = _registry(s3)
    for _ in range(3):
        reg.register(adapter_dir, _card())
    promoter = Promoter(reg, RecordingActivator(), AdapterCache(tmp_path / "cache"))
    asyncio.run(promoter.promote("v1", by="test"))
    reg.fs.rm(f"{reg.version_path('v2')}/adapter_model.safetensors")
    with pytest.raises(AdapterRejected, match=r"lacks adapter_model\.safetensors"):
        asyncio.run(promoter.promote("v2", by="test"))
    with pytest.raises(AdapterRejected, match=r"lacks adapter_model\.safetensors"):
        AdapterCache(tmp_path / "c2").materialise(reg, "v2")
    reg.fs.rm(f"{reg.version_path('v3')}/card.json")  # without its card a folder is no version
    assert reg.versions() == ["v1", "v2"]
    with pytest.raises(VersionNotFound):
        asyncio.run(promoter.promote("v3", by="test"))
    with pytest.raises(VersionNotFound):
        asyncio.run(promoter.promote("v9", by="test"))
    assert reg.live() == "v1"
