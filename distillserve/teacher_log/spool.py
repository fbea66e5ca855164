"""A durable local spool: what the broker could not take yet, kept on disk in order.

Layout of the spool directory:
- ``NNNNNNNNNNNNNNNNNNNN.seg``: append-only segments. Each entry is a frame
  ``length (u32 BE) | crc32c(payload) (u32 BE) | payload``.
- ``cursor``: ``segment offset`` of the first entry not yet delivered (written atomically).
- ``lock``: an exclusive ``flock`` so two processes never share one spool.

A process killed mid-write leaves a torn last frame; opening the spool detects it (short
frame or checksum mismatch) and cuts it off. A damaged frame inside an older segment ends
that segment (the rest of it cannot be framed again) and is counted as dropped. Segments are
deleted once every entry in them was delivered. When the disk budget is exhausted, new
entries are dropped and counted, never silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import crc32c

from distillserve.monitoring import metrics

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">II")
_SUFFIX = ".seg"


class SpoolLockedError(RuntimeError):
    """Another process holds this spool directory."""


@dataclass(frozen=True, order=True)
class SpoolPosition:
    segment: int
    offset: int


@dataclass
class SpoolBatch:
    """Entries read from the cursor on; ``ends[i]`` is the position just after entry ``i``."""

    payloads: list[bytes] = field(default_factory=list)
    ends: list[SpoolPosition] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.payloads)


class DiskSpool:
    """Append-only segment files with a delivery cursor. Thread-safe."""

    def __init__(self, directory: str | Path, max_bytes: int, segment_bytes: int = 16 << 20) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        self._lock_fh = open(self.directory / "lock", "a+b")  # noqa: SIM115 - held for the spool's life
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise SpoolLockedError(f"spool {self.directory} is in use by another process") from None
        self._sizes: dict[int, int] = {}
        for p in sorted(self.directory.glob(f"*{_SUFFIX}")):
            self._sizes[int(p.stem)] = p.stat().st_size
        self._cursor = self._load_cursor()
        for seg in [s for s in self._sizes if s < self._cursor.segment]:
            self._delete(seg)
        if not self._sizes:
            self._sizes[self._cursor.segment] = 0
        self._active = max(self._sizes)
        self._repair_tail()
        self._fd = os.open(self._path(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._dirty = False
        self._update_gauge()

    # --- paths and cursor ---------------------------------------------------------------------
    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:020d}{_SUFFIX}"

    def _load_cursor(self) -> SpoolPosition:
        path = self.directory / "cursor"
        first = min(self._sizes, default=0)
        try:
            seg, off = (int(x) for x in path.read_text().split())
        except (FileNotFoundError, ValueError):
            return SpoolPosition(first, 0)
        if seg < first:  # the cursor's segment is gone: it was fully delivered
            return SpoolPosition(first, 0)
        return SpoolPosition(seg, off)

    def _save_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{self._cursor.segment} {self._cursor.offset}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.directory / "cursor")
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        """Make a rename or a new segment file itself durable, not only its contents."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _delete(self, segment: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(segment).unlink()
        self._sizes.pop(segment, None)

    def _repair_tail(self) -> None:
        """Cut a torn last frame (a write interrupted by a kill) off the active segment."""
        path = self._path(self._active)
        if not path.exists():
            path.touch()
            return
        data = path.read_bytes()
        good = 0
        while good + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, good)
            end = good + _FRAME.size + length
            if end > len(data) or crc32c.crc32c(data[good + _FRAME.size : end]) != crc:
                break
            good = end
        if good < len(data):
            log.warning(
                "spool %s: cut a torn last record (%d bytes) off %s",
                self.directory,
                len(data) - good,
                path.name,
            )
            with open(path, "r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())
            self._sizes[self._active] = good

    # --- writing ------------------------------------------------------------------------------
    def append(self, payloads: Sequence[bytes]) -> int:
        """Append in order; returns how many were kept. Entries past the budget are dropped and counted.

        Written with one ``write``; call ``sync()`` to make them durable (the caller batches fsyncs).
        """
        if not payloads:
            return 0
        with self._lock:
            total = sum(self._sizes.values())
            frames = []
            for p in payloads:
                size = _FRAME.size + len(p)
                if total + size > self.max_bytes:
                    break
                frames.append(_FRAME.pack(len(p), crc32c.crc32c(p)) + p)
                total += size
            dropped = len(payloads) - len(frames)
            if dropped:
                self.dropped += dropped
                metrics.TEACHER_LOG_RECORDS.labels("dropped").inc(dropped)
                log.error(
                    "teacher-log spool %s is full (%d bytes): dropped %d records",
                    self.directory,
                    self.max_bytes,
                    dropped,
                )
            if frames:
                data = b"".join(frames)
                os.write(self._fd, data)
                self._sizes[self._active] += len(data)
                self._dirty = True
                if self._sizes[self._active] >= self.segment_bytes:
                    self._roll()
            self._update_gauge()
            return len(frames)

    def _roll(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._active += 1
        self._sizes[self._active] = 0
        self._fd = os.open(self._path(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._dirty = False
        self._fsync_dir()

    def sync(self) -> None:
        """fsync what was appended since the last sync."""
        with self._lock:
            if self._dirty:
                os.fsync(self._fd)
                self._dirty = False

    # --- reading and delivery -----------------------------------------------------------------
    def read(self, max_records: int, max_bytes: int = 8 << 20) -> SpoolBatch:
        """Up to ``max_records`` entries from the cursor on, oldest first (the cursor does not move)."""
        batch = SpoolBatch()
        with self._lock:
            seg, off = self._cursor.segment, self._cursor.offset
            size = 0
            while len(batch) < max_records and size < max_bytes and seg in self._sizes:
                end_of_seg = self._sizes[seg]
                if off >= end_of_seg:
                    if seg == self._active:
                        break
                    seg, off = seg + 1, 0
                    continue
                with open(self._path(seg), "rb") as fh:
                    fh.seek(off)
                    data = fh.read(min(end_of_seg - off, max_bytes - size + (1 << 20)))
                    if len(data) >= _FRAME.size:
                        # One record larger than the read window: read it whole.
                        need = _FRAME.size + _FRAME.unpack_from(data)[0]
                        if len(data) < need <= end_of_seg - off:
                            fh.seek(off)
                            data = fh.read(need)
                pos, damaged = 0, False
                while len(batch) < max_records and pos + _FRAME.size <= len(data):
                    length, crc = _FRAME.unpack_from(data, pos)
                    end = pos + _FRAME.size + length
                    if end > len(data):
                        damaged = off + end > end_of_seg  # else: only the read window ended
                        break
                    payload = data[pos + _FRAME.size : end]
                    if crc32c.crc32c(payload) != crc:
                        damaged = True
                        break
                    batch.payloads.append(payload)
                    batch.ends.append(SpoolPosition(seg, off + end))
                    size += len(payload)
                    pos = end
                if not damaged and pos + _FRAME.size > len(data) and len(data) - pos > 0:
                    damaged = off + len(data) >= end_of_seg  # a few stray bytes at the very end
                if damaged:
                    self._drop_rest_of_segment(seg, off + pos)
                    if not batch.payloads:
                        self._cursor = SpoolPosition(seg + 1, 0)
                        self._save_cursor()
                    seg, off = seg + 1, 0
                    continue
                if pos == 0:
                    break
                off += pos
            return batch

    def _drop_rest_of_segment(self, seg: int, at: int) -> None:
        """A damaged frame: the rest of this segment cannot be framed again; count it and move on."""
        self.dropped += 1
        metrics.TEACHER_LOG_RECORDS.labels("dropped").inc()
        log.error(
            "spool %s: damaged record in segment %d at byte %d; skipping the rest", self.directory, seg, at
        )
        self._sizes[seg] = at
        if seg == self._active:
            self._roll()
        with open(self._path(seg), "r+b") as fh:  # so a restart does not count it again
            fh.truncate(at)
            os.fsync(fh.fileno())

    def ack(self, position: SpoolPosition) -> None:
        """Everything before ``position`` was delivered: move the cursor, delete finished segments."""
        with self._lock:
            if position <= self._cursor:
                return
            # The end of a finished segment is the start of the next one.
            while position.segment != self._active and position.offset >= self._sizes.get(
                position.segment, 0
            ):
                position = SpoolPosition(position.segment + 1, 0)
            self._cursor = position
            for seg in [s for s in self._sizes if s < position.segment]:
                self._delete(seg)
            if position.segment == self._active and position.offset >= self._sizes[self._active]:
                # Everything delivered: start a fresh segment so no delivered bytes linger on disk.
                self._roll()
                self._delete(position.segment)
                self._cursor = SpoolPosition(self._active, 0)
            self._save_cursor()
            self._update_gauge()

    # --- state --------------------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet delivered."""
        with self._lock:
            return self._pending_bytes()

    def _pending_bytes(self) -> int:
        return sum(self._sizes.values()) - (self._cursor.offset if self._cursor.segment in self._sizes else 0)

    def is_empty(self) -> bool:
        return self.pending_bytes == 0

    def _update_gauge(self) -> None:
        metrics.TEACHER_LOG_SPOOL_BYTES.set(self._pending_bytes())

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
