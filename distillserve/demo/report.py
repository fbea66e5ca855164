"""The demo's report: a markdown summary and PNG plots, from measured outcomes only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI
import matplotlib.pyplot as plt
import numpy as np

from distillserve.demo.heldout_probe import HeldoutResult
from distillserve.demo.report_cost import SpendSummary, spend_markdown
from distillserve.demo.traffic import Outcome


@dataclass
class AdapterEvent:
    t: float
    version: str
    status: str  # "live", "rejected", …
    evals: dict[str, float] = field(default_factory=dict)


@dataclass
class Summary:
    requests: int
    failed: int
    teacher_share_first: float
    teacher_share_last: float
    quality_first: float
    quality_last: float
    quality_overall: float
    teacher_only_quality: float
    quality_ratio_last: float
    promoted: list[str]
    latency_ms: dict[str, dict[str, float]]
    window_s: float
    spend: SpendSummary | None = None  # None: the run's cost metrics were not read
    # The student on held-out prompts of each learnable task, before the run and after it.
    heldout: list[HeldoutResult] = field(default_factory=list)
    not_sent: int = 0  # arrivals the client did not send (its concurrency cap; see ``Traffic``)


def _window(outcomes: list[Outcome], lo: float, hi: float) -> list[Outcome]:
    return [o for o in outcomes if lo <= o.t < hi]


def _share(xs: list[Outcome]) -> float:
    return sum(o.route == "teacher" for o in xs) / len(xs) if xs else float("nan")


def _quality(xs: list[Outcome]) -> float:
    return sum(o.correct for o in xs) / len(xs) if xs else float("nan")


def summarize(
    outcomes: list[Outcome], teacher_only_quality: float, events: list[AdapterEvent], window_s: float
) -> Summary:
    end = max((o.t for o in outcomes), default=0.0)
    first, last = _window(outcomes, 0, window_s), _window(outcomes, end - window_s, end + 1)
    lat: dict[str, dict[str, float]] = {}
    for route in ("student", "teacher"):
        xs = [o.latency_s * 1e3 for o in outcomes if o.route == route]
        if xs:
            lat[route] = {f"p{q}": float(np.percentile(xs, q)) for q in (50, 90, 99)} | {"n": len(xs)}
    q_last = _quality(last)
    return Summary(
        requests=len(outcomes),
        failed=sum(o.error is not None for o in outcomes),
        teacher_share_first=_share(first),
        teacher_share_last=_share(last),
        quality_first=_quality(first),
        quality_last=q_last,
        quality_overall=_quality(outcomes),
        teacher_only_quality=teacher_only_quality,
        quality_ratio_last=q_last / teacher_only_quality if teacher_only_quality else float("nan"),
        promoted=[e.version for e in events if e.status == "live"],
        latency_ms=lat,
        window_s=window_s,
    )


def _rolling(
    outcomes: list[Outcome], fn: Any, window_s: float, step_s: float
) -> tuple[list[float], list[float]]:
    end = max((o.t for o in outcomes), default=0.0)
    ts, ys = [], []
    # From the first step on, the window grows until it is full: the cold start shows in the plot.
    t = step_s
    while t <= end + step_s:
        xs = _window(outcomes, max(0.0, t - window_s), t)
        if xs:
            ts.append(t)
            ys.append(fn(xs))
        t += step_s
    return ts, ys


def _mark_promotions(ax: Any, events: list[AdapterEvent]) -> None:
    for e in events:
        if e.status == "live":
            ax.axvline(e.t, color="tab:green", ls=":", lw=1)
            ax.annotate(e.version, (e.t, 100), fontsize=7, rotation=90, va="top")


def write_report(
    out: Path,
    outcomes: list[Outcome],
    teacher_only_quality: float,
    events: list[AdapterEvent],
    *,
    window_s: float = 30.0,
    notes: list[str] | None = None,
    spend: SpendSummary | None = None,
    heldout: list[HeldoutResult] | None = None,
    not_sent: int = 0,
) -> Summary:
    out.mkdir(parents=True, exist_ok=True)
    s = summarize(outcomes, teacher_only_quality, events, window_s)
    s.spend = spend
    s.heldout = heldout or []
    s.not_sent = not_sent
    step = max(window_s / 6, 1.0)
    _plot_teacher_share(out / "teacher_share.png", outcomes, events, window_s, step)
    _plot_quality(out / "quality.png", outcomes, teacher_only_quality, window_s, step)
    _plot_latency(out / "latency.png", s)
    evald = [e for e in events if e.evals]
    if evald:
        _plot_adapter_evals(out / "adapters.png", evald)
    (out / "summary.json").write_text(
        json.dumps({"summary": asdict(s), "events": [asdict(e) for e in events]}, indent=2)
    )
    (out / "outcomes.jsonl").write_text("\n".join(json.dumps(asdict(o)) for o in outcomes) + "\n")
    (out / "report.md").write_text(_markdown(s, events, notes or []))
    return s


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_teacher_share(
    path: Path, outcomes: list[Outcome], events: list[AdapterEvent], window_s: float, step: float
) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ts, ys = _rolling(outcomes, _share, window_s, step)
    ax.plot(ts, [y * 100 for y in ys], color="tab:red")
    ax.set(
        xlabel="seconds",
        ylabel="teacher share (%)",
        ylim=(0, 105),
        title=f"Teacher share (trailing {window_s:.0f} s window)",
    )
    _mark_promotions(ax, events)
    _save(fig, path)


def _plot_quality(
    path: Path, outcomes: list[Outcome], teacher_only_quality: float, window_s: float, step: float
) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ts, ys = _rolling(outcomes, _quality, window_s, step)
    ax.plot(ts, [y * 100 for y in ys], label="served (router)", color="tab:blue")
    ax.axhline(teacher_only_quality * 100, color="black", ls="--", label="teacher only, same prompts")
    ax.axhline(teacher_only_quality * 95, color="gray", ls=":", label="95% of teacher only")
    ax.set(xlabel="seconds", ylabel="exact match (%)", ylim=(0, 105), title="Quality of served answers")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def _plot_latency(path: Path, s: Summary) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(3)
    for i, r in enumerate(s.latency_ms):
        vals = [s.latency_ms[r][k] for k in ("p50", "p90", "p99")]
        ax.bar(x + i * 0.38, vals, width=0.38, label=f"{r} (n={int(s.latency_ms[r]['n'])})")
    ax.set_xticks(x + 0.19, ["p50", "p90", "p99"])
    ax.set(ylabel="ms", title="End-to-end latency by route")
    ax.legend(fontsize=8)
    _save(fig, path)


def _plot_adapter_evals(path: Path, evald: list[AdapterEvent]) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    metrics = sorted({k for e in evald for k in e.evals})
    x = np.arange(len(evald))
    w = 0.8 / max(len(metrics), 1)
    for i, m in enumerate(metrics):
        ax.bar(x + i * w, [e.evals.get(m, 0) * 100 for e in evald], width=w, label=m)
    ax.set_xticks(x + 0.4 - w / 2, [f"{e.version}\n({e.status})" for e in evald], fontsize=8)
    ax.set(ylabel="%", ylim=(0, 105), title="Adapter versions: evaluation")
    ax.legend(fontsize=7)
    _save(fig, path)


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x * 100:.1f}%"


def _markdown(s: Summary, events: list[AdapterEvent], notes: list[str]) -> str:
    lines = [
        "# distillserve demo report",
        "",
        f"{s.requests} requests through the OpenAI endpoint ({s.failed} failed; {s.not_sent} more "
        "arrivals not sent, the client being at its concurrency cap). Quality is graded "
        "against the testbed's answers (exact match, or the task's own grader); the teacher-only "
        "baseline sent the same prompts to the teacher.",
        "",
        f"| | first {s.window_s:.0f} s | last {s.window_s:.0f} s |",
        "|---|---|---|",
        f"| teacher share | {_pct(s.teacher_share_first)} | {_pct(s.teacher_share_last)} |",
        f"| served quality | {_pct(s.quality_first)} | {_pct(s.quality_last)} |",
        "",
        f"Teacher-only quality on the same prompts: {_pct(s.teacher_only_quality)}; served quality in the "
        f"last window is {_pct(s.quality_ratio_last)} of it (overall {_pct(s.quality_overall)}).",
        "",
        "## Latency (ms)",
        "",
        "| route | n | p50 | p90 | p99 |",
        "|---|---|---|---|---|",
    ]
    for r, v in s.latency_ms.items():
        lines.append(f"| {r} | {int(v['n'])} | {v['p50']:.1f} | {v['p90']:.1f} | {v['p99']:.1f} |")
    if s.heldout:
        lines += ["", *_heldout_markdown(s.heldout)]
    if s.spend is not None:
        lines += ["", *spend_markdown(s.spend)]
    lines += ["", "## Adapter versions", "", "| t (s) | version | status | evaluation |", "|---|---|---|---|"]
    for e in events:
        ev = ", ".join(f"{k}={v:.3f}" for k, v in sorted(e.evals.items()))
        lines.append(f"| {e.t:.0f} | {e.version} | {e.status} | {ev} |")
    lines += ["", "![teacher share](teacher_share.png)", "![quality](quality.png)", "![latency](latency.png)"]
    if any(e.evals for e in events):
        lines.append("![adapters](adapters.png)")
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def _heldout_markdown(results: list[HeldoutResult]) -> list[str]:
    lines = [
        "## Held-out accuracy of the student",
        "",
        "Prompts of each learnable task that the traffic never sent, asked of the student (pinned by "
        "name, under a key whose traffic is never logged) before the traffic, when it was the base "
        "model, and again at the end.",
        "",
        "| task | grader | n | before (base) | after | served after by | failed requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.task} | {r.grader} | {r.n} | {_pct(r.before)} | {_pct(r.after)} | {r.after_model} "
            f"| {r.failed} |"
        )
    return lines
