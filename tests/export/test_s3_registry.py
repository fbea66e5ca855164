"""An export of a version kept on a real S3 server (moto in server mode): the files go up first,
the card last, and a failed upload leaves no export behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from distillserve.export.card import EXPORT_CARD
from distillserve.export.pipeline import Exporter, ExportRequest
from distillserve.export.publish import exports_path, list_exports
from tests.export.tiny_registry import tiny_registry
from tests.support.s3 import start_s3


def test_export_to_an_s3_registry(tmp_path: Path) -> None:
    with start_s3(tmp_path) as s3:
        s3.create_bucket("registry")
        registry, version = tiny_registry(tmp_path, "s3://registry/students", **s3.storage_options())
        work = tmp_path / "work"
        work.mkdir()
        card, path = Exporter(registry, work).export(ExportRequest(version, "onnx", "fp32"))
        assert registry.fs.exists(f"{path}/{EXPORT_CARD}")
        for name, digest in card.files.items():
            assert hashlib.sha256(registry.fs.cat_file(f"{path}/{name}")).hexdigest() == digest
        assert [c.name for c in list_exports(registry, version)] == ["onnx-fp32"]
        assert card.accuracy.agreement == 1.0 and card.accuracy.runtime == "onnxruntime"
        assert list(work.iterdir()) == []


def test_failed_upload_leaves_no_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with start_s3(tmp_path) as s3:
        s3.create_bucket("registry")
        registry, version = tiny_registry(tmp_path, "s3://registry/students", **s3.storage_options())
        # A fake fault: S3 cannot be made to fail the card's PUT on demand, so the card's upload
        # raises after the model files went up; the uploaded files must be deleted again.
        real_pipe = registry.fs.pipe_file

        def failing_pipe(path: str, *args: object, **kwargs: object) -> None:
            if path.endswith(EXPORT_CARD):
                raise ConnectionError("connection reset while uploading the card")
            real_pipe(path, *args, **kwargs)

        monkeypatch.setattr(registry.fs, "pipe_file", failing_pipe)
        with pytest.raises(ConnectionError):
            Exporter(registry, tmp_path).export(ExportRequest(version, "merged", "f32"))
        assert not registry.fs.exists(exports_path(registry, version))
        assert list_exports(registry, version) == []
