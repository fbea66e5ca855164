"""Add a finished export under ``versions/vN/exports/<format>-<quant>/`` with nothing half-written.

Local registry: the files are copied into the registry's ``staging/`` (same filesystem), fsynced,
then renamed into place in one step. Object store: the files go first and the card last, and a
folder without its card is not an export (the rule the registry uses for versions); on a failure
what was put is deleted. A full disk (``ENOSPC``/``EDQUOT``) is reported as ``NoSpaceLeft``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson

from distillserve.adapters.registry import AdapterRegistry
from distillserve.export.card import EXPORT_CARD, ExportCard, card_bytes
from distillserve.export.errors import ExportError, NoSpaceLeft

EXPORTS = "exports"
_FULL = (errno.ENOSPC, errno.EDQUOT)


def exports_path(registry: AdapterRegistry, version: str) -> str:
    return posixpath.join(registry.version_path(version), EXPORTS)


@contextlib.contextmanager
def disk_full_is_clear(where: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL:
            raise NoSpaceLeft(f"no space left on the device of {where}: the export was not kept") from None
        raise


def copy_files(src: Path, dst: Path) -> None:
    """Copy a folder file by file: an ``OSError`` (ENOSPC) comes out as itself, where
    ``shutil.copytree`` would gather it into a ``shutil.Error`` and carry on with the rest."""
    for f in sorted(src.rglob("*")):
        target = dst / f.relative_to(src)
        if f.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)


def publish(registry: AdapterRegistry, built: Path, card: ExportCard) -> str:
    """Add ``built`` (the export's files) and its card to the registry; returns the final path."""
    final = posixpath.join(exports_path(registry, card.source_version), card.name)
    if registry.fs.exists(posixpath.join(final, EXPORT_CARD)):
        raise ExportError(f"{card.source_version} already has a {card.name} export at {final}")
    with disk_full_is_clear(registry.url):
        if registry.local:
            _publish_local(registry, built, card, final)
        else:
            _publish_remote(registry, built, card, final)
    return final


def _publish_local(registry: AdapterRegistry, built: Path, card: ExportCard, final: str) -> None:
    staging = Path(registry.root) / "staging" / f"export-{card.name}-{uuid.uuid4().hex}"
    try:
        copy_files(built, staging)
        (staging / EXPORT_CARD).write_bytes(card_bytes(card))
        for f in staging.rglob("*"):
            if f.is_file():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, final)  # the export appears whole, or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish_remote(registry: AdapterRegistry, built: Path, card: ExportCard, final: str) -> None:
    try:
        for f in sorted(p for p in built.rglob("*") if p.is_file()):
            registry.fs.put_file(str(f), posixpath.join(final, f.relative_to(built).as_posix()))
        registry.fs.pipe_file(posixpath.join(final, EXPORT_CARD), card_bytes(card))  # last: visible
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            registry.fs.rm(final, recursive=True)
        raise


def copy_out(built: Path, card: ExportCard, out: Path) -> Path:
    """Also write the export to ``out/<format>-<quant>/`` (for a device), atomically as well."""
    target = out / card.name
    if target.exists():
        raise ExportError(f"{target} already exists")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{card.name}.{uuid.uuid4().hex}.tmp"
    with disk_full_is_clear(str(out)):
        try:
            copy_files(built, tmp)
            (tmp / EXPORT_CARD).write_bytes(card_bytes(card))
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def list_exports(registry: AdapterRegistry, version: str) -> list[ExportCard]:
    """The complete exports of ``version`` (a folder without its card is not one), by name."""
    root = exports_path(registry, version)
    try:
        entries = registry.fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    cards = []
    for entry in entries:
        card_path = posixpath.join(entry.rstrip("/"), EXPORT_CARD)
        if registry.fs.exists(card_path):
            cards.append(ExportCard.model_validate(orjson.loads(registry.fs.cat_file(card_path))))
    return sorted(cards, key=lambda c: c.name)
