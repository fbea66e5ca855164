"""RouteLLM-style evaluation of difficulty scorers on a labelled set.

For a scorer, route the highest-scoring share ``c`` of prompts to the teacher and the rest
to the student; the quality of that mix, as ``c`` goes from 0 to 1, is the scorer's
quality/teacher-share curve. As in RouteLLM (Ong et al., 2024):

- PGR(c) — performance gap recovered — is (quality(c) - student) / (teacher - student);
- APGR is the area under PGR(c) over c in [0, 1] (random routing: 0.5);
- CPT(x%) is the smallest teacher share whose PGR reaches x% (random: x%).

Equal scores are routed as a random tie-break would on average, so the curve is linear
across a tie; the random baseline is then exactly the constant score, i.e. the straight line
from the student's quality to the teacher's. The oracle (routes just the prompts where the
teacher does better) bounds what any scorer can reach.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distillserve.router.confidence import confidence_statistic, difficulty_from_statistic
from distillserve.router.labelled_example import LabelledExample

REFERENCE_SCORERS = ("random", "oracle")


@dataclass
class ScorerResult:
    name: str
    shares: list[float]  # teacher share at each curve point
    qualities: list[float]
    apgr: float
    cpt50: float
    cpt80: float
    note: str = ""

    def quality_at(self, share: float) -> float:
        return float(np.interp(share, self.shares, self.qualities))

    def share_for_quality(self, quality: float) -> float:
        """Smallest teacher share whose mix reaches ``quality`` (nan if it never does)."""
        return _first_crossing(np.array(self.shares), np.array(self.qualities), quality)


@dataclass
class EvalReport:
    examples: int
    student_quality: float
    teacher_quality: float
    results: list[ScorerResult] = field(default_factory=list)

    def result(self, name: str) -> ScorerResult:
        return next(r for r in self.results if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "student_quality": self.student_quality,
            "teacher_quality": self.teacher_quality,
            "scorers": {
                r.name: {
                    "apgr": r.apgr,
                    "cpt50": r.cpt50,
                    "cpt80": r.cpt80,
                    "note": r.note,
                    "curve": {"teacher_share": r.shares, "quality": r.qualities},
                }
                for r in self.results
            },
        }


def quality_curve(
    scores: Sequence[float], student_q: Sequence[float], teacher_q: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(teacher shares, qualities) at every boundary between groups of equal scores, from 0 to 1."""
    s = np.asarray(scores, dtype=np.float64)
    gain = np.asarray(teacher_q, dtype=np.float64) - np.asarray(student_q, dtype=np.float64)
    n = len(s)
    order = np.argsort(-s, kind="stable")
    s_sorted, gain_sorted = s[order], gain[order]
    cum = np.concatenate([[0.0], np.cumsum(gain_sorted)])
    # Boundaries: after the last element of each run of equal scores.
    ends = [i + 1 for i in range(n) if i == n - 1 or s_sorted[i] != s_sorted[i + 1]]
    ks = np.array([0, *ends])
    base = float(np.mean(student_q))
    return ks / n, base + cum[ks] / n


def _first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    if y[0] >= level:
        return float(x[0])
    for i in range(1, len(x)):
        if y[i] >= level:
            x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
            return float(x0 + (x1 - x0) * (level - y0) / (y1 - y0))
    return math.nan


def evaluate_scores(
    name: str, scores: Sequence[float], examples: Sequence[LabelledExample], note: str = ""
) -> ScorerResult:
    sq = [e.student_quality for e in examples]
    tq = [e.teacher_quality for e in examples]
    shares, qualities = quality_curve(scores, sq, tq)
    q_s, q_t = float(np.mean(sq)), float(np.mean(tq))
    gap = q_t - q_s
    if gap <= 0:
        apgr = cpt50 = cpt80 = math.nan  # the student is as good: there is no gap to recover
    else:
        pgr = (qualities - q_s) / gap
        apgr = float(np.trapezoid(pgr, shares))
        cpt50 = _first_crossing(shares, pgr, 0.5)
        cpt80 = _first_crossing(shares, pgr, 0.8)
    return ScorerResult(name, shares.tolist(), qualities.tolist(), apgr, cpt50, cpt80, note)


def reference_scores(name: str, examples: Sequence[LabelledExample]) -> list[float]:
    if name == "random":  # one tied group: the expected curve of random routing
        return [0.0] * len(examples)
    if name == "oracle":
        return [e.teacher_quality - e.student_quality for e in examples]
    raise ValueError(name)


def cascade_scores(examples: Sequence[LabelledExample], statistic: str = "min") -> list[float]:
    """Difficulty from the student's own token log-probabilities (needs them in the set)."""
    out = []
    for e in examples:
        if e.student_logprobs is None:
            raise ValueError("the labelled set has no student logprobs: the cascade cannot be evaluated")
        out.append(difficulty_from_statistic(confidence_statistic(e.student_logprobs, statistic)))  # type: ignore[arg-type]
    return out


def split(
    examples: Sequence[LabelledExample], test_fraction: float = 0.5, seed: int = 0
) -> tuple[list[LabelledExample], list[LabelledExample]]:
    """(train, test), shuffled reproducibly; learned scorers fit on train, everyone is judged on test."""
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    cut = round(len(idx) * (1 - test_fraction))
    return [examples[i] for i in idx[:cut]], [examples[i] for i in idx[cut:]]


def build_report(examples: Sequence[LabelledExample], scores: dict[str, Sequence[float]]) -> EvalReport:
    report = EvalReport(
        len(examples),
        float(np.mean([e.student_quality for e in examples])),
        float(np.mean([e.teacher_quality for e in examples])),
    )
    for name, s in scores.items():
        report.results.append(evaluate_scores(name, s, examples))
    for name in REFERENCE_SCORERS:
        if name not in scores:
            note = "baseline" if name == "random" else "upper bound"
            report.results.append(evaluate_scores(name, reference_scores(name, examples), examples, note))
    return report


def format_table(report: EvalReport) -> str:
    def pct(x: float) -> str:
        return "  n/a" if math.isnan(x) else f"{100 * x:5.1f}%"

    lines = [
        f"{report.examples} examples; student quality {report.student_quality:.3f}, "
        f"teacher quality {report.teacher_quality:.3f}",
        f"{'scorer':<12} {'APGR':>6} {'CPT(50%)':>9} {'CPT(80%)':>9}",
    ]
    for r in report.results:
        apgr = "  n/a" if math.isnan(r.apgr) else f"{r.apgr:6.3f}"
        lines.append(f"{r.name:<12} {apgr:>6} {pct(r.cpt50):>9} {pct(r.cpt80):>9}  {r.note}".rstrip())
    return "\n".join(lines)


def plot(report: EvalReport, path: str | Path, title: str = "Router quality vs teacher share") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for r in report.results:
        style = {"random": ":", "oracle": "--"}.get(r.name, "-")
        label = r.name if math.isnan(r.apgr) else f"{r.name} (APGR {r.apgr:.2f})"
        ax.plot([100 * s for s in r.shares], r.qualities, style, label=label, linewidth=1.6)
    ax.axhline(report.teacher_quality, color="grey", linewidth=0.6)
    ax.axhline(report.student_quality, color="grey", linewidth=0.6)
    ax.set_xlabel("share of requests sent to the teacher (%)")
    ax.set_ylabel("quality of the mix")
    ax.set_title(title)
    ax.set_xlim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def save(report: EvalReport, out_dir: str | Path, title: str | None = None) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "router-eval.json",
        "table": out / "router-eval.txt",
        "plot": out / "router-eval.png",
    }
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2))
    paths["table"].write_text(format_table(report) + "\n")
    plot(report, paths["plot"], **({"title": title} if title else {}))
    return paths


async def compute_scores(
    names: Sequence[str],
    train: Sequence[LabelledExample],
    test: Sequence[LabelledExample],
    *,
    cfg: Any = None,
    cascade_statistic: str = "min",
) -> dict[str, list[float]]:
    """Each named scorer's scores on ``test``; learned scorers are first fitted on ``train``."""
    from distillserve.config import RouterConfig
    from distillserve.router.scoring import build_scorer

    cfg = cfg or RouterConfig()
    prompts = [e.prompt for e in test]
    out: dict[str, list[float]] = {}
    for name in names:
        if name in REFERENCE_SCORERS:
            out[name] = reference_scores(name, test)
        elif name == "cascade":
            out[name] = cascade_scores(test, cascade_statistic)
        elif name == "embedding":
            from distillserve.router.embedding_scorer import EmbeddingScorer

            scorer = EmbeddingScorer(cfg, load_saved=False)
            try:
                await scorer.retrain(train, save=False)
                out[name] = scorer.classifier.predict(await scorer.features(prompts)).tolist()  # type: ignore[union-attr]
            finally:
                await scorer.aclose()
        else:
            scorer = build_scorer(name, cfg=cfg)
            try:
                out[name] = [(await scorer.score(p)).value for p in prompts]
            finally:
                await scorer.aclose()
    return out
