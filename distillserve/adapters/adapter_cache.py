"""Local copies of registry versions, by content hash, for engines that load from a path.

A registry on the local disk is used in place (its version folders never change once
published); its files are still checked against the card before an engine sees them.

vLLM and peft load a PEFT folder from the file system; a registry on S3 (or any fsspec store)
is not one. ``materialise`` copies a version's files into ``<cache>/<hash>/``, where the hash
covers the card's file digests: the same content always lands in the same folder (gateways on
one host share it, a second call is free), other content never does. Every file is checked
against its SHA-256 on the card while it is copied, and the folder appears by one rename, so
an engine never sees a half-copied or corrupt adapter.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import shutil
import uuid
from pathlib import Path

import orjson

from distillserve.adapters.registry import (
    ADAPTER_FILES,
    CARD,
    AdapterCard,
    AdapterRegistry,
    AdapterRejected,
    sha256_file,
)
from distillserve.config import cache_dir

log = logging.getLogger(__name__)


def content_key(card: AdapterCard) -> str:
    """The folder name of a version's content: a hash of its files' digests and its base."""
    h = hashlib.sha256(card.base_model.encode())
    for name in sorted(card.files):
        h.update(f"\0{name}\0{card.files[name]}".encode())
    return h.hexdigest()[:32]


class AdapterCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else cache_dir() / "adapter-cache"

    def materialise(self, registry: AdapterRegistry, version: str) -> Path:
        """A local folder holding ``version``'s checked files (and its card, which names the base
        for the gateway's validator). ``AdapterRejected`` when a file is missing or corrupt,
        ``VersionNotFound`` when the version is unknown."""
        card = registry.card(version)
        missing = [f for f in ADAPTER_FILES if f not in card.files]
        if missing:
            raise AdapterRejected(f"{version}'s card lists no checksum for {', '.join(missing)}")
        if registry.local:  # already a folder on this host, immutable once published: check it
            folder = Path(registry.version_path(version))
            self._check(version, card, folder)
            return folder
        final = self.root / content_key(card)
        if final.is_dir():
            return final
        staging = self.root / f".{final.name}.{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            self._fetch(registry, version, card, staging)
            try:
                os.rename(staging, final)  # the folder appears whole, or not at all
            except OSError:
                if not final.is_dir():  # another gateway on this host won the race: same content
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("materialised %s of %s in %s", version, registry.base_model, final)
        return final

    @staticmethod
    def _check(version: str, card: AdapterCard, folder: Path) -> None:
        for name in ADAPTER_FILES:
            if not (folder / name).is_file():
                raise AdapterRejected(f"{version} lacks {name} in the registry")
            if sha256_file(folder / name) != card.files[name]:
                raise AdapterRejected(f"{version}/{name} does not match its checksum on the card (corrupt)")

    def _fetch(self, registry: AdapterRegistry, version: str, card: AdapterCard, into: Path) -> None:
        src = registry.version_path(version)
        for name in ADAPTER_FILES:
            try:
                registry.fs.get_file(posixpath.join(src, name), str(into / name))
            except FileNotFoundError:
                raise AdapterRejected(f"{version} lacks {name} in the registry") from None
        self._check(version, card, into)
        (into / CARD).write_bytes(orjson.dumps(card.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
