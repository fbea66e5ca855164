"""``free_port`` with ``DISTILLSERVE_PORT_RANGE``: ports from that range only, never twice."""

from __future__ import annotations

import socket

import pytest

from distillserve.launchers import child_process
from distillserve.launchers.child_process import PORT_RANGE_ENV, free_port


def test_ports_come_from_the_range_and_are_never_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(child_process, "_handed_out", set())
    with socket.socket() as taken:  # a port some server already holds is skipped
        taken.bind(("127.0.0.1", 0))
        held = taken.getsockname()[1]
        monkeypatch.setenv(PORT_RANGE_ENV, f"{held}-{held + 15}")
        ports = []
        with pytest.raises(RuntimeError, match="no free port left"):
            while True:  # until the range is used up
                ports.append(free_port())
    assert 8 <= len(ports) <= 15 and len(set(ports)) == len(ports)  # others may hold a few more
    assert held not in ports and all(held < p <= held + 15 for p in ports)


def test_without_a_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_RANGE_ENV, raising=False)
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
