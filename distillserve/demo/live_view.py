"""A live terminal view of the demo (rich), or a plain progress line when not on a terminal."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from distillserve.demo.report import AdapterEvent
from distillserve.demo.traffic import Outcome


class LiveView:
    def __init__(self, duration_s: float, window_s: float = 30.0, console: Console | None = None) -> None:
        self.console = console or Console()
        self.duration_s = duration_s
        self.window_s = window_s
        self.recent: deque[Outcome] = deque()
        self.events: list[AdapterEvent] = []
        self.total = 0
        self.started = time.perf_counter()
        self.status = "starting"
        self._live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(None, None, None)

    def add(self, o: Outcome) -> None:
        self.total += 1
        self.recent.append(o)
        while self.recent and self.recent[0].t < o.t - self.window_s:
            self.recent.popleft()
        self.refresh()

    def event(self, e: AdapterEvent) -> None:
        self.events.append(e)
        self.refresh()

    def set_status(self, status: str) -> None:
        self.status = status
        self.refresh()

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())
        elif time.perf_counter() - self._last_line > 10:
            self._last_line = time.perf_counter()
            self.console.print(self.line())

    def stats(self) -> dict[str, float]:
        xs = list(self.recent)
        n = len(xs)
        span = (xs[-1].t - xs[0].t) if n > 1 else 1.0
        student = [o for o in xs if o.route == "student"]
        return {
            "rps": n / max(span, 1e-9),
            "teacher_share": sum(o.route == "teacher" for o in xs) / n if n else float("nan"),
            "served_quality": sum(o.correct for o in xs) / n if n else float("nan"),
            "student_quality": sum(o.correct for o in student) / len(student) if student else float("nan"),
        }

    def line(self) -> str:
        s = self.stats()
        live = next((e.version for e in reversed(self.events) if e.status == "live"), "base")
        return (
            f"[{time.perf_counter() - self.started:5.0f}s] {self.status}: {self.total} requests, "
            f"{s['rps']:.1f} req/s, teacher share {s['teacher_share']:.0%}, served quality "
            f"{s['served_quality']:.0%}, student quality {s['student_quality']:.0%}, live adapter {live}"
        )

    def render(self) -> Panel:
        s = self.stats()
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        elapsed = time.perf_counter() - self.started
        t.add_row("status", f"{self.status}  ({elapsed:.0f}/{self.duration_s:.0f} s)")
        t.add_row("requests", f"{self.total}  ({s['rps']:.1f}/s over the last {self.window_s:.0f} s)")
        t.add_row("teacher share", _pct(s["teacher_share"]))
        t.add_row("served quality", _pct(s["served_quality"]))
        t.add_row("student quality", _pct(s["student_quality"]))
        for route in ("student", "teacher"):
            lat = [o.latency_s * 1e3 for o in self.recent if o.route == route]
            if lat:
                t.add_row(
                    f"{route} latency",
                    f"p50 {np.percentile(lat, 50):.0f} ms · p99 {np.percentile(lat, 99):.0f} ms (n={len(lat)})",
                )
        versions = Table("t (s)", "version", "status", "evaluation", box=None, header_style="dim")
        for e in self.events[-8:]:
            ev = ", ".join(f"{k} {v:.2f}" for k, v in sorted(e.evals.items()))
            versions.add_row(f"{e.t:.0f}", e.version, e.status, ev)
        return Panel(Group(t, Panel(versions, title="adapter versions")), title="distillserve demo")


def _pct(x: float) -> str:
    return "—" if x != x else f"{x:.0%}"
