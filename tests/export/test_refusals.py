"""Bad input to an export: each refused with a clear error, and nothing half-written left behind
in the registry (no export folder, nothing in staging) nor in the temporary folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from distillserve.adapters.registry import AdapterRegistry, AdapterRejected, VersionNotFound
from distillserve.export.errors import ExportError, NoSpaceLeft, UnsupportedArchitecture
from distillserve.export.pipeline import Exporter, ExportRequest
from distillserve.export.publish import exports_path, list_exports
from tests.export.tiny_registry import tiny_registry


def assert_nothing_left(registry: AdapterRegistry, version: str, workdir: Path) -> None:
    assert not registry.fs.exists(exports_path(registry, version))
    assert registry.fs.ls(posix_staging(registry), detail=False) == []
    assert list(workdir.iterdir()) == []


def posix_staging(registry: AdapterRegistry) -> str:
    return f"{registry.root}/staging"


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[AdapterRegistry, str, Path]:
    registry, version = tiny_registry(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    return registry, version, work


def test_unknown_version_is_refused(tiny: tuple[AdapterRegistry, str, Path]) -> None:
    registry, _, work = tiny
    with pytest.raises(VersionNotFound, match="v9"):
        Exporter(registry, work).export(ExportRequest("v9", "merged"))
    with pytest.raises(VersionNotFound):
        Exporter(registry, work).export(ExportRequest("../v1", "merged"))
    assert list(work.iterdir()) == []


def test_corrupt_adapter_fails_its_checksum(tiny: tuple[AdapterRegistry, str, Path]) -> None:
    registry, version, work = tiny
    weights = Path(registry.version_path(version)) / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(AdapterRejected, match="checksum"):
        Exporter(registry, work).export(ExportRequest(version, "merged"))
    assert_nothing_left(registry, version, work)


def test_gguf_refuses_an_architecture_it_cannot_convert(tiny: tuple[AdapterRegistry, str, Path]) -> None:
    registry, version, work = tiny  # the tiny student is a Qwen2ForCausalLM
    with pytest.raises(UnsupportedArchitecture, match="Qwen2ForCausalLM"):
        Exporter(registry, work).export(ExportRequest(version, "gguf", "f16"))
    assert_nothing_left(registry, version, work)


def test_unknown_format_and_quant_are_refused(tiny: tuple[AdapterRegistry, str, Path]) -> None:
    registry, version, work = tiny
    with pytest.raises(ExportError, match="unknown format 'tflite'"):
        Exporter(registry, work).export(ExportRequest(version, "tflite"))
    with pytest.raises(ExportError, match="not 'q3'"):
        Exporter(registry, work).export(ExportRequest(version, "onnx", "q3"))
    assert_nothing_left(registry, version, work)


@contextlib.contextmanager
def tiny_disk(mountpoint: Path, size_kb: int) -> Iterator[Path]:
    """A real filesystem of ``size_kb`` (a tmpfs; needs root): writes past it fail with ENOSPC."""
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mountpoint)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def test_full_disk_leaves_no_half_written_export(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", 512) as disk:
        registry, version = tiny_registry(tmp_path, str(disk / "registry"))
        # Fill the disk but for a few KB: the version is there, its export cannot fit.
        free = shutil.disk_usage(disk).free
        with open(disk / "filler", "wb") as fh:
            with contextlib.suppress(OSError):
                fh.write(b"\0" * (free - 8 * 1024))
            fh.flush()
            os.fsync(fh.fileno())
        work = tmp_path / "work"
        work.mkdir()
        with pytest.raises(NoSpaceLeft, match="no space left"):
            Exporter(registry, work).export(ExportRequest(version, "merged", "f32"))
        assert_nothing_left(registry, version, work)
        (disk / "filler").unlink()
        card, _ = Exporter(registry, work).export(ExportRequest(version, "merged", "f32"))
        assert [c.name for c in list_exports(registry, version)] == [card.name]
