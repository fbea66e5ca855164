"""The disk spool on real files: order, torn tails, damage, budget, cleanup, reopen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from distillserve.monitoring.metrics import TEACHER_LOG_RECORDS
from distillserve.teacher_log.spool import DiskSpool, SpoolLockedError


def _drain(spool: DiskSpool, n: int = 1000) -> list[bytes]:
    out: list[bytes] = []
    while True:
        batch = spool.read(n)
        if not batch:
            return out
        out += batch.payloads
        spool.ack(batch.ends[-1])


def _segments(d: Path) -> list[Path]:
    return sorted(d.glob("*.seg"))


def test_replays_in_order_across_segments_and_deletes_delivered(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 30, segment_bytes=4096)
    records = [f"record-{i:05d}".encode() * (1 + i % 7) for i in range(2000)]
    for i in range(0, len(records), 37):
        assert spool.append(records[i : i + 37]) == len(records[i : i + 37])
    spool.sync()
    assert len(_segments(tmp_path)) > 5
    # Part delivered, then a restart: the rest comes back, in order, nothing twice.
    first = spool.read(500)
    spool.ack(first.ends[-1])
    spool.close()
    spool = DiskSpool(tmp_path, max_bytes=1 << 30, segment_bytes=4096)
    assert first.payloads + _drain(spool, 333) == records
    assert spool.is_empty() and spool.pending_bytes == 0
    assert _segments(tmp_path) == [] or all(p.stat().st_size == 0 for p in _segments(tmp_path))
    spool.close()


def test_unacked_batch_is_read_again(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20)
    spool.append([b"a", b"b", b"c"])
    assert spool.read(2).payloads == [b"a", b"b"]
    assert spool.read(10).payloads == [b"a", b"b", b"c"]  # delivery failed: nothing acked
    batch = spool.read(10)
    spool.ack(batch.ends[0])
    assert spool.read(10).payloads == [b"b", b"c"]
    spool.close()


def test_process_killed_mid_write_leaves_a_torn_record_that_is_cut(tmp_path: Path) -> None:
    # A real child process appends and fsyncs, then is SIGKILLed; we then tear its last frame
    # by hand, because a kill cannot be timed to land inside one write() call.
    code = (
        "import sys, time; from distillserve.teacher_log.spool import DiskSpool;"
        f"s = DiskSpool({str(tmp_path)!r}, 1 << 20);"
        "s.append([b'r%d' % i for i in range(100)]); s.sync(); print('ok', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ok"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    seg = _segments(tmp_path)[-1]
    size = seg.stat().st_size
    with open(seg, "r+b") as fh:
        fh.truncate(size - 1)  # the last frame now ends one byte short
    spool = DiskSpool(tmp_path, max_bytes=1 << 20)
    assert spool.read(1000).payloads == [b"r%d" % i for i in range(99)]
    spool.append([b"after"])  # appends continue cleanly after the cut
    assert _drain(spool)[-2:] == [b"r98", b"after"]
    spool.close()


def test_damaged_record_in_old_segment_is_counted_and_skipped(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    for i in range(4):  # 48-byte frames: a segment rolls after its second one
        spool.append([b"x%d" % i * 20])
    spool.append([b"y" * 40])
    spool.sync()
    spool.close()
    segs = _segments(tmp_path)
    with open(segs[1], "r+b") as fh:  # flip a payload byte: checksum mismatch
        fh.seek(20)
        fh.write(b"Z")
    spool = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    assert len(segs) == 3
    # x2 is damaged, and x3 after it in the same segment cannot be framed any more.
    assert _drain(spool) == [b"x0" * 20, b"x1" * 20, b"y" * 40]
    assert spool.dropped == 1
    spool.close()


def test_budget_exhausted_drops_and_counts(tmp_path: Path) -> None:
    before = TEACHER_LOG_RECORDS.labels("dropped")._value.get()
    spool = DiskSpool(tmp_path, max_bytes=1000)
    kept = spool.append([b"z" * 92] * 20)  # 100 bytes per frame
    assert kept == 10 and spool.dropped == 10
    assert TEACHER_LOG_RECORDS.labels("dropped")._value.get() - before == 10
    # Delivery frees the budget again.
    _drain(spool)
    assert spool.append([b"z" * 92] * 5) == 5
    spool.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1000)
    with pytest.raises(SpoolLockedError):
        # flock is per open file description, so a second open in this process conflicts too.
        DiskSpool(tmp_path, max_bytes=1000)
    spool.close()


def test_record_larger_than_the_read_window_is_still_read(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 30)
    big = os.urandom(12 << 20)
    spool.append([b"small", big, b"after"])
    # The byte limit is soft: reading stops once it is passed, but never before a whole record.
    assert spool.read(10, max_bytes=1 << 20).payloads == [b"small", big]
    assert _drain(spool, 1) == [b"small", big, b"after"]
    spool.close()
