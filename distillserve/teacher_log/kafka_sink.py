"""The Kafka teacher-log sink: never slows a request, never loses an accepted record.

``submit`` puts the record on a bounded in-memory queue and returns. One background thread
drains it into a kafka-python producer (acks=all, idempotent, compressed, keyed by the
conversation so one conversation stays in one partition, in order).

When the broker is down or slow (a send fails, or the oldest unacknowledged record waited
longer than ``delivery_timeout_s``), the thread switches to spooling: the records in flight and
everything after them go, in order, to the disk spool (``DiskSpool``), fsync'd per batch. It
then retries the broker every ``retry_backoff_s`` (doubling up to 10 s), replays the spool in
order, and switches back to direct sends once the spool is empty. A restart replays what the
spool holds first. Delivery is at least once: a record whose acknowledgement was lost in an
outage may arrive twice (readers can dedupe on ``request_id``); none is lost unless the spool's
disk budget runs out or a record is too large for the broker, and then every dropped record is
counted. A SIGKILL loses only what was still in memory: at most one 50 ms poll of the queue,
plus records in flight to the broker that it had not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from kafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from kafka.partitioner.default import DefaultPartitioner, murmur2

from distillserve.config import TeacherLogConfig, cache_dir
from distillserve.monitoring import metrics
from distillserve.teacher_log.dead_letter import DeadLetter
from distillserve.teacher_log.kafka_options import client_options
from distillserve.teacher_log.record import TeacherLogRecord
from distillserve.teacher_log.sink import TeacherLogSink
from distillserve.teacher_log.spool import DiskSpool, SpoolLockedError

log = logging.getLogger(__name__)

_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
_KEY_LEN = struct.Struct(">H")
_BATCH = 5000  # records taken from the queue per loop
_REPLAY_BATCH = 2000
_MAX_BACKOFF_S = 5.0
# The producer thread wakes this often and takes what queued up meanwhile. Nothing on the request
# path wakes it (no condition variable), and one send loop per batch instead of per record keeps
# its GIL time, and the thread hand-offs that cost most on a busy machine, off the request path.
_GATHER_S = 0.05


def encode_entry(key: bytes, value: bytes) -> bytes:
    """A spool entry: the Kafka key and value of one record."""
    return _KEY_LEN.pack(len(key)) + key + value


def decode_entry(entry: bytes) -> tuple[bytes, bytes]:
    (n,) = _KEY_LEN.unpack_from(entry)
    return entry[2 : 2 + n], entry[2 + n :]


@dataclass
class SinkStats:
    """Per-instance counts (the Prometheus counters are process-wide)."""

    produced: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0  # too large for the broker; spool-budget drops are counted by the spool


@functools.lru_cache(maxsize=65536)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


class ConversationPartitioner(DefaultPartitioner):
    """Kafka's default key -> partition mapping (murmur2, as the Java client), with the hash
    cached: a conversation's key repeats, and pure-Python murmur2 was a tenth of the send cost."""

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):  # type: ignore[no-untyped-def]
        if serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        parts = sorted(cluster.partitions_for_topic(topic))
        return parts[_key_hash(serialized_key) % len(parts)]


class _InFlight(NamedTuple):
    key: bytes
    value: bytes
    future: Any
    sent_at: float


def open_spool(cfg: TeacherLogConfig, slots: int = 64) -> DiskSpool:
    """The configured spool, or with no ``spool_dir`` the first free slot under the cache.

    Slots let several gateways on one machine share the default; a restarted gateway takes the
    first free slot, so a crashed one's records are picked up and replayed.
    """
    if cfg.spool_dir:
        return DiskSpool(cfg.spool_dir, cfg.spool_max_bytes)
    base = cache_dir() / "teacher-log-spool"
    for i in range(slots):
        try:
            return DiskSpool(base / f"slot-{i}", cfg.spool_max_bytes)
        except SpoolLockedError:
            continue
    raise SpoolLockedError(f"all {slots} teacher-log spool slots under {base} are in use")


class KafkaSink(TeacherLogSink):
    def __init__(self, cfg: TeacherLogConfig) -> None:
        self.cfg = cfg
        self.spool = open_spool(cfg)
        directory = self.spool.directory
        self.stats = SinkStats()
        # deque.append and len are atomic under the GIL: no lock on the request path.
        self._queue: deque[TeacherLogRecord] = deque()
        self._queue_max = cfg.queue_size
        # Answers that could not become records (rare): sent to the dead-letter topic by the thread.
        self._dead: deque[DeadLetter] = deque()
        self._dead_next_attempt = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Everything below is touched only by the producer thread.
        self._producer: Any = None
        self._inflight: deque[_InFlight] = deque()
        self._spooling = not self.spool.is_empty()  # a restart replays the spool first
        self._backoff = cfg.retry_backoff_s
        self._next_attempt = 0.0
        if self._spooling:
            log.info(
                "teacher-log spool %s holds %d bytes: replaying them first",
                directory,
                self.spool.pending_bytes,
            )

    # --- request path ---------------------------------------------------------------------------
    def submit(self, record: TeacherLogRecord) -> None:
        if len(self._queue) < self._queue_max:
            self._queue.append(record)
        else:
            # Not even the disk keeps up with the producer thread: keep the record anyway (it is
            # then spooled ahead of some older queued ones; order within a conversation may suffer).
            kept = self.spool.append([encode_entry(record.key.encode(), record.to_json())])
            self.stats.spooled += kept
            metrics.TEACHER_LOG_RECORDS.labels("spooled").inc(kept)

    def dead_letter(self, letter: DeadLetter) -> None:
        self._dead.append(letter)

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.start_background()

    def start_background(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="teacher-log-producer", daemon=True)
            self._thread.start()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self, timeout: float = 15.0) -> None:
        """Deliver what can be delivered within ``timeout``; everything else stays in the spool."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("teacher-log producer thread did not stop within %.0f s", timeout)
                return
        else:  # never started: what was submitted goes to disk, for the next start to send
            self._spool_records(self._take(0))
            self._keep_dead_letters_on_disk()
        self.spool.close()

    def wait_delivered(self, timeout: float) -> bool:
        """True once the queue, the in-flight records and the spool are all empty (for tests and benches)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._queue and not self._inflight and not self._spooling and self.spool.is_empty():
                return True
            time.sleep(0.02)
        return False

    @property
    def spooling(self) -> bool:
        return self._spooling

    # --- producer thread ------------------------------------------------------------------------
    def _make_producer(self) -> Any:
        from kafka import KafkaProducer

        timeout_ms = int(self.cfg.delivery_timeout_s * 1000)
        return KafkaProducer(
            **client_options(self.cfg),
            acks="all",
            enable_idempotence=True,
            compression_type=None if self.cfg.compression == "none" else self.cfg.compression,
            linger_ms=5,
            batch_size=256 * 1024,
            max_block_ms=timeout_ms,
            request_timeout_ms=max(1000, int(timeout_ms * 0.8)),
            delivery_timeout_ms=2 * timeout_ms + 5,
            bootstrap_timeout_ms=min(timeout_ms, 2000),
            reconnect_backoff_max_ms=1000,
            partitioner=ConversationPartitioner(),
            metrics_enabled=False,
            max_request_size=self.cfg.max_record_bytes,  # kafka-python's own sensors cost CPU per record; ours are in Prometheus
        )

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                items = self._take(0 if stopping else _GATHER_S)
                if self._spooling:
                    self._spool_records(items)
                else:
                    self._send(items)
                    self._send_dead_letters()
                self._reap()
                if self._spooling and not stopping and time.monotonic() >= self._next_attempt:
                    self._replay()
            except Exception:  # never let the thread die: whatever is in hand goes to disk
                log.exception("teacher-log producer loop failed; spooling")
                self._to_spooling([])
            metrics.TEACHER_LOG_QUEUE_DEPTH.set(len(self._queue))
            if stopping and not self._queue:
                break
        self._shutdown()

    def _take(self, wait: float) -> list[TeacherLogRecord]:
        if wait > 0 and len(self._queue) < _BATCH:
            self._stop.wait(wait)
        items: list[TeacherLogRecord] = []
        pop = self._queue.popleft
        try:
            while len(items) < _BATCH:
                items.append(pop())
        except IndexError:
            pass
        return items

    def _send(self, items: list[TeacherLogRecord]) -> None:
        if not items:
            return
        if self._producer is None:
            try:
                self._producer = self._make_producer()
            except Exception as exc:
                log.warning("teacher-log broker unreachable (%s): spooling", exc)
                self._to_spooling([encode_entry(r.key.encode(), r.to_json()) for r in items])
                return
        for i, record in enumerate(items):
            key, value = record.key.encode(), record.to_json()
            try:
                future = self._producer.send(self.cfg.topic, key=key, value=value)
            except MessageSizeTooLargeError as exc:
                self._drop_too_large(key, value, exc)
                continue
            except Exception as exc:  # metadata or buffer wait timed out: the broker is gone
                log.warning("teacher-log send failed (%s): spooling", exc)
                rest = [encode_entry(key, value)] + [
                    encode_entry(r.key.encode(), r.to_json()) for r in items[i + 1 :]
                ]
                self._fail_inflight(rest)
                return
            self._inflight.append(_InFlight(key, value, future, time.monotonic()))

    def _reap(self) -> None:
        """Count acknowledged records (oldest first); a failed or overdue one means: spool."""
        done = 0
        while self._inflight and self._inflight[0].future.is_done:
            head = self._inflight[0]
            if head.future.failed() and isinstance(head.future.exception, _TOO_LARGE):
                self._inflight.popleft()
                self._drop_too_large(head.key, head.value, head.future.exception)
                continue
            if not head.future.succeeded():
                log.warning("teacher-log delivery failed (%s): spooling", head.future.exception)
                self._fail_inflight([])
                break
            self._inflight.popleft()
            done += 1
        if done:
            self.stats.produced += done
            metrics.TEACHER_LOG_RECORDS.labels("produced").inc(done)
        if self._inflight and time.monotonic() - self._inflight[0].sent_at > self.cfg.delivery_timeout_s:
            log.warning("teacher-log broker slow (no ack in %.1f s): spooling", self.cfg.delivery_timeout_s)
            self._fail_inflight([])

    def _fail_inflight(self, later: list[bytes]) -> None:
        """Abandon the producer; records not acknowledged go to the spool, in order, before ``later``."""
        self._close_producer()
        deadline = time.monotonic() + 1.0
        while any(not e.future.is_done for e in self._inflight) and time.monotonic() < deadline:
            time.sleep(0.01)
        entries, acked = [], 0
        for e in self._inflight:
            if e.future.is_done and e.future.succeeded():
                acked += 1
            else:
                entries.append(encode_entry(e.key, e.value))
        self._inflight.clear()
        if acked:
            self.stats.produced += acked
            metrics.TEACHER_LOG_RECORDS.labels("produced").inc(acked)
        self._to_spooling(entries + later)

    def _drop_too_large(self, key: bytes, value: bytes, exc: BaseException) -> None:
        """A record the broker will never take (too large): retrying would block the log forever."""
        self.stats.dropped += 1
        metrics.TEACHER_LOG_RECORDS.labels("dropped").inc()
        log.error("teacher-log record dropped, too large for the broker (%d bytes): %s", len(value), exc)

    def _close_producer(self, timeout: float = 0) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=timeout)
        except Exception:
            # close() flushes first and raises while records are pending, before it stops the
            # sender thread; stop it anyway so no abandoned producer keeps reconnecting.
            with contextlib.suppress(Exception):
                producer._sender.force_close()
                producer._closed = True

    def _to_spooling(self, entries: list[bytes]) -> None:
        if not self._spooling:
            self._spooling = True
            self._next_attempt = time.monotonic() + self._backoff
        self._spool_entries(entries)

    def _spool_records(self, items: list[TeacherLogRecord]) -> None:
        self._spool_entries([encode_entry(r.key.encode(), r.to_json()) for r in items])

    def _spool_entries(self, entries: list[bytes]) -> None:
        if not entries:
            return
        kept = self.spool.append(entries)  # the spool counts what it drops
        self.spool.sync()
        self.stats.spooled += kept
        metrics.TEACHER_LOG_RECORDS.labels("spooled").inc(kept)

    def _replay(self) -> None:
        """Deliver the spool in order; on success switch back to direct sends."""
        try:
            if self._producer is None:
                self._producer = self._make_producer()
            while not self._stop.is_set():
                batch = self.spool.read(_REPLAY_BATCH)
                if not batch:
                    self._spooling = False
                    self._backoff = self.cfg.retry_backoff_s
                    log.info("teacher-log spool replayed; sending directly again")
                    return
                futures: list[Any] = []
                for entry in batch.payloads:
                    key, value = decode_entry(entry)
                    try:
                        futures.append(self._producer.send(self.cfg.topic, key=key, value=value))
                    except MessageSizeTooLargeError as exc:
                        self._drop_too_large(key, value, exc)
                        futures.append(None)
                with contextlib.suppress(Exception):  # what failed is counted below from the futures
                    self._producer.flush(timeout=self.cfg.delivery_timeout_s)
                ok = replayed = 0
                for f in futures:
                    if f is not None and f.is_done and f.failed() and isinstance(f.exception, _TOO_LARGE):
                        self._drop_too_large(b"", b"", f.exception)
                    elif f is not None and not (f.is_done and f.succeeded()):
                        break
                    else:
                        replayed += f is not None
                    ok += 1
                if ok:
                    self.spool.ack(batch.ends[ok - 1])
                    self.stats.replayed += replayed
                    metrics.TEACHER_LOG_RECORDS.labels("replayed").inc(replayed)
                if ok < len(futures):
                    raise RuntimeError(
                        f"{len(futures) - ok} of {len(futures)} replayed records not acknowledged"
                    )
                # New records keep queuing behind the spool, so order holds and the queue stays short.
                self._spool_records(self._take(0))
        except Exception as exc:
            self._close_producer()
            self._next_attempt = time.monotonic() + self._backoff
            log.warning("teacher-log broker still unavailable (%s); next try in %.1f s", exc, self._backoff)
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)

    def _shutdown(self) -> None:
        """Stop: wait a little for acknowledgements, spool whatever is not delivered."""
        if self._producer is not None and self._inflight:
            with contextlib.suppress(Exception):
                self._producer.flush(timeout=self.cfg.delivery_timeout_s)
            self._reap()
        if self._inflight:
            self._fail_inflight([])
        self._spool_records(self._take(0))
        if not self._spooling:
            self._send_dead_letters(force=True)
        self._keep_dead_letters_on_disk()
        self._close_producer(timeout=2)
        metrics.TEACHER_LOG_QUEUE_DEPTH.set(0)

    # --- dead letters ---------------------------------------------------------------------------
    def _send_dead_letters(self, force: bool = False) -> None:
        """Send the waiting dead letters and wait for their acknowledgement (they are rare); on
        failure they stay queued for a later try, and whatever is left at shutdown goes to disk."""
        if not self._dead or (not force and time.monotonic() < self._dead_next_attempt):
            return
        try:
            if self._producer is None:
                self._producer = self._make_producer()
            letters = list(self._dead)
            futures = [
                self._producer.send(
                    self.cfg.dead_letter_topic, key=d.key or None, value=d.value, headers=d.headers()
                )
                for d in letters
            ]
            self._producer.flush(timeout=self.cfg.delivery_timeout_s)
            for f in futures:
                f.get(timeout=0)  # raises the delivery error, if any
        except Exception as exc:
            self._dead_next_attempt = time.monotonic() + _MAX_BACKOFF_S
            log.warning("teacher-log dead letters not delivered (%s); retrying later", exc)
            return
        for _ in letters:
            self._dead.popleft()

    def _keep_dead_letters_on_disk(self) -> None:
        """Dead letters the broker never took, appended to ``dead-letters.jsonl`` beside the spool."""
        if not self._dead:
            return
        path = self.spool.directory / "dead-letters.jsonl"
        with path.open("ab") as fh:
            while self._dead:
                fh.write(self._dead.popleft().to_json_line())
        log.error("teacher-log dead letters the broker did not take are in %s", path)
