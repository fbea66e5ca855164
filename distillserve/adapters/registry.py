"""The adapter registry: versions of the student's LoRA adapter, in PEFT format, with cards.

Layout under the registry URL (a local directory or any fsspec URL), one folder per base model::

    <base>/versions/v7/adapter_model.safetensors, adapter_config.json, card.json
    <base>/state.json        live version, canary and its share, drift baselines, the log of every
                             transition: what every gateway polls and converges on (``registry_sync``)
    <base>/staging/...       versions being written (never listed)
    <base>/golden/v1.jsonl   the golden regression slice of the deployment's own traffic, one
    <base>/golden/v1.json    immutable file per version and its manifest (count, SHA-256)
    <base>/runs/skipped-*.json  cards of runs that trained nothing, and why
    <base>/router/<version|base>/<sha16>/classifier.npz, card.json
                             the learned router's classifier fitted to that adapter version, named
                             by ``state.json``'s ``router_model``: what every gateway routes with

A version is visible only once complete: locally it is written in ``staging`` and renamed into
``versions`` in one step; on object stores the card is written last and a folder without a card
is not a version. ``state.json`` is the single source of truth for which version is live (so
there is exactly one per base) and is replaced atomically; cards mirror the status for people.
Each file's SHA-256 is on the card, so corrupt files are caught before a version is promoted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import fsspec
import orjson
from fsspec.utils import get_protocol
from pydantic import BaseModel, Field

from distillserve.adapters.eval_scores import score_of

log = logging.getLogger(__name__)

Status = Literal["candidate", "canary", "live", "retired"]
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
CARD = "card.json"


class RegistryError(RuntimeError):
    """A registry operation was refused; the message says why."""


class VersionNotFound(RegistryError):
    pass


class AdapterRejected(RegistryError):
    """The version's files or card are not fit to serve (corrupt, incomplete, other base)."""


class OffsetRange(BaseModel):
    topic: str
    partition: int
    first: int  # inclusive
    last: int  # inclusive


class Transition(BaseModel):
    at: float
    version: str
    to: Status
    by: str  # "distiller", "admin-api", "cli", ...
    reason: str = ""


class AdapterCard(BaseModel):
    version: str = ""
    base_model: str
    parent: str | None = None
    created_at: float = Field(default_factory=time.time)
    offsets: list[OffsetRange] = Field(default_factory=list)
    records: dict[str, Any] = Field(default_factory=dict)
    losses: dict[str, float] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)
    gate: dict[str, Any] | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)  # name -> sha256
    status: Status = "candidate"
    history: list[Transition] = Field(default_factory=list)
    # Where the run's regression set and replayed data came from (golden slice, file, testbed...).
    data_sources: dict[str, Any] = Field(default_factory=dict)


class GoldenSetInfo(BaseModel):
    """The manifest of one immutable version of a base model's golden regression slice."""

    version: str
    n: int
    sha256: str
    # Holds the configured size: the slice is frozen and no later version is written.
    complete: bool
    created_at: float = Field(default_factory=time.time)


class SkippedRunCard(BaseModel):
    """A run that trained nothing: its records were consumed (offsets committed), and why."""

    run_id: str = ""
    base_model: str
    status: Literal["skipped"] = "skipped"
    reason: str
    created_at: float = Field(default_factory=time.time)
    offsets: list[OffsetRange] = Field(default_factory=list)
    records: dict[str, Any] = Field(default_factory=dict)
    data_sources: dict[str, Any] = Field(default_factory=dict)


ROUTER_MODEL_FILE = "classifier.npz"


class RouterModelRef(BaseModel):
    """The learned router's classifier the whole fleet routes with (``state.router_model``)."""

    adapter_version: str | None = None  # the version it was fitted to; None = the base student
    sha256: str
    published_at: float = Field(default_factory=time.time)
    by: str = ""  # which gateway fitted and published it

    @property
    def folder(self) -> str:
        """Relative to the base's folder; built from the version and the hash, never read from the
        state, so a tampered state cannot point outside ``router/``."""
        return posixpath.join(
            "router",
            _checked(self.adapter_version) if self.adapter_version else "base",
            _hex(self.sha256)[:16],
        )


class StaleRouterModel(RegistryError):
    """A classifier fitted to a version that is no longer live: publishing it is refused."""


class RegistryState(BaseModel):
    live: str | None = None
    canary: str | None = None
    canary_share: float = 0.0
    log: list[Transition] = Field(default_factory=list)
    # Each promoted version's eval agreement with the teacher: every gateway's drift baseline.
    baselines: dict[str, float] = Field(default_factory=dict)
    # The learned router's classifier every gateway loads (``router.published_model``).
    router_model: RouterModelRef | None = None

    def retired_since(self, version: str) -> float | None:
        """When ``version`` last stopped being live or canary; None while it serves (or never did)."""
        if version in (self.live, self.canary):
            return None
        ends = [t.at for t in self.log if t.version == version and t.to == "retired"]
        return max(ends) if ends else None


def base_slug(base_model: str) -> str:
    """A folder name for a base model id (``/models/Qwen2.5-0.5B`` → ``Qwen2.5-0.5B``)."""
    name = base_model.rstrip("/").rsplit("/", 1)[-1] or "base"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version_number(v: str) -> int:
    m = re.fullmatch(r"v(\d+)", v)
    return int(m.group(1)) if m else -1


def _checked(version: str) -> str:
    """``version`` if it names a version (``vN``); anything else (``..``, a path) is no version, so
    no caller can reach a file outside ``versions/``."""
    if _version_number(version) < 0:
        raise VersionNotFound(f"no version {version!r}")
    return version


def _hex(digest: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise AdapterRejected(f"not a SHA-256: {digest!r}")
    return digest


class AdapterRegistry:
    """All versions of the adapters of one base model."""

    def __init__(
        self,
        url: str,
        base_model: str,
        *,
        adapter_prefix: str = "student",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.base_model = base_model
        self.adapter_prefix = adapter_prefix
        options = dict(storage_options or {})
        if get_protocol(url) not in ("file", "local"):
            # Other pods write this store: never answer a listing from a stale cache.
            options.setdefault("use_listings_cache", False)
        self.fs, root = fsspec.core.url_to_fs(url, **options)
        self.local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        self.root = posixpath.join(root, base_slug(base_model))
        self.fs.makedirs(self._p("versions"), exist_ok=True)
        self.fs.makedirs(self._p("staging"), exist_ok=True)

    # -- paths ----------------------------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def version_path(self, version: str) -> str:
        return self._p("versions", _checked(version))

    def local_path(self, version: str) -> str:
        """A path engines can load: the folder itself, or the URL for remote stores."""
        p = self.version_path(version)
        return p if self.local else self.fs.unstrip_protocol(p)

    def adapter_name(self, version: str) -> str:
        """The name a version is served under; unique per version (vLLM caches by name)."""
        return f"{self.adapter_prefix}@{version}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers on a local registry (distiller and gateway may both write)."""
        if not self.local:
            yield  # object stores: one writer per base is the deployment rule
            return
        from filelock import FileLock

        with FileLock(self._p(".lock"), timeout=60):
            yield

    # -- reading --------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Complete versions, oldest first."""
        try:
            entries = self.fs.ls(self._p("versions"), detail=False)
        except FileNotFoundError:
            return []
        out = [posixpath.basename(e.rstrip("/")) for e in entries]
        out = [v for v in out if _version_number(v) >= 0 and self.fs.exists(self._p("versions", v, CARD))]
        return sorted(out, key=_version_number)

    def state(self) -> RegistryState:
        p = self._p("state.json")
        try:
            return RegistryState.model_validate(orjson.loads(self.fs.cat_file(p)))
        except FileNotFoundError:
            return RegistryState()

    def state_fingerprint(self) -> str | None:
        """What changes whenever ``state.json`` is replaced: its ETag on object stores, its inode,
        mtime and size on a local disk (``os.replace`` gives a new inode). One HEAD/stat, no body:
        what every gateway polls. None while there is no state yet."""
        p = self._p("state.json")
        self.fs.invalidate_cache(p)  # s3fs caches object info; a poll must see the store
        try:
            info = self.fs.info(p)
        except FileNotFoundError:
            return None
        etag = info.get("ETag") or info.get("etag")
        if etag:
            return str(etag)
        return f"{info.get('ino')}:{info.get('mtime')}:{info.get('size')}"

    def status_of(self, version: str, state: RegistryState | None = None) -> Status:
        st = state or self.state()
        if st.live == version:
            return "live"
        if st.canary == version:
            return "canary"
        if any(t.version == version and t.to in ("live", "canary") for t in st.log):
            return "retired"
        return "candidate"

    def card(self, version: str) -> AdapterCard:
        p = self._p("versions", _checked(version), CARD)
        if not self.fs.exists(p):
            raise VersionNotFound(f"no version {version!r} of {self.base_model}")
        card = AdapterCard.model_validate(orjson.loads(self.fs.cat_file(p)))
        card.status = self.status_of(version)  # state.json decides, even if a card update was cut short
        return card

    def cards(self) -> list[AdapterCard]:
        return [self.card(v) for v in self.versions()]

    def live(self) -> str | None:
        return self.state().live

    # -- writing --------------------------------------------------------------------------------
    def _write_atomic(self, path: str, data: bytes) -> None:
        if self.local:
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)  # one object PUT is atomic on object stores

    def register(self, adapter_dir: str | Path, card: AdapterCard) -> AdapterCard:
        """Publish the PEFT adapter in ``adapter_dir`` as the next version; returns its card."""
        src = Path(adapter_dir)
        missing = [f for f in ADAPTER_FILES if not (src / f).is_file()]
        if missing:
            raise AdapterRejected(f"adapter folder {src} lacks {', '.join(missing)}")
        if card.base_model != self.base_model:
            raise AdapterRejected(
                f"card is for base {card.base_model!r}, registry is for {self.base_model!r}"
            )
        card.files = {f: sha256_file(src / f) for f in ADAPTER_FILES}
        with self._locked():
            existing = self.versions()
            version = f"v{(_version_number(existing[-1]) if existing else 0) + 1}"
            card.version, card.status = version, "candidate"
            card.history.append(Transition(at=time.time(), version=version, to="candidate", by="distiller"))
            blob = orjson.dumps(card.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
            staging = self._p("staging", f"{version}.{uuid.uuid4().hex}")
            final = self.version_path(version)
            if self.local:
                Path(staging).mkdir(parents=True)
                for f in ADAPTER_FILES:
                    shutil.copyfile(src / f, Path(staging) / f)
                (Path(staging) / CARD).write_bytes(blob)
                _fsync_dir_files(Path(staging))
                os.rename(staging, final)  # the version appears whole, or not at all
            else:
                for f in ADAPTER_FILES:
                    self.fs.put_file(str(src / f), posixpath.join(final, f))
                self.fs.pipe_file(posixpath.join(final, CARD), blob)  # last: makes the version visible
        log.info("registered %s of %s", version, self.base_model)
        return card

    def update_card(self, version: str, **fields: Any) -> AdapterCard:
        with self._locked():
            card = self.card(version)
            for k, v in fields.items():
                setattr(card, k, v)
            self._write_atomic(self._p("versions", version, CARD), _card_bytes(card))
            return card

    def clean_staging(self) -> int:
        """Remove what a killed writer left in ``staging``; returns how many entries went."""
        n = 0
        with self._locked():
            for e in self.fs.ls(self._p("staging"), detail=False):
                self.fs.rm(e, recursive=True)
                n += 1
        return n

    # -- golden regression slice ----------------------------------------------------------------
    def golden_sets(self) -> list[GoldenSetInfo]:
        """Versions of the golden slice, oldest first (a version without its manifest is not one)."""
        try:
            entries = self.fs.ls(self._p("golden"), detail=False)
        except FileNotFoundError:
            return []
        manifests = [
            e for e in entries if e.endswith(".json") and _version_number(posixpath.basename(e)[:-5]) >= 0
        ]
        infos = [GoldenSetInfo.model_validate(orjson.loads(self.fs.cat_file(m))) for m in manifests]
        return sorted(infos, key=lambda i: _version_number(i.version))

    def latest_golden(self) -> GoldenSetInfo | None:
        sets = self.golden_sets()
        return sets[-1] if sets else None

    def read_golden(self, version: str) -> bytes:
        """The JSONL rows of a golden version, checked against the SHA-256 of its manifest."""
        info = next((i for i in self.golden_sets() if i.version == version), None)
        if info is None:
            raise VersionNotFound(f"no golden set {version!r} of {self.base_model}")
        data = self.fs.cat_file(self._p("golden", f"{version}.jsonl"))
        if hashlib.sha256(data).hexdigest() != info.sha256:
            raise AdapterRejected(f"golden set {version} does not match its checksum (corrupt)")
        return data

    def write_golden(self, rows: bytes, *, n: int, complete: bool) -> GoldenSetInfo:
        """Publish ``rows`` (JSONL, ``n`` rows) as the next golden version; the manifest goes last."""
        with self._locked():
            latest = self.latest_golden()
            version = f"v{(_version_number(latest.version) if latest else 0) + 1}"
            info = GoldenSetInfo(
                version=version, n=n, sha256=hashlib.sha256(rows).hexdigest(), complete=complete
            )
            self.fs.makedirs(self._p("golden"), exist_ok=True)
            self._write_atomic(self._p("golden", f"{version}.jsonl"), rows)
            self._write_atomic(
                self._p("golden", f"{version}.json"), orjson.dumps(info.model_dump(mode="json"))
            )
        log.info(
            "golden set %s of %s: %d rows%s", version, self.base_model, n, " (frozen)" if complete else ""
        )
        return info

    # -- runs that trained nothing ----------------------------------------------------------------
    def record_skipped_run(self, card: SkippedRunCard) -> SkippedRunCard:
        """Keep the card of a run that trained nothing, so people see why its records produced no version."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(card.created_at))
        card.run_id = f"skipped-{stamp}-{uuid.uuid4().hex[:8]}"
        self.fs.makedirs(self._p("runs"), exist_ok=True)
        self._write_atomic(
            self._p("runs", f"{card.run_id}.json"),
            orjson.dumps(card.model_dump(mode="json"), option=orjson.OPT_INDENT_2),
        )
        return card

    def skipped_runs(self) -> list[SkippedRunCard]:
        """Cards of skipped runs, oldest first."""
        try:
            entries = self.fs.ls(self._p("runs"), detail=False)
        except FileNotFoundError:
            return []
        cards = [
            SkippedRunCard.model_validate(orjson.loads(self.fs.cat_file(e)))
            for e in entries
            if posixpath.basename(e).startswith("skipped-") and e.endswith(".json")
        ]
        return sorted(cards, key=lambda c: c.created_at)

    # -- the learned router's classifier ---------------------------------------------------------
    def publish_router_model(
        self, data: bytes, card: dict[str, Any], *, adapter_version: str | None, by: str
    ) -> RouterModelRef:
        """Publish a router classifier fitted to ``adapter_version`` (None: the base student) and name
        it in the state, so every gateway loads it. The files go first (a folder per content hash,
        never overwritten), the state last; refused with ``StaleRouterModel`` when the live version
        changed meanwhile (the classifier describes a student that no longer serves)."""
        ref = RouterModelRef(adapter_version=adapter_version, sha256=hashlib.sha256(data).hexdigest(), by=by)
        folder = self._p(ref.folder)
        self.fs.makedirs(folder, exist_ok=True)
        self._write_atomic(posixpath.join(folder, ROUTER_MODEL_FILE), data)
        full_card = {
            **card,
            "adapter_version": adapter_version,
            "sha256": ref.sha256,
            "by": by,
            "written_at": time.time(),
        }
        self._write_atomic(posixpath.join(folder, CARD), orjson.dumps(full_card, option=orjson.OPT_INDENT_2))
        with self._locked():
            state = self.state()
            if state.live != adapter_version:
                raise StaleRouterModel(
                    f"router classifier fitted to {adapter_version or 'the base student'}, "
                    f"but {state.live or 'the base student'} is live now"
                )
            ref.published_at = time.time()  # when the state names it: from here gateways converge
            state.router_model = ref
            self._write_atomic(
                self._p("state.json"), orjson.dumps(state.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
            )
        log.info(
            "router classifier %s published for %s by %s", ref.sha256[:12], adapter_version or "base", by
        )
        return ref

    def read_router_model(self, ref: RouterModelRef) -> bytes:
        """The classifier ``ref`` names, checked against its SHA-256 (``AdapterRejected`` if corrupt)."""
        try:
            data = self.fs.cat_file(self._p(ref.folder, ROUTER_MODEL_FILE))
        except FileNotFoundError:
            raise VersionNotFound(f"router classifier {ref.folder} is missing") from None
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise AdapterRejected(f"router classifier {ref.folder} does not match its checksum (corrupt)")
        return data

    def router_model_card(self, ref: RouterModelRef) -> dict[str, Any]:
        return orjson.loads(self.fs.cat_file(self._p(ref.folder, CARD)))

    # -- validation -----------------------------------------------------------------------------
    def validate(self, version: str) -> AdapterCard:
        """Refuse a version that is incomplete, corrupt or made for another base model."""
        card = self.card(version)
        if card.base_model != self.base_model:
            raise AdapterRejected(f"{version} was trained for {card.base_model!r}, not {self.base_model!r}")
        for f in ADAPTER_FILES:
            p = self._p("versions", version, f)
            if not self.fs.exists(p):
                raise AdapterRejected(f"{version} lacks {f}")
            digest = hashlib.sha256(self.fs.cat_file(p)).hexdigest()
            if card.files.get(f) != digest:
                raise AdapterRejected(f"{version}/{f} does not match its checksum on the card (corrupt)")
        try:
            cfg = orjson.loads(self.fs.cat_file(self._p("versions", version, "adapter_config.json")))
        except orjson.JSONDecodeError as exc:
            raise AdapterRejected(f"{version}/adapter_config.json is not JSON: {exc}") from None
        if cfg.get("peft_type") != "LORA":
            raise AdapterRejected(f"{version} is not a LoRA adapter (peft_type={cfg.get('peft_type')!r})")
        return card

    # -- lifecycle ------------------------------------------------------------------------------
    def _transition(self, state: RegistryState, version: str, to: Status, by: str, reason: str) -> Transition:
        t = Transition(at=time.time(), version=version, to=to, by=by, reason=reason)
        state.log.append(t)
        return t

    def _commit_state(self, state: RegistryState, changed: dict[str, Transition]) -> None:
        self._write_atomic(
            self._p("state.json"), orjson.dumps(state.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
        )
        for version, t in changed.items():  # mirror on the cards (state.json already decides)
            card = self.card(version)
            card.history.append(t)
            card.status = self.status_of(version, state)
            self._write_atomic(self._p("versions", version, CARD), _card_bytes(card))

    def mark_live(
        self, version: str, *, by: str, reason: str = "", baseline: float | None = None
    ) -> str | None:
        """Record ``version`` as the one live version; the former live is retired. Returns it.
        ``baseline``: its eval agreement with the teacher, the fleet's drift baseline."""
        with self._locked():
            self.card(version)
            state = self.state()
            old = state.live
            if old == version:
                return old
            if baseline is not None:
                state.baselines[version] = baseline
            changed = {version: self._transition(state, version, "live", by, reason)}
            if old is not None:
                changed[old] = self._transition(state, old, "retired", by, f"replaced by {version}")
            state.live = version
            if state.canary == version:
                state.canary, state.canary_share = None, 0.0
            self._commit_state(state, changed)
        log.info("%s is live for %s (was %s) by %s: %s", version, self.base_model, old, by, reason)
        return old

    def mark_canary(
        self, version: str | None, share: float, *, by: str, reason: str = "", baseline: float | None = None
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise RegistryError(f"canary share must be in [0, 1], got {share}")
        with self._locked():
            state = self.state()
            changed: dict[str, Transition] = {}
            if version is not None:
                self.card(version)
                if version == state.live:
                    raise RegistryError(f"{version} is already live")
                if baseline is not None:
                    state.baselines[version] = baseline
                changed[version] = self._transition(
                    state, version, "canary", by, f"share {share:.2f}. {reason}"
                )
            if state.canary is not None and state.canary != version:
                changed[state.canary] = self._transition(state, state.canary, "retired", by, "canary ended")
            state.canary, state.canary_share = (version, share) if version else (None, 0.0)
            self._commit_state(state, changed)

    def rollback_target(self) -> str:
        """The version that was live before the current one."""
        state = self.state()
        lives = [t.version for t in state.log if t.to == "live"]
        previous = [v for v in lives if v != state.live]
        if not previous:
            raise RegistryError("nothing to roll back to: no earlier live version")
        return previous[-1]


def _card_bytes(card: AdapterCard) -> bytes:
    return orjson.dumps(card.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


def _fsync_dir_files(d: Path) -> None:
    for f in d.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())


def diff_eval(a: AdapterCard, b: AdapterCard) -> dict[str, Any]:
    """Per-set scores of two versions as measured when each was evaluated, and b − a.

    Both cards also carry the live version's score on their own items; those pairs are the
    like-for-like comparison, the cross-card numbers are on different held-out items.
    """
    out: dict[str, Any] = {"a": a.version, "b": b.version, "sets": {}}
    ca, cb = a.eval.get("candidate", {}), b.eval.get("candidate", {})
    for name in sorted(set(ca) | set(cb)):
        ea, eb = score_of(ca, name), score_of(cb, name)
        out["sets"][name] = {
            "a": ea,
            "b": eb,
            "delta": None if ea is None or eb is None else round(eb - ea, 4),
        }
    out["losses"] = {"a": a.losses, "b": b.losses}
    return out
